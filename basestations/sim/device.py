"""A simulated base station or media resource, and a simulated handset.

A device's state machine (``on_answer``/``on_unreachable`` decide, ``step``
does the I/O), as the application note describes a KIRK device:

- ``connecting``: keep-alives to the address it was configured with (the master).
- ``attached``: its server accepted it (200) and told it the peer's address and
  the keep-alive interval; it keeps alive at that interval.
- ``searching``: its server stopped answering (``missed`` keep-alives in a row,
  or at once when the connection is refused, and then it tries the other server at
  once): it tries the next server it knows, in turn while none takes it. A device
  remembers every server address it was configured with, attached to or told of
  (``known``), so after a promotion and a restart of the promoted server it still
  finds it, not only the old master.
- ``redirected``: a server answered 409 (it does not serve devices now) and
  named the server that does; the device goes there, unless it just found that
  server unreachable (then it retries where it is: the survivor takes it once
  its failover starts).
- ``refused``: 401/403 (unknown device, wrong secret, firmware too old); it
  retries slowly, as a real device would after its administrator fixed it.

Beside the keep-alives it probes the other server (unsigned ``GET`` on the
probe path) every ``PROBE_INTERVAL`` seconds and reports what it sees as
``peer_reachable``: the split-brain witness.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from basestations import protocol
from basestations.sim.client import Answer, AsyncClient, Unreachable

PROBE_INTERVAL = 3.0
PROBE_TIMEOUT = 1.0
REFUSED_RETRY = 10.0  # seconds between keep-alives of a refused device
SWITCH_AT_ONCE = 0.05  # at most this long before a device whose server refused it moves


@dataclass
class Change:
    """One state change of a device, as the simulator reports it."""

    device: str
    state: str
    server: str
    detail: str = ""

    def line(self) -> str:
        where = f" {self.server}" if self.server else ""
        return f"{self.device}: {self.state}{where}{f' ({self.detail})' if self.detail else ''}"


class SimDevice:
    """One simulated device; ``run`` keeps it alive until ``stop`` is set."""

    def __init__(
        self,
        *,
        kind: protocol.Kind,
        mac: str,
        name: str,
        home: str,
        secret: str,
        firmware: str = "PCS06B",
        on_change: Callable[[Change], None] | None = None,
        rng: random.Random | None = None,
        ip: str = "",
        channels: int = 32,
    ) -> None:
        self.kind = kind
        self.mac = mac
        self.name = name
        self.home = home
        self.firmware = firmware
        self.ip = ip
        self.channels = channels
        self.client = AsyncClient(secret=secret, mac=mac)
        self.on_change = on_change
        self.rng = rng or random.Random()
        self.state = "connecting"
        self.where = home  # the server the state concerns
        self.target = home  # where the next keep-alive goes
        self.server = ""  # the server it is attached to ('' when not attached)
        self.server_name = ""  # that server's node name
        self.peer = ""  # the other server, as learned from a server's answer
        # Every server address it knows: configured, attached to, told of (in that order).
        self.known: list[str] = [home]
        self.ari = ""  # the ARI it broadcasts, as its server said
        self.interval = protocol.KEEPALIVE_INTERVAL
        self.missed_max = protocol.MISSED_KEEPALIVES
        self.missed = 0
        self.reachable: dict[str, bool] = {}  # what it last saw of each server
        self.detail = ""
        self.handsets: set[str] = set()
        self.keepalives = 0
        self.radio_state = "synced" if kind == "rfp" else "ok"

    # --- What the device says --------------------------------------------

    def learn(self, address: str) -> None:
        if address and address not in self.known:
            self.known.append(address)

    def other(self, address: str | None = None) -> str:
        """The next server it knows after ``address`` (default: the one it keeps alive
        with): the peer it was told of first, then the others in turn, skipping those it
        last found unreachable while any other is left."""
        address = address or self.target
        order = [a for a in (self.peer, *self.known) if a]
        candidates = list(dict.fromkeys(a for a in order if a != address))
        if not candidates:
            return ""
        hopeful = [a for a in candidates if self.reachable.get(a) is not False]
        return (hopeful or candidates)[0]

    def report(self) -> protocol.KeepAlive:
        other = self.other()
        report: protocol.KeepAlive = {
            "mac": self.mac,
            "kind": self.kind,
            "firmware": self.firmware,
            "state": self.radio_state,
            "peer_reachable": self.reachable.get(other) if other else None,
        }
        if self.ip:
            report["ip"] = self.ip
        report["servers"] = list(self.known)
        if self.kind == "rfp":
            report["handsets"] = sorted(self.handsets)
        else:
            report["channels_in_use"] = 0
        return report

    # --- The state machine (no I/O) ------------------------------------------

    def _jitter(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.8, 1.2)

    def _retry(self) -> float:
        return self._jitter(max(0.1, self.interval / 2))

    def _set(self, state: str, where: str = "", detail: str = "") -> None:
        """Enter ``state`` (``where``: the server it concerns); report it when it changed.
        Searching has no ``where``, so a device alternating between two silent servers
        reports once, not at every try."""
        changed = (state, where) != (self.state, self.where)
        self.state, self.where, self.detail = state, where, detail
        self.server = where if state == "attached" else ""
        if state != "attached":
            self.server_name = ""
        if changed and self.on_change is not None:
            self.on_change(Change(self.name, state, where, detail))

    def on_answer(self, address: str, answer: Answer) -> float:
        """Decide on a server's answer; return the seconds until the next keep-alive."""
        self.reachable[address] = True
        if answer.status in (200, 409) and not answer.verified:
            # An unsigned accept or redirect could come from anybody: ignore it.
            return self.on_unreachable(Unreachable(address, "answer not signed", refused=False))
        body = answer.body
        if answer.status == 200:
            self.missed = 0
            self.learn(address)
            self.peer = str(body.get("peer") or self.peer)
            self.learn(self.peer)
            self.ari = str(body.get("ari") or self.ari)
            self.interval = float(body.get("interval") or self.interval)
            self.missed_max = int(body.get("missed") or self.missed_max)
            self._set("attached", address, f"peer {self.peer or 'none'}")
            self.server_name = str(body.get("server", ""))
            return self._jitter(self.interval)
        if answer.status == 409:
            self.missed = 0
            server = str(body.get("server") or "")
            self.learn(address)
            self.learn(server)
            if address not in (self.home, self.peer):
                self.peer = address
            if server and server != address:
                if server not in (self.home, self.peer):
                    self.peer = server
                if self.reachable.get(server) is False:
                    # The master it names is down (we just failed to reach it): stay, the
                    # survivor accepts us when its failover starts. Twice an interval, not
                    # faster: every device of the master waits here for failover_time.
                    self._set("searching", "", f"{server} unreachable; waiting at {address}")
                    return self._retry()
                self.target = server
                self._set("redirected", server, str(body.get("error", ""))[:120])
                return 0.0
            self._set("searching", "", str(body.get("error", ""))[:120])
            return self._retry()
        if answer.status in (401, 403):
            self.missed = 0
            self.target = self.home
            self._set("refused", address, str(body.get("error", ""))[:200])
            return REFUSED_RETRY
        reason = f"answered {answer.status}: {body.get('error', '')}"
        return self.on_unreachable(Unreachable(address, reason, refused=False))

    def on_unreachable(self, exc: Unreachable) -> float:
        """Decide on a keep-alive that got no (usable) answer; return the delay."""
        address = exc.address
        self.reachable[address] = False
        self.missed += 1
        if self.state == "attached" and not exc.refused and self.missed < self.missed_max:
            return self._jitter(self.interval)  # one miss: keep trying the same server
        other = self.other(address)
        if other:
            self.target = other
        self.missed = 0
        # Its own server refused the connection (it is not running): the other one is
        # tried at once, so the devices of a dead server are at the survivor, reporting
        # it lost, before the survivor's detection window has run out. Searching, it
        # tries the next one at the retry interval (two silent servers: no fast loop).
        at_once = exc.refused and self.state == "attached" and other
        self._set("searching", "", f"{address} {exc.reason}")
        return self.rng.uniform(0.0, SWITCH_AT_ONCE) if at_once else self._retry()

    # --- I/O -----------------------------------------------------------------

    async def step(self) -> float:
        """Send one keep-alive and decide; return the seconds until the next one."""
        address = self.target
        self.keepalives += 1
        try:
            answer = await self.client.keepalive(address, self.report())
        except Unreachable as exc:
            return self.on_unreachable(exc)
        return self.on_answer(address, answer)

    async def probe_once(self) -> None:
        other = self.other()
        if other:
            self.reachable[other] = await self.client.probe(other, PROBE_TIMEOUT)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep alive (and probe the other server) until ``stop`` is set."""
        self.client.timeout = max(0.5, min(2.0, self.interval))
        prober = asyncio.create_task(self._probe_loop(stop))
        try:
            # Spread the first keep-alives over one interval, as devices powering up would.
            delay = self.rng.uniform(0, self.interval)
            while not await _stopped(stop, delay):
                delay = await self.step()
                self.client.timeout = max(0.5, min(2.0, self.interval))
        finally:
            prober.cancel()
            self.client.close()

    async def _probe_loop(self, stop: asyncio.Event) -> None:
        while not await _stopped(stop, self._jitter(PROBE_INTERVAL)):
            await self.probe_once()


async def _stopped(stop: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds; True at once if ``stop`` is set meanwhile."""
    if delay <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return False
    return True


