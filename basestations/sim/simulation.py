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
import base64
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import uvloop

from basestations import protocol
from basestations.sim.client import Unreachable
from basestations.sim.device import BEHAVIOURS, Change, SimDevice, SimHandset, _stopped


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
        control_dir: Path | None = None,
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
        self.handset_by_extension = {h.extension: h for h in self.handsets}
        # Where the handsets' state is written and commands for them are read (kwssim
        # --handset): another process shows a screen or presses a button there.
        self.control_dir = control_dir
        self._uplinks: dict[str, asyncio.Queue] = {}
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
            # libuv's loop: a thousand devices cost the simulator a third less CPU, which
            # the node beside it on the same machine gets (bench/failover.py).
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self.run())
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
            if self.control_dir is not None:
                tasks.append(asyncio.create_task(self._control(self._stop)))
            # A base station's handset channel: none without handsets (a thousand idle
            # channels would cost the simulator more than its keep-alives).
            for device in self.basestations if self.handsets else ():
                self._uplinks[device.mac] = asyncio.Queue()
                tasks.append(asyncio.create_task(self._downlink(device, self._stop)))
                tasks.append(asyncio.create_task(self._uplink(device, self._stop)))
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

    # --- The handset channel: messages down, answers and handset events up ----------------

    async def _downlink(self, device: SimDevice, stop: asyncio.Event) -> None:
        """While the base station is attached and has handsets, keep one downlink open to
        its server; hand each message to its handset and queue what the handset says."""
        while not stop.is_set():
            if device.state != "attached" or not device.handsets:
                if await _stopped(stop, 0.2):
                    return
                continue
            address, named = device.server, set(device.handsets)
            payload = {"mac": device.mac, "handsets": sorted(named), "wait": 20.0}
            waiting = asyncio.ensure_future(
                device.client.post(address, protocol.DOWNLINK_PATH, payload, timeout=25.0)
            )
            # A handset that arrives (or leaves) opens a new downlink at once, naming it:
            # the server routes its messages here from then on.
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=0.1)
                moved = set(device.handsets) != named or device.server != address
                if not waiting.done() and (stop.is_set() or moved):
                    waiting.cancel()
            if stop.is_set():
                return
            if waiting.cancelled():
                continue
            try:
                answer = waiting.result()
            except Unreachable:
                if await _stopped(stop, 0.5):
                    return
                continue
            if answer.status != 200 or not answer.verified:
                if await _stopped(stop, 0.5):
                    return
                continue
            for message in answer.body.get("messages") or []:
                self._deliver(device, message)

    def _deliver(self, device: SimDevice, message: dict) -> None:
        handset = self.handset_by_extension.get(str(message.get("to")))
        if handset is None or handset.basestation is not device:
            # It roamed away meanwhile: say so, and the server pages it again.
            self._uplinks[device.mac].put_nowait(
                {"kind": "not_here", "id": message["id"], "from": str(message.get("to"))}
            )
            return
        events = handset.receive(message, self._rfp_map(handset))
        if message.get("display"):
            self._changed(Change(f"handset {handset.extension}", "shows", "",
                                 str(message["display"])[:72]))  # fmt: skip
        for event in events:
            self._say(handset, event)

    def _rfp_map(self, handset: SimHandset) -> list[dict[str, int]]:
        """The base stations a handset hears: its own first (strongest), then neighbours."""
        current = handset.basestation
        if current is None:
            return []
        at = self.basestations.index(current)
        near = [d for d in self.basestations if d is not current and abs(
            self.basestations.index(d) - at) <= 2]  # fmt: skip
        heard = [current, *near][:5]
        return [{"rpn": self.basestations.index(d) + 1, "rssi": max(1, 200 - 30 * n)}
                for n, d in enumerate(heard)]  # fmt: skip

    def _say(self, handset: SimHandset, event: dict) -> None:
        """Queue an uplink event of ``handset`` on its base station (event-loop thread)."""
        handset.said.append(event)
        del handset.said[:-50]
        device = handset.basestation
        if device is not None and device.mac in self._uplinks:
            self._uplinks[device.mac].put_nowait(event)

    async def _uplink(self, device: SimDevice, stop: asyncio.Event) -> None:
        queue = self._uplinks[device.mac]
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(queue.get(), 0.5)
            except TimeoutError:
                continue
            events = [first]
            while not queue.empty() and len(events) < protocol.MAX_UPLINK_EVENTS:
                events.append(queue.get_nowait())
            # Until a server takes them (the base station may be moving to the other server
            # after a failure), for up to a minute: a handset's alarm is not lost on the way.
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline:
                if device.server:
                    try:
                        answer = await device.client.post(
                            device.server, protocol.UPLINK_PATH,
                            {"mac": device.mac, "events": events}, timeout=5.0,
                        )  # fmt: skip
                        if answer.status == 200 and answer.body.get("accepted") == len(events):
                            break
                    except Unreachable:
                        pass
                if await _stopped(stop, 0.3):
                    return

    # --- The control folder: the handsets' state out, commands in ----------------------------

    def handsets_state(self) -> dict[str, dict]:
        return {
            h.extension: {
                "basestation": h.basestation.name if h.basestation else "",
                "behaviour": h.behaviour, "in_charger": h.in_charger, "screen": list(h.screen),
                "lookups": list(h.lookups),
            }
            for h in self.handsets
        }  # fmt: skip

    async def _control(self, stop: asyncio.Event) -> None:
        folder = self.control_dir
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True)
        while not await _stopped(stop, 0.5):
            state = folder / "handsets.json"
            temporary = folder / "handsets.json.tmp"
            temporary.write_text(json.dumps(self.handsets_state(), indent=1))
            temporary.replace(state)
            for command_file in sorted(folder.glob("*.command.json")):
                try:
                    command = json.loads(command_file.read_text())
                    self._command(command)
                except (ValueError, KeyError, TypeError) as exc:
                    self._changed(Change("kwssim", "command refused", "", str(exc)[:120]))
                command_file.unlink(missing_ok=True)

    def _command(self, command: dict) -> None:
        handset = self.handset(str(command["handset"]))
        action = command["action"]
        if action == "alarm":
            self.press_alarm(handset.extension)
        elif action == "charger":
            self.charger(handset.extension, into=bool(command["into"]))
        elif action == "send":
            self.send_message(handset.extension, str(command["to"]), str(command["text"]))
        elif action == "behave":
            handset.behave(str(command["behaviour"]))
        elif action == "lookup":
            self._say(
                handset, self._lookup_event(handset, str(command["text"]), int(command["ref"]))
            )
        else:
            raise ValueError(f"unknown action {action!r}")
        self._changed(Change(f"handset {handset.extension}", action, "", ""))

    # --- What a test (or the demo) makes a handset do; thread-safe -----------------------------

    def _in_loop(self, work: Callable[[], None]) -> None:
        if self._loop is None:
            raise RuntimeError("the simulation is not running")
        self._loop.call_soon_threadsafe(work)

    def handset(self, extension: str) -> SimHandset:
        return self.handset_by_extension[str(extension)]

    def behave(self, extension: str, behaviour: str) -> None:
        """Set how a handset answers (see device.BEHAVIOURS)."""
        handset = self.handset(extension)
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        self._in_loop(lambda: handset.behave(behaviour))

    def send_message(self, extension: str, to: str, text: str) -> None:
        """The handset sends a text message to a number (an application gets endpoint_sms)."""
        handset = self.handset(extension)
        event = {"kind": "sms", "from": handset.extension, "to": str(to), "display": text[:72]}
        self._in_loop(lambda: self._say(handset, event))

    def lookup(self, extension: str, text: str) -> int:
        """The handset looks ``text`` up in the corporate phonebook, through the server its
        base station is attached to; returns the lookup's ref (the answer lands in
        ``handset.lookups`` and on its screen)."""
        handset = self.handset(extension)
        ref = self.rng.randint(1, 2**31 - 1)
        event = self._lookup_event(handset, text, ref)
        self._in_loop(lambda: self._say(handset, event))
        return ref

    @staticmethod
    def _lookup_event(handset: SimHandset, text: str, ref: int) -> dict:
        return {"kind": "lookup", "from": handset.extension, "ref": ref,
                "text": text.strip()[: protocol.LOOKUP_TEXT_MAX]}  # fmt: skip

    def press_alarm(self, extension: str) -> None:
        """The alarm button: endpoint_status 12, pressed, with the base stations it hears."""
        handset = self.handset(extension)

        def press() -> None:
            data = bytes([0x01])
            for entry in self._rfp_map(handset)[:5]:
                data += bytes([entry["rpn"] & 0xFF, entry["rssi"] & 0xFF])
            self._say(handset, {"kind": "status", "from": handset.extension, "status": 12,
                                "data": base64.b64encode(data).decode()})  # fmt: skip

        self._in_loop(press)

    def call(self, extension: str, to: str) -> None:
        """The handset calls a number of an application (endpoint_call_setup)."""
        handset = self.handset(extension)
        event = {"kind": "call_setup", "from": handset.extension, "to": str(to)}
        self._in_loop(lambda: self._say(handset, event))

    def key(self, extension: str, call: int, key: str) -> None:
        """A key pressed during a text call (endpoint_call_key)."""
        handset = self.handset(extension)
        event = {"kind": "call_key", "from": handset.extension, "call": int(call), "key": key}
        self._in_loop(lambda: self._say(handset, event))

    def sensor_report(self, extension: str, hardware: int, data: bytes) -> None:
        """A hardware element reports by itself (endpoint_hardware_extension)."""
        handset = self.handset(extension)
        event = {"kind": "hardware", "from": handset.extension, "hardware": hardware,
                 "reason": 0, "data": base64.b64encode(data).decode()}  # fmt: skip
        self._in_loop(lambda: self._say(handset, event))

    def charger(self, extension: str, *, into: bool) -> None:
        """Into or out of the charger: endpoint_status 11 (data 0x01 in, 0x02 out)."""
        handset = self.handset(extension)

        def move() -> None:
            handset.in_charger = into
            self._say(handset, handset.status_event(11))

        self._in_loop(move)

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
