"""The XML-RPC applications' sessions and the messages on their way to handsets, in the
memory of the web process (one asyncio event loop: ``kws_admin.asgi``).

Nothing here touches the database or the network: ``messaging.server`` feeds it the
applications' calls and the base stations' downlinks and uplinks, and runs ``tick``.

Routing. A base station keeps one downlink open to the server it is attached to and
names the handsets on it; a message for a handset goes to the downlink of the base
station that last named it. Base stations attach to the server that serves devices (the
master; the backup during a failover), which is also the server that accepts
applications, so every handset is one hop away whichever server registers its user with
the PBX. A handset that no open downlink names is paged for ``paging_timeout`` seconds
(the KWS's 12 s) and then reported out of range (``endpoint_release`` reason 3).

What reaches a session. The answers to a message (delivered, accepted, rejected, task
progress, released) go to the session that sent it; what a handset says by itself (a
message to a number, the alarm button, the charger, the base stations it hears) goes to
every session. Each session queues at most ``queue_max`` events (the oldest are dropped
beyond, with a warning) and has at most ``max_pending`` messages on their way (the
vendor's advice for a KWS6000: 16); beyond that a send is refused with BUSY.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import xmlrpc.client
from collections import deque
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# The SDK's status codes.
OK = 0
UNKNOWN_SESSION = -1
BUSY = -2
RECEIVE_ACTIVE = -3
LOGIN_INCORRECT = -4
UNKNOWN_CALL = -5

# endpoint_release reasons.
NORMAL = 0
NOT_IN_RANGE = 3
USER_BUSY = 4
UNKNOWN_USER = 5
UNKNOWN_REASON = 6

RELEASE_REASONS = {
    NORMAL: "normal", NOT_IN_RANGE: "not in range", USER_BUSY: "user busy",
    UNKNOWN_USER: "unknown user", UNKNOWN_REASON: "unknown reason",
    33: "incompatible service", 84: "unknown reason",
}  # fmt: skip

# sms_advanced answers that end a message (accepted, accepted by callback, rejected,
# task completed, deleted); 0x84 and 0x85 (task started, almost done) do not.
FINAL_ANSWERS = frozenset({0x81, 0x82, 0x83, 0x86, 0x88})

ENDED = object()  # what a waiting receive gets when its session is ended by the server
LOGGED_OUT = object()  # ... and when the application logged the session out itself


@dataclass
class Session:
    id: int
    account: str
    address: str
    since: float  # wall clock
    last_call: float  # monotonic
    events: deque = field(default_factory=deque)
    waiter: asyncio.Future | None = None
    pending: set[int] = field(default_factory=set)
    dropped: int = 0


@dataclass
class Message:
    id: int  # the server's id (downlinks and uplinks name it)
    session: int
    kind: str
    to: str
    fields: dict[str, Any]
    app_id: int = 0  # sms_advanced: the application's own id, which its answers carry
    wants_answer: bool = False
    created: float = 0.0  # monotonic
    sent_to: str = ""  # the base station's MAC it went down to ('' while paging)
    delivered_at: float | None = None


@dataclass
class Call:
    """A text call between an application (its session) and a handset."""

    id: int
    session: int
    handset: str
    accepted: bool = False


@dataclass
class Downlink:
    mac: str
    handsets: set[str]
    future: asyncio.Future


class Hub:
    def __init__(
        self,
        *,
        paging_timeout: float = 12.0,
        answer_timeout: float = 60.0,
        idle_timeout: float = 120.0,
        max_pending: int = 16,
        queue_max: int = 1000,
    ) -> None:
        self.paging_timeout = paging_timeout
        self.answer_timeout = answer_timeout
        self.idle_timeout = idle_timeout
        self.max_pending = max_pending
        self.queue_max = queue_max
        self.events_max = max(max_pending, queue_max // 4)
        self.accepting = False
        self.refusal = "this server is starting"  # why it does not accept applications
        self.sessions: dict[int, Session] = {}
        self.messages: dict[int, Message] = {}
        self.downlinks: dict[str, Downlink] = {}
        self.queued: dict[str, list[Message]] = {}  # by base station MAC, for its next poll
        self.paging: list[Message] = []  # for handsets no downlink names now
        self.handset_at: dict[str, str] = {}  # extension -> MAC of the last base station
        self.calls: dict[int, Call] = {}
        # What handsets said while no session existed: (monotonic time, event), for the
        # next session to log in within ``unclaimed_for`` seconds.
        self.unclaimed: deque = deque(maxlen=100)
        # The last messages to and from each handset, for its user's page.
        self.history: dict[str, deque] = {}
        self.unclaimed_for = 60.0
        self._next_id = 1
        self.delivered = 0  # counters for the Status page and the statistics
        self.released: dict[int, int] = {}

    # --- Accepting applications ---------------------------------------------------------

    def accept(self, accepting: bool, refusal: str = "") -> None:
        """Accept applications, or stop: every session ends at once (a waiting receive
        returns ENDED), and what they had on the way is dropped with them."""
        if not accepting:
            self.refusal = refusal or self.refusal
        if accepting == self.accepting:
            return
        self.accepting = accepting
        if not accepting:
            ended = len(self.sessions)
            for session in list(self.sessions.values()):
                self._end(session)
            self.paging.clear()
            self.queued.clear()
            if ended:
                logger.warning("XML-RPC: %d sessions ended: %s", ended, self.refusal)

    # --- Sessions -------------------------------------------------------------------------

    def login(self, *, account: str, address: str) -> int:
        while True:
            sid = secrets.randbelow(2**31 - 2) + 1
            if sid not in self.sessions:
                break
        session = Session(sid, account, address, time.time(), time.monotonic())
        self.sessions[sid] = session
        cutoff = time.monotonic() - self.unclaimed_for
        for at, event in self.unclaimed:
            if at >= cutoff:
                self._push(session, event)
        self.unclaimed.clear()
        return sid

    def session(self, sid: object) -> Session | None:
        session = self.sessions.get(sid) if isinstance(sid, int) else None
        if session is not None:
            session.last_call = time.monotonic()
        return session

    def logout(self, sid: int) -> bool:
        session = self.sessions.get(sid)
        if session is None:
            return False
        self._end(session, why=LOGGED_OUT)
        return True

    def accounts_keep(self, enabled: frozenset[str]) -> int:
        """End the sessions of accounts no longer in ``enabled`` (disabled or deleted since
        they logged in; a waiting receive returns ENDED); return how many ended."""
        gone = [session for session in self.sessions.values() if session.account not in enabled]
        for session in gone:
            logger.info("XML-RPC session of %s ended: the account is disabled or deleted",
                        session.account)  # fmt: skip
            self._end(session)
        return len(gone)

    def _end(self, session: Session, why: object = ENDED) -> None:
        self.sessions.pop(session.id, None)
        for mid in session.pending:
            message = self.messages.pop(mid, None)
            if message is not None and message in self.paging:
                self.paging.remove(message)
        if session.waiter is not None and not session.waiter.done():
            session.waiter.set_result(why)

    async def receive(self, session: Session, timeout: float) -> list[dict] | int | object:
        """The session's queued events, waiting up to ``timeout`` seconds for the first;
        RECEIVE_ACTIVE while another receive of the session waits; ENDED if the server
        ends the session meanwhile."""
        if session.waiter is not None and not session.waiter.done():
            return RECEIVE_ACTIVE
        if not session.events and timeout > 0:
            session.waiter = asyncio.get_running_loop().create_future()
            try:
                result = await asyncio.wait_for(asyncio.shield(session.waiter), timeout)
            except TimeoutError:
                result = None
            finally:
                session.waiter = None
            if result is ENDED:
                return ENDED
            if result is LOGGED_OUT:
                return UNKNOWN_SESSION
        if session.id not in self.sessions:
            return UNKNOWN_SESSION if self.accepting else ENDED
        session.last_call = time.monotonic()
        events = list(session.events)
        session.events.clear()
        return events

    def _push(self, session: Session, event: dict) -> None:
        session.events.append(event)
        if len(session.events) > self.queue_max:
            session.events.popleft()
            session.dropped += 1
            if session.dropped in (1, 100, 10_000):
                logger.warning("XML-RPC session of %s does not fetch its events: %d dropped",
                               session.account, session.dropped)  # fmt: skip
        if session.waiter is not None and not session.waiter.done():
            session.waiter.set_result(True)

    def _broadcast_event(self, event: dict) -> None:
        if not self.sessions:
            # No application is connected (it is finding this server after a failover):
            # what a handset says waits for the next session instead of being lost.
            self.unclaimed.append((time.monotonic(), event))
            return
        for session in list(self.sessions.values()):
            self._push(session, dict(event))

    # --- Messages to handsets ---------------------------------------------------------------

    def send(
        self, session: Session, *, kind: str, to: str, fields: dict[str, Any], app_id: int = 0,
        wants_answer: bool = False,
    ) -> int:  # fmt: skip
        """Queue a message to the handset ``to``; OK, or BUSY beyond ``max_pending``
        messages on their way, or while the session leaves ``events_max`` events unfetched
        (their outcomes would have nowhere to go)."""
        if len(session.pending) >= self.max_pending or len(session.events) >= self.events_max:
            return BUSY
        message = Message(self._new_id(), session.id, kind, to, fields, app_id=app_id,
                          wants_answer=wants_answer, created=time.monotonic())  # fmt: skip
        self.messages[message.id] = message
        session.pending.add(message.id)
        self._note(message, by=session.account)
        self._route(message)
        return OK

    def send_test(self, *, to: str, display: str, actor: str) -> int:
        """A test message from the GUI (no session): its outcome shows in the history."""
        message = Message(self._new_id(), 0, "sms", to, {"display": display, "callback": ""},
                          created=time.monotonic())  # fmt: skip
        self.messages[message.id] = message
        self._note(message, by=f"{actor} (test message)")
        self._route(message)
        return message.id

    def lookup_answer(self, *, to: str, ref: int, text: str, entries: list[dict[str, str]],
                      error: str = "") -> int:  # fmt: skip
        """The answer to a handset's phonebook lookup, on its way down like a message."""
        fields = {"ref": ref, "text": text, "entries": entries, "error": error}
        message = Message(self._new_id(), 0, "lookup_result", to, fields, created=time.monotonic())
        self.messages[message.id] = message
        self._route(message)
        return message.id

    # --- Text calls -------------------------------------------------------------------------

    def call_setup(self, session: Session, *, to: str, display: str, callback: str) -> int:
        """A text call to a handset: its call id (> 0); events follow as the handset answers."""
        call = Call(self._new_id(), session.id, to)
        self.calls[call.id] = call
        self._call_down(call, "call_setup", {"display": display, "callback": callback})
        return call.id

    def call_send(self, session: Session, call_id: object, kind: str, fields: dict) -> int:
        """Display, menu, prompt or release on a call of this session; UNKNOWN_CALL else."""
        call = self.calls.get(call_id) if isinstance(call_id, int) else None
        if call is None or call.session != session.id:
            return UNKNOWN_CALL
        self._call_down(call, kind, fields)
        if kind == "call_release":
            del self.calls[call.id]
        return OK

    def _call_down(self, call: Call, kind: str, fields: dict) -> None:
        message = Message(self._new_id(), call.session, kind, call.handset,
                          {"call": call.id, **fields}, created=time.monotonic())  # fmt: skip
        self.messages[message.id] = message
        self._route(message)

    def _call_of(self, event: dict) -> Call | None:
        call = self.calls.get(event.get("call", 0))
        return call if call is not None and call.handset == event["from"] else None

    def _call_event(self, call: Call, event: dict) -> None:
        session = self.sessions.get(call.session)
        if session is not None:
            self._push(session, {"call": call.id, **event})

    def _on_call_setup(self, event: dict) -> None:
        """A handset calls a number: the oldest session gets the call (none: released)."""
        oldest = min(self.sessions.values(), key=lambda s: s.since, default=None)
        call = Call(self._new_id(), oldest.id if oldest else 0, event["from"])
        if oldest is None:
            self._call_down(call, "call_release", {"reason": NOT_IN_RANGE})
            return
        self.calls[call.id] = call
        self._push(oldest, {"type": "endpoint_call_setup", "call": call.id,
                            "from": event["from"], "to": event["to"]})  # fmt: skip

    def _on_call_accept(self, event: dict) -> None:
        call = self._call_of(event)
        if call is not None:
            call.accepted = True
            self._call_event(call, {"type": "endpoint_call_accept"})

    def _on_call_key(self, event: dict) -> None:
        call = self._call_of(event)
        if call is not None:
            self._call_event(call, {"type": "endpoint_call_key", "key": event["key"]})

    def _on_call_menu(self, event: dict) -> None:
        call = self._call_of(event)
        if call is not None:
            self._call_event(call, {"type": "endpoint_call_menu", "item": event["item"],
                                    "errorcode": event["errorcode"]})  # fmt: skip

    def _on_call_prompt(self, event: dict) -> None:
        call = self._call_of(event)
        if call is not None:
            self._call_event(call, {"type": "endpoint_call_prompt", "text": event["text"],
                                    "errorcode": event["errorcode"]})  # fmt: skip

    def _on_call_release(self, event: dict) -> None:
        call = self._call_of(event)
        if call is not None:
            del self.calls[call.id]
            self._call_event(call, {"type": "endpoint_call_release", "reason": event["reason"]})

    def _on_hardware(self, event: dict) -> None:
        try:
            data = base64.b64decode(event["data"], validate=True)
        except ValueError:
            data = b""
        # Applications written for the real server read the element as "element".
        report = {"type": "endpoint_hardware_extension", "from": event["from"],
                  "hardware": event["hardware"], "element": event["hardware"],
                  "reason": event["reason"], "data": xmlrpc.client.Binary(data)}  # fmt: skip
        message = self._message_of(event) if "id" in event else None
        if message is None:
            self._broadcast_event(report)
            return
        session = self.sessions.get(message.session)
        if session is not None:
            self._push(session, report)
        self._complete(message)

    def _note(self, message: Message, *, by: str) -> None:
        if message.kind not in ("sms", "sms_advanced", "broadcast"):
            return
        text = str(message.fields.get("display", ""))
        entry = {"id": message.id, "at": time.time(), "direction": "to", "by": by,
                 "text": text, "outcome": "on its way"}  # fmt: skip
        self._remember(message.to, entry)

    def _remember(self, extension: str, entry: dict) -> None:
        if extension not in self.history and len(self.history) >= 20_000:
            self.history.pop(next(iter(self.history)))
        self.history.setdefault(extension, deque(maxlen=10)).append(entry)

    def _outcome(self, message: Message, outcome: str) -> None:
        for entry in self.history.get(message.to, ()):
            if entry["id"] == message.id:
                entry["outcome"] = outcome

    def recent(self, extension: str) -> list[dict]:
        """The last messages to and from a handset, newest first."""
        return [dict(e) for e in reversed(self.history.get(extension, ()))]

    def release_now(self, session: Session, *, to: str, reason: int) -> None:
        """A message that cannot be sent at all (an unknown user): its endpoint_release."""
        self._push(session, release_event(to, reason))
        self.released[reason] = self.released.get(reason, 0) + 1

    def handsets_in_range(self) -> list[str]:
        """Extensions of the handsets on an open downlink (for a broadcast to all)."""
        return sorted({h for d in self.downlinks.values() for h in d.handsets})

    def _new_id(self) -> int:
        mid = self._next_id
        self._next_id = mid + 1 if mid < 2**31 - 2 else 1
        return mid

    def _route(self, message: Message) -> None:
        mac = self.handset_at.get(message.to)
        downlink = self.downlinks.get(mac) if mac else None
        if downlink is None or message.to not in downlink.handsets:
            self.paging.append(message)
            return
        message.sent_to = downlink.mac
        self.queued.setdefault(downlink.mac, []).append(message)
        if not downlink.future.done():
            downlink.future.set_result(True)

    def _complete(self, message: Message) -> None:
        self.messages.pop(message.id, None)
        session = self.sessions.get(message.session)
        if session is not None:
            session.pending.discard(message.id)

    def _release(self, message: Message, reason: int) -> None:
        if message.kind.startswith("call_"):
            # A call's message that cannot reach the handset ends the call.
            call = self.calls.pop(message.fields.get("call", 0), None)
            self._complete(message)
            if call is not None and message.kind != "call_release":
                self._call_event(call, {"type": "endpoint_call_release", "reason": reason})
            return
        if reason != NORMAL:
            self._outcome(message, f"not delivered: {RELEASE_REASONS.get(reason, reason)}")
        session = self.sessions.get(message.session)
        if session is not None:
            self._push(session, release_event(message.to, reason))
        self.released[reason] = self.released.get(reason, 0) + 1
        self._complete(message)

    # --- Base stations: downlinks and uplinks -------------------------------------------

    async def downlink(self, mac: str, handsets: list[str], wait: float) -> list[dict]:
        """A base station's poll: the messages for its handsets, waiting up to ``wait`` s."""
        for extension in handsets:
            self.handset_at[extension] = mac
        for extension, at in list(self.handset_at.items()):
            if at == mac and extension not in handsets:
                del self.handset_at[extension]
        old = self.downlinks.get(mac)
        if old is not None and not old.future.done():
            old.future.set_result(False)  # replaced by this poll
        future = asyncio.get_running_loop().create_future()
        current = Downlink(mac, set(handsets), future)
        self.downlinks[mac] = current
        self._page(mac)
        if not self.queued.get(mac) and wait > 0:
            try:
                await asyncio.wait_for(asyncio.shield(future), wait)
            except TimeoutError:
                pass
        if self.downlinks.get(mac) is not current:
            return []  # a newer poll of the base station replaced this one: it takes them
        del self.downlinks[mac]
        messages = self.queued.pop(mac, [])
        return [downlink_message(m) for m in messages if m.id in self.messages]

    def _page(self, mac: str) -> None:
        """Messages paging for a handset this base station now names go down to it."""
        downlink = self.downlinks[mac]
        found = [m for m in self.paging if m.to in downlink.handsets]
        for message in found:
            self.paging.remove(message)
            self._route(message)

    def uplink(self, mac: str, events: list[dict]) -> int:
        """What the handsets of a base station said; returns how many events were taken."""
        for event in events:
            getattr(self, f"_on_{event['kind']}")(event)
        return len(events)

    def _message_of(self, event: dict) -> Message | None:
        message = self.messages.get(event.get("id", 0))
        if message is None or message.to != event["from"]:
            return None  # an answer to a message that has ended (or to someone else's)
        return message

    def _on_delivered(self, event: dict) -> None:
        message = self._message_of(event)
        if message is None:
            return
        self.delivered += 1
        message.delivered_at = time.monotonic()
        self._outcome(message, "delivered")
        if not message.wants_answer:
            if message.kind == "sms":
                self._release(message, NORMAL)
            else:
                self._complete(message)

    def _on_not_here(self, event: dict) -> None:
        """The handset left the base station before its message arrived: page it again,
        for a fresh paging time, wherever it is now."""
        message = self._message_of(event)
        if message is None or message.delivered_at is not None:
            return
        left = message.sent_to
        message.sent_to, message.created = "", time.monotonic()
        if left and self.handset_at.get(message.to) == left:
            del self.handset_at[message.to]  # until a base station names it again
        self._route(message)

    def _on_answer(self, event: dict) -> None:
        message = self._message_of(event)
        if message is None:
            return
        session = self.sessions.get(message.session)
        if session is not None:
            self._push(session, {
                "type": "endpoint_sms_advanced", "from": message.to, "id": message.app_id,
                "action": event["action"], "status": list(event["status"]), "rfp_map": [],
                "datadescriptor": 0, "data": xmlrpc.client.Binary(b""),
            })  # fmt: skip
        if event["action"] in FINAL_ANSWERS:
            self._outcome(
                message,
                {0x81: "accepted", 0x82: "accepted by callback", 0x83: "rejected"}.get(
                    event["action"], "done"
                ),
            )
            self._complete(message)

    def _on_release(self, event: dict) -> None:
        message = self._message_of(event)
        if message is not None:
            self._release(message, event["reason"])

    def _on_sms(self, event: dict) -> None:
        self._remember(event["from"], {"id": 0, "at": time.time(), "direction": "from",
                                       "by": f"to {event['to']}", "text": event["display"],
                                       "outcome": "received"})  # fmt: skip
        self._broadcast_event({"type": "endpoint_sms", "from": event["from"], "to": event["to"],
                               "display": event["display"]})  # fmt: skip

    def _on_status(self, event: dict) -> None:
        try:
            data = base64.b64decode(event["data"], validate=True)
        except ValueError:
            data = b""
        self._broadcast_event({"type": "endpoint_status", "from": event["from"],
                               "status": event["status"],
                               "data": xmlrpc.client.Binary(data)})  # fmt: skip

    def _on_base_stations(self, event: dict) -> None:
        report = {"type": "endpoint_base_stations", "from": event["from"],
                  "rfp_map": [dict(e) for e in event["rfp_map"]]}  # fmt: skip
        message = self._message_of(event) if "id" in event else None
        if message is None:
            self._broadcast_event(report)
            return
        session = self.sessions.get(message.session)
        if session is not None:
            self._push(session, report)
        self._complete(message)

    # --- Time -----------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Page-outs (not in range), unanswered messages and idle sessions, by the clock."""
        now = time.monotonic() if now is None else now
        for message in [m for m in self.paging if now - m.created > self.paging_timeout]:
            self.paging.remove(message)
            self._release(message, NOT_IN_RANGE)
        for message in list(self.messages.values()):
            delivered = message.delivered_at
            if delivered is not None and now - delivered > self.answer_timeout:
                self._release(message, NORMAL)  # delivered, never answered
            elif delivered is None and now - message.created > self.paging_timeout * 2:
                self._release(message, NOT_IN_RANGE)  # sent down, never confirmed
        for session in list(self.sessions.values()):
            waiting = session.waiter is not None and not session.waiter.done()
            if not waiting and now - session.last_call > self.idle_timeout:
                logger.info("XML-RPC session of %s ended: idle for %.0f s", session.account,
                            now - session.last_call)  # fmt: skip
                self._end(session)


def release_event(to: str, reason: int) -> dict:
    return {"type": "endpoint_release", "from": to, "reason": reason}


def downlink_message(message: Message) -> dict:
    """A message as its base station gets it: id, addressee, kind and the kind's fields
    (bytes as base64 text)."""
    out: dict[str, Any] = {"id": message.id, "to": message.to, "kind": message.kind}
    for name, value in message.fields.items():
        out[name] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return out