# How a simulated handset answers what it receives: "accept" (shows it; accepts messages
# that ask for an answer), "reject" (shows it, rejects), "ignore" (shows it, never
# answers), "busy" (refuses it: user busy), "out_of_range" (on no base station at all).
BEHAVIOURS = ("accept", "reject", "ignore", "busy", "out_of_range")
ACCEPTED, REJECTED = 0x81, 0x83


@dataclass
class SimHandset:
    """A handset of a user (its extension), on one base station at a time."""

    extension: str
    basestation: SimDevice | None = None
    roams: int = 0
    history: list[str] = field(default_factory=list)
    behaviour: str = "accept"
    # What its display showed last (newest last) and what it said to the system.
    screen: list[str] = field(default_factory=list)
    said: list[dict] = field(default_factory=list)
    in_charger: bool = False
    menu_choice: int = 1  # the menu item it picks (numbered from 1)
    prompt_reply: str = "OK"  # what it types at a prompt
    # The answers to its phonebook lookups (newest last): ref, text, entries, error.
    lookups: list[dict] = field(default_factory=list)

    def attach(self, basestation: SimDevice) -> None:
        if self.basestation is not None:
            self.basestation.handsets.discard(self.extension)
        self.basestation = basestation
        if self.behaviour != "out_of_range":
            basestation.handsets.add(self.extension)
        self.roams += 1
        self.history.append(basestation.name)
        del self.history[:-10]

    def behave(self, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        self.behaviour = behaviour
        if self.basestation is not None:
            if behaviour == "out_of_range":
                self.basestation.handsets.discard(self.extension)
            else:
                self.basestation.handsets.add(self.extension)

    def show(self, text: str) -> None:
        self.screen.append(text)
        del self.screen[:-20]

    def receive(self, message: dict, rfp_map: list[dict[str, int]]) -> list[dict]:
        """What the handset says back to a message from the server (uplink events)."""
        mid, me, kind = message["id"], self.extension, message["kind"]
        if self.behaviour == "busy":
            return [{"kind": "release", "id": mid, "from": me, "reason": 4}]
        if kind in ("sms", "sms_advanced", "broadcast") and message.get("display"):
            self.show(message["display"])
        events: list[dict] = [{"kind": "delivered", "id": mid, "from": me}]
        if kind == "sms_advanced" and message.get("response") and self.behaviour != "ignore":
            action = ACCEPTED if self.behaviour == "accept" else REJECTED
            events.append({"kind": "answer", "id": mid, "from": me, "action": action,
                           "status": [1 if action == ACCEPTED else 0]})  # fmt: skip
        elif kind == "base_stations":
            events.append({"kind": "base_stations", "id": mid, "from": me, "rfp_map": rfp_map})
        elif kind.startswith("call_"):
            events += self.on_call(message)
        elif kind == "hardware":
            value = bytes([int(message.get("hardware") or 0) & 0xFF, 42])
            events.append({"kind": "hardware", "id": mid, "from": me,
                           "hardware": int(message.get("hardware") or 0), "reason": 0,
                           "data": base64.b64encode(value).decode()})  # fmt: skip
        elif kind == "status":
            events.append(self.status_event(int(message.get("status") or 0)))
        elif kind == "lookup_result":
            self.on_lookup(message)
        return events

    def on_lookup(self, message: dict) -> None:
        """The phonebook's answer to a lookup: kept, and its first entry (or why there is
        none) shown on the display."""
        entries = [{"name": str(e.get("name", "")), "number": str(e.get("number", ""))}
                   for e in message.get("entries") or [] if isinstance(e, dict)]  # fmt: skip
        error = str(message.get("error") or "")
        self.lookups.append({"ref": message.get("ref"), "text": str(message.get("text", "")),
                             "entries": entries, "error": error})  # fmt: skip
        del self.lookups[:-10]
        if error:
            self.show(f"Phonebook: {error}"[:72])
        elif entries:
            more = f" (+{len(entries) - 1})" if len(entries) > 1 else ""
            self.show(f"{entries[0]['name']} {entries[0]['number']}{more}"[:72])
        else:
            self.show(f"Phonebook: no entry for {message.get('text', '')}"[:72])

    def on_call(self, message: dict) -> list[dict]:
        """A text call's step: accept it (or not), pick a menu item, answer a prompt."""
        call, me, kind = int(message.get("call") or 0), self.extension, message["kind"]
        if kind == "call_release":
            self.show("call ended")
            return []
        if message.get("display"):
            self.show(str(message["display"]))
        if self.behaviour == "ignore":
            return []
        if kind == "call_setup":
            if self.behaviour == "reject":
                return [{"kind": "call_release", "call": call, "from": me, "reason": 0}]
            return [{"kind": "call_accept", "call": call, "from": me}]
        if kind == "call_menu":
            items = list(message.get("items") or [])
            self.show(" / ".join(str(i) for i in items)[:72])
            return [{"kind": "call_menu", "call": call, "from": me, "item": self.menu_choice,
                     "errorcode": 0 if self.menu_choice <= len(items) else 1}]  # fmt: skip
        if kind == "call_prompt":
            return [{"kind": "call_prompt", "call": call, "from": me,
                     "text": self.prompt_reply[: int(message.get("max") or 72)],
                     "errorcode": 0}]  # fmt: skip
        return []

    def status_event(self, status: int) -> dict:
        """A status report: 11 charger (0x01 in, 0x02 out), else the status alone."""
        data = b""
        if status == 11:
            data = b"\x01" if self.in_charger else b"\x02"
        return {"kind": "status", "from": self.extension, "status": status,
                "data": base64.b64encode(data).decode()}  # fmt: skip
