"""Run many simulated devices and handsets against a node, in a thread of their own.

>>> sim = Simulation(server="127.0.0.1:8000", secret="...", basestations=100, media=2,
...                  handsets=20).start()
>>> sim.attached_counts()          # {"127.0.0.1:8000": 102}
>>> sim.stop()

One asyncio event loop runs every device (``SimDevice.run``) and handset
(``_roam``): a thousand devices cost one thread and one socket each at a time.
The devices are ``protocol.sim_mac``/``sim_name`` 1..N, the ones
``services.devices_provision`` (``kwssim --provision``) configures.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from basestations import protocol
from basestations.sim.device import Change, SimDevice, SimHandset, _stopped


class Simulation:
    def __init__(
        self,
        *,
        server: str,
        secret: str,
        basestations: int = 0,
        media: int = 0,
        handsets: int = 0,
        firmware: str = "PCS06B",
        extensions_from: int = 2000,
        roam_seconds: tuple[float, float] = (10.0, 30.0),
        on_change: Callable[[Change], None] | None = None,
        seed: int | None = None,
        first: int = 1,
    ) -> None:
        """``server`` is the address (host:port) the devices are configured with: the
        master's. Handsets have the extensions ``extensions_from`` and up (the demo
        users' are 2000 and up) and roam to a neighbouring base station every
        ``roam_seconds`` (a random time between the two)."""
        self.server = server
        self.rng = random.Random(seed)
        self.on_change = on_change
        self.roam_seconds = roam_seconds
        self.devices: list[SimDevice] = []
        for kind, count in (("rfp", basestations), ("media", media)):
            for index in range(first, first + count):
                self.devices.append(
                    SimDevice(
                        kind=kind,  # type: ignore[arg-type]
                        mac=protocol.sim_mac(kind, index),  # type: ignore[arg-type]
                        name=protocol.sim_name(kind, index),  # type: ignore[arg-type]
                        home=server,
                        secret=secret,
                        firmware=firmware,
                        on_change=self._changed,
                        rng=random.Random(self.rng.random()),
                        ip=f"10.{20 if kind == 'rfp' else 21}.{index >> 8}.{index & 0xFF}",
                    )
                )
        self.basestations = [d for d in self.devices if d.kind == "rfp"]
        self.handsets = [SimHandset(str(extensions_from + n)) for n in range(handsets)]
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    # --- Life cycle --------------------------------------------------------------

    def start(self) -> Simulation:
        """Start every device in a background thread; returns at once."""
        self._thread = threading.Thread(target=self._main, name="kwssim", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every device and handset and wait for the thread to end."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Simulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as exc:  # reported to the caller through .error
            self.error = exc
            self._ready.set()

    async def run(self) -> None:
        """Run until stopped (``stop()`` from another thread, or ``self._stop`` set)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        tasks = [asyncio.create_task(d.run(self._stop)) for d in self.devices]
        if self.basestations:
            for handset in self.handsets:
                handset.attach(self.rng.choice(self.basestations))
            tasks += [asyncio.create_task(self._roam(h, self._stop)) for h in self.handsets]
        await self._stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- Handsets --------------------------------------------------------------------

    async def _roam(self, handset: SimHandset, stop: asyncio.Event) -> None:
        """A handset moves to a neighbouring base station now and then, and at once (within
        two seconds) when its base station is out of service (not attached to a server)."""
        low, high = self.roam_seconds
        due = time.monotonic() + self.rng.uniform(low, high)
        while not await _stopped(stop, 2.0 * self.rng.uniform(0.8, 1.2)):
            current = handset.basestation
            lost = current is None or current.state != "attached"
            if not lost and time.monotonic() < due:
                continue
            target = self._neighbour(current)
            if target is not None and target is not current:
                old = current.name if current else "none"
                handset.attach(target)
                self._changed(Change(f"handset {handset.extension}", "roamed", "",
                                     f"{old} -> {target.name}"))  # fmt: skip
            due = time.monotonic() + self.rng.uniform(low, high)

    def _neighbour(self, current: SimDevice | None) -> SimDevice | None:
        """A base station in service near ``current`` (by number), as a walking user finds."""
        in_service = [d for d in self.basestations if d.state == "attached"]
        if not in_service:
            return None
        if current is None:
            return self.rng.choice(in_service)
        at = self.basestations.index(current)
        near = [d for d in in_service if 0 < abs(self.basestations.index(d) - at) <= 2]
        return self.rng.choice(near or in_service)

    # --- Reading the state -------------------------------------------------------------

    def _changed(self, change: Change) -> None:
        with self._lock:
            self.changes.append(change)
            del self.changes[:-10_000]
        if self.on_change is not None:
            self.on_change(change)

    def attached_counts(self, kind: str | None = None) -> dict[str, int]:
        """How many devices (of ``kind``, default all) are attached to each server address."""
        return dict(
            Counter(d.server for d in self.devices if d.server and (kind is None or d.kind == kind))
        )

    def states(self) -> dict[str, int]:
        return dict(Counter(d.state for d in self.devices))

    def peers(self) -> dict[str, int]:
        """How many devices learned each peer address."""
        return dict(Counter(d.peer for d in self.devices if d.peer))

    def aris(self, kind: str = "rfp") -> dict[str, int]:
        """How many devices (base stations by default) broadcast each ARI."""
        return dict(Counter(d.ari for d in self.devices if d.kind == kind))
