"""The asyncio side of the web process (``kws_admin.asgi``): the XML-RPC API on ``/RPC2``
and the base stations' handset channel (downlink and uplink), served without Django's
thread pool, and the task that keeps them in step with the node's role.

Who accepts applications: the server that serves the devices (``basestations.selectors.
device_acceptance``): the master (or a single server), and the backup only during a
failover. Anywhere else ``/RPC2`` answers HTTP 503 with a line naming the master, not an
XML-RPC fault: the SDK's redundancy-aware applications switch servers on a protocol or
socket error. When a backup's failover ends, its sessions end at once (a waiting
``session_receive`` gets the 503 too), and the applications reconnect to the master.

``/RPC2`` is a plain POST without cookie or CSRF token, as XML-RPC clients send it; its
protection is ``session_login``, checked like a GUI login (django-axes: the same failure
limit and lockout per account and address, the same lockout event).

Sessions end after ``settings.RPC_IDLE_TIMEOUT`` seconds (default 120) without a call; a
session waiting in ``session_receive`` is not idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from basestations import protocol
from core import signing
from core.asgi import Handler, body_read, client_of, headers_of, respond
from core.counters import count, counters_flush, flush_due
from messaging import hub as h
from messaging import rpc

logger = logging.getLogger(__name__)

RECEIVE_MAX = 600  # seconds a session_receive may wait
STATE_EVERY = 0.1  # seconds between readings of the node's role

HUB = h.Hub(
    paging_timeout=settings.RPC_PAGING_TIMEOUT,
    idle_timeout=settings.RPC_IDLE_TIMEOUT,
    max_pending=settings.RPC_MAX_PENDING,
)


class _State:
    """What the watcher last read of the node (the database is read in a thread)."""

    device_secret = ""
    extensions: frozenset[str] = frozenset()
    extensions_at = 0.0
    last_stamp: dict[str, float] = {}  # noqa: RUF012 (one instance)


STATE = _State()
LOOP: asyncio.AbstractEventLoop | None = None  # the web process's event loop, once started


class Unavailable(Exception):
    """The GUI cannot reach the XML-RPC service (not this process, or not accepting)."""


def in_loop(work: Callable[[], Any], timeout: float = 2.0) -> Any:
    """Run ``work`` in the event loop that owns the hub (from a Django view's thread)."""
    import concurrent.futures

    loop = LOOP
    if loop is None or loop.is_closed():
        raise Unavailable("the XML-RPC service runs in the node's web server (uvicorn), not here")
    done: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(work())
        except Exception as exc:
            done.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return done.result(timeout)


def applications() -> list[dict[str, Any]]:
    """The connected applications, for the Status page."""

    def read() -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {"account": s.account, "address": s.address,
             "since": datetime.fromtimestamp(s.since, tz=UTC),
             "pending": len(s.pending), "queued": len(s.events),
             "waiting": s.waiter is not None and not s.waiter.done(),
             "idle": now - s.last_call}
            for s in sorted(HUB.sessions.values(), key=lambda s: s.since)
        ]  # fmt: skip

    return in_loop(read)


def messages_of(extension: str) -> list[dict[str, Any]]:
    return in_loop(lambda: HUB.recent(extension))


def test_message_send(*, to: str, display: str, actor: str) -> None:
    def send() -> None:
        if not HUB.accepting:
            raise Unavailable(f"this server does not send messages now: {HUB.refusal}")
        HUB.send_test(to=to, display=display, actor=actor)

    in_loop(send)


# --- /RPC2 ---------------------------------------------------------------------------------


async def rpc2(scope: dict, receive: Callable, send: Callable) -> None:
    if scope.get("method") != "POST":
        await respond(send, 405, b"XML-RPC: POST a methodCall to /RPC2\n", "text/plain",
                       {"allow": "POST"})  # fmt: skip
        return
    if not HUB.accepting:
        await _refuse(send)
        return
    body = await body_read(receive)
    if body is None:
        await respond(send, 413, b"request too large\n", "text/plain")
        return
    try:
        name, args = rpc.parse_call(body)
        result = await call(name, args, address=client_of(scope))
    except xmlrpc.client.Fault as exc:
        await respond(send, 200, rpc.fault(exc), "text/xml")
        return
    except rpc.ArgumentError as exc:
        sent = ": nothing was sent" if body and b"endpoint_" in body[:400] else ""
        fault = xmlrpc.client.Fault(rpc.FAULT_ARGUMENTS, f"{exc}{sent}")
        await respond(send, 200, rpc.fault(fault), "text/xml")
        return
    if result is h.ENDED:
        await _refuse(send)
        return
    await respond(send, 200, rpc.answer(result), "text/xml")


async def _refuse(send: Callable) -> None:
    text = f"XML-RPC is not accepted here: {HUB.refusal}\n"
    await respond(send, 503, text.encode(), "text/plain; charset=utf-8", {"retry-after": "1"})


async def call(name: str, args: tuple, *, address: str) -> Any:
    """Run one XML-RPC call; Fault or ArgumentError for what cannot be run."""
    if name in rpc.INTROSPECTION:
        return rpc.introspect(name, args)
    method = rpc.METHODS.get(name)
    if method is None:
        raise xmlrpc.client.Fault(rpc.FAULT_METHOD, f"no method {name!r}")
    bound = method.bind(args)
    if name == "session_login":
        return await _login(bound["user"], bound["password"], address)
    session = HUB.session(bound["session"])
    if name == "session_logout":
        return HUB.logout(bound["session"])
    if session is None:
        return h.UNKNOWN_SESSION
    if name == "session_receive":
        timeout = max(0, min(bound["timeout"], RECEIVE_MAX))
        return await HUB.receive(session, timeout)
    return await SENDERS[name](session, bound)


async def _login(user: str, password: str, address: str) -> int:
    account = user.removeprefix("GW-DECT/")
    if not account or not password:
        return h.LOGIN_INCORRECT
    ok = await sync_to_async(_login_check, thread_sensitive=False)(account, password, address)
    if not ok:
        return h.LOGIN_INCORRECT
    sid = HUB.login(account=account, address=address)
    logger.info("XML-RPC: %s logged in from %s", account, address)
    return sid


def _login_check(account: str, password: str, address: str) -> bool:
    """A login checked like the GUI's: django-axes counts failures and locks out per
    account and address (the same limit, the same lockout event)."""
    from django.contrib.auth import authenticate
    from django.db import close_old_connections
    from django.http import HttpRequest

    request = HttpRequest()
    request.method, request.path = "POST", "/RPC2"
    request.META = {"REMOTE_ADDR": address, "HTTP_USER_AGENT": "XML-RPC application"}
    try:
        return authenticate(request, username=account, password=password) is not None
    finally:
        close_old_connections()


async def _known(extension: str) -> bool:
    if extension in STATE.extensions:
        return True
    return await sync_to_async(_extension_exists, thread_sensitive=False)(extension)


def _extension_exists(extension: str) -> bool:
    from django.db import close_old_connections

    from users.models import DectUser

    try:
        return DectUser.objects.filter(extension=extension).exists()
    finally:
        close_old_connections()


async def _to_one(session: h.Session, to: str, *, kind: str, fields: dict,
                  app_id: int = 0, wants_answer: bool = False) -> int:  # fmt: skip
    if not await _known(to):
        HUB.release_now(session, to=to, reason=h.UNKNOWN_USER)
        return h.OK
    return HUB.send(session, kind=kind, to=to, fields=fields, app_id=app_id,
                    wants_answer=wants_answer)  # fmt: skip


def _targets(kind: str, to: str) -> list[str]:
    if kind == "all" and not to:
        return HUB.handsets_in_range()
    if kind == "group":
        return [rpc.to_check(part) for part in to.split(",") if part.strip()]
    return [rpc.to_check(to)]


async def _sms(session: h.Session, a: dict) -> int:
    to = rpc.to_check(a["to"])
    fields = {"display": rpc.display_check(a["display"]), "callback": a["callback"],
              "alerting": a["alerting"]}  # fmt: skip
    return await _to_one(session, to, kind="sms", fields=fields)


async def _sms_advanced(session: h.Session, a: dict) -> int:
    if a["action"] not in rpc.SMS_ADVANCED_ACTIONS:
        known = ", ".join(f"{k:#04x} {v}" for k, v in rpc.SMS_ADVANCED_ACTIONS.items())
        raise rpc.ArgumentError(f"argument action {a['action']:#x} is not one of {known}")
    if a["type"] not in rpc.DESTINATION_TYPES:
        raise rpc.ArgumentError(f"argument type must be one of {', '.join(rpc.DESTINATION_TYPES)}")
    rpc.int_check(a["response"], "response", 0, 0xFF)
    rpc.int_check(a["id"], "id", 0, 2**31 - 1)
    fields = {"display": rpc.display_check(a["display"]), "callback": a["callback"],
              "action": a["action"], "response": a["response"]}  # fmt: skip
    targets = _targets(a["type"], a["to"]) if a["to"] or a["type"] == "all" else []
    if not targets and a["type"] != "all":
        raise rpc.ArgumentError("argument to is required for type endpoint or group")
    wants = a["response"] != 0 or a["action"] == 0x10
    status = h.OK
    for to in targets:
        status = min(status, await _to_one(session, to, kind="sms_advanced", fields=fields,
                                           app_id=a["id"], wants_answer=wants))  # fmt: skip
    return status


async def _broadcast(session: h.Session, a: dict) -> int:
    if a["type"] not in rpc.DESTINATION_TYPES:
        raise rpc.ArgumentError(f"argument type must be one of {', '.join(rpc.DESTINATION_TYPES)}")
    display = rpc.display_check(a["display"])
    targets = _targets(a["type"], a["to"])
    for to in targets:
        message = h.Message(HUB._new_id(), 0, "broadcast", to, {"display": display},
                            created=time.monotonic())  # fmt: skip
        HUB.messages[message.id] = message
        HUB._route(message)
    HUB._push(session, {"type": "endpoint_broadcast", "status": 0})
    return h.OK


async def _base_stations(session: h.Session, a: dict) -> int:
    to = rpc.to_check(a["to"])
    return await _to_one(session, to, kind="base_stations", fields={}, wants_answer=True)


async def _status(session: h.Session, a: dict) -> int:
    to = rpc.to_check(a["to"])
    rpc.int_check(a["status"], "status", 0, 255)
    return await _to_one(session, to, kind="status", fields={"status": a["status"]})


async def _call_setup(session: h.Session, a: dict) -> int:
    to = rpc.to_check(a["to"])
    display = rpc.display_check(a["display"])
    if not await _known(to):
        # A call id all the same, released at once as an unknown user.
        call_id = HUB._new_id()
        HUB._push(session, {"type": "endpoint_call_release", "call": call_id,
                            "reason": h.UNKNOWN_USER})  # fmt: skip
        return call_id
    return HUB.call_setup(session, to=to, display=display, callback=a["callback"])


async def _call_accept(session: h.Session, a: dict) -> int:
    return HUB.call_send(session, a["call"], "call_accept", {})


async def _call_display(session: h.Session, a: dict) -> int:
    return HUB.call_send(session, a["call"], "call_display",
                         {"display": rpc.display_check(a["display"])})  # fmt: skip


async def _call_menu(session: h.Session, a: dict) -> int:
    items = a["items"]
    if not items or len(items) > 16 or not all(isinstance(i, str) for i in items):
        raise rpc.ArgumentError("argument items must be 1 to 16 strings")
    for item in items:
        rpc.display_check(item, "items")
    return HUB.call_send(session, a["call"], "call_menu", {"items": list(items)})


async def _call_prompt(session: h.Session, a: dict) -> int:
    if a["mode"] not in ("alphanumeric", "numeric"):
        raise rpc.ArgumentError("argument mode must be alphanumeric or numeric")
    rpc.int_check(a["max"], "max", 0, protocol.MAX_DISPLAY)
    rpc.int_check(a["min"], "min", 0, a["max"])
    fields = {"display": rpc.display_check(a["display"]), "mode": a["mode"], "min": a["min"],
              "max": a["max"]}  # fmt: skip
    return HUB.call_send(session, a["call"], "call_prompt", fields)


async def _call_release(session: h.Session, a: dict) -> int:
    rpc.int_check(a["reason"], "reason", 0, 127)
    return HUB.call_send(session, a["call"], "call_release", {"reason": a["reason"]})


async def _hardware(session: h.Session, a: dict) -> int:
    if a["type"] not in rpc.DESTINATION_TYPES:
        raise rpc.ArgumentError(f"argument type must be one of {', '.join(rpc.DESTINATION_TYPES)}")
    rpc.int_check(a["hardware"], "hardware", 0, 255)
    rpc.int_check(a["action"], "action", 0, 255)
    fields = {"hardware": a["hardware"], "action": a["action"], "data": a["data"]}
    status = h.OK
    for to in _targets(a["type"], a["to"]):
        status = min(status, await _to_one(session, to, kind="hardware", fields=fields,
                                           wants_answer=True))  # fmt: skip
    return status


SENDERS = {
    "endpoint_call_setup": _call_setup,
    "endpoint_call_accept": _call_accept,
    "endpoint_call_display": _call_display,
    "endpoint_call_menu": _call_menu,
    "endpoint_call_prompt": _call_prompt,
    "endpoint_call_release": _call_release,
    "endpoint_hardware_extension": _hardware,
    "endpoint_sms": _sms,
    "endpoint_sms_advanced": _sms_advanced,
    "endpoint_broadcast": _broadcast,
    "endpoint_base_stations": _base_stations,
    "endpoint_status": _status,
}


# --- The handset channel of the base stations ---------------------------------------------


async def _device(scope: dict, receive: Callable, send: Callable, path: str):
    """The verified sender (MAC), its key, the request's nonce and its JSON body; or None
    after answering the refusal itself."""
    if scope.get("method") != "POST":
        await respond(send, 405, b'{"error": "POST only"}', "application/json")
        return None
    body = await body_read(receive)
    if body is None:
        await respond(send, 413, b'{"error": "too large"}', "application/json")
        return None
    secret = STATE.device_secret
    if not secret:
        await respond(send, 403, b'{"error": "no device secret configured"}', "application/json")
        return None
    headers = headers_of(scope)
    try:
        mac = protocol.mac_normalize(headers.get(signing.HEADER_NODE, ""))
    except ValueError:
        mac = ""
    key = signing.device_key(secret, mac)
    try:
        opened = signing.verify_request(secret=key, method="POST", path=path, body=body,
                                        headers=headers)  # fmt: skip
        if opened.sender.upper() != mac:
            raise signing.SignatureError("signed as another device", "wrong-signature")
        if opened.timestamp <= STATE.last_stamp.get(mac + path, 0.0):
            raise signing.SignatureError("a replay: not newer than the last request", "replay")
    except signing.SignatureError as exc:
        await respond(send, 401, json.dumps({"error": str(exc)}).encode(), "application/json")
        return None
    STATE.last_stamp[mac + path] = opened.timestamp
    try:
        payload = json.loads(opened.body)
    except ValueError:
        payload = None
    return mac, key, opened, payload


async def _device_answer(send: Callable, key: str, opened: signing.Opened, status: int,
                         answer: dict) -> None:  # fmt: skip
    headers, body = signing.sign_response(
        secret=key, node=settings.NODE_NAME, status=status, request_nonce=opened.nonce,
        body=json.dumps(answer).encode(), requester=opened.sender,
    )  # fmt: skip
    await respond(send, status, body, "application/json", headers)


async def downlink(scope: dict, receive: Callable, send: Callable) -> None:
    found = await _device(scope, receive, send, protocol.DOWNLINK_PATH)
    if found is None:
        return
    mac, key, opened, payload = found
    if not HUB.accepting:
        await _device_answer(send, key, opened, 409, {"error": HUB.refusal})
        return
    try:
        handsets, wait = protocol.downlink_request_parse(payload, mac)
    except ValueError as exc:
        await _device_answer(send, key, opened, 400, {"error": f"malformed downlink: {exc}"})
        return
    messages = await HUB.downlink(mac, handsets, wait)
    await _device_answer(send, key, opened, 200, {"messages": messages})


async def uplink(scope: dict, receive: Callable, send: Callable) -> None:
    found = await _device(scope, receive, send, protocol.UPLINK_PATH)
    if found is None:
        return
    mac, key, opened, payload = found
    try:
        events = protocol.uplink_parse(payload, mac)
    except ValueError as exc:
        await _device_answer(send, key, opened, 400, {"error": f"malformed uplink: {exc}"})
        return
    if not HUB.accepting:
        await _device_answer(send, key, opened, 200, {"accepted": 0})
        return
    lookups = [e for e in events if e["kind"] == "lookup"]
    accepted = HUB.uplink(mac, [e for e in events if e["kind"] != "lookup"]) + len(lookups)
    for event in lookups:
        # Answered down the handset's downlink once the directory has: the uplink does not
        # wait for it (the directory's own timeouts bound the lookup).
        task = asyncio.create_task(_lookup(event))
        LOOKUPS.add(task)
        task.add_done_callback(LOOKUPS.discard)
    await _device_answer(send, key, opened, 200, {"accepted": accepted})


LOOKUPS: set[asyncio.Task] = set()  # the lookups on their way (kept from the collector)
# At most this many lookups ask the directory at once (each holds a thread while it waits);
# the others queue, so a flood of lookups cannot take every thread of the web process.
LOOKUP_SLOTS = asyncio.Semaphore(8)


async def _lookup(event: dict) -> None:
    """A handset's phonebook lookup: this server asks the phonebook (LDAP, or the CSV
    entries of a single server) in a thread and sends the answer to the handset."""
    try:
        async with LOOKUP_SLOTS:
            entries, error = await sync_to_async(_phonebook_lookup, thread_sensitive=False)(
                event["text"]
            )
    except Exception:  # the database is away: the handset is told, not left waiting
        logger.exception("phonebook lookup of %s failed", event["from"])
        entries, error = [], "the phonebook cannot be searched now"
    HUB.lookup_answer(to=event["from"], ref=event["ref"], text=event["text"], entries=entries,
                      error=error)  # fmt: skip


def _phonebook_lookup(text: str) -> tuple[list[dict[str, str]], str]:
    from django.db import close_old_connections

    from phonebook.services import phonebook_search

    try:
        result = phonebook_search(text=text, limit=protocol.LOOKUP_ENTRIES)
    finally:
        close_old_connections()
    return [{"name": e.name, "number": e.number} for e in result.entries], result.error


ROUTES: dict[str, Handler] = {
    "/RPC2": rpc2,
    protocol.DOWNLINK_PATH: downlink,
    protocol.UPLINK_PATH: uplink,
}


# --- Keeping in step with the node -----------------------------------------------------------


def _read_state(
    with_extensions: bool,
) -> tuple[bool, str, str, frozenset[str] | None, frozenset[str] | None]:
    """Whether this server accepts applications and why not, the device secret, and with
    ``with_extensions`` the users' extensions and the enabled accounts."""
    from django.contrib.auth import get_user_model
    from django.db import close_old_connections

    from basestations.selectors import device_acceptance
    from core.selectors import config_read

    try:
        values = config_read()
        serving, reason = device_acceptance(values)
        extensions = accounts = None
        if with_extensions:
            from users.models import DectUser

            extensions = frozenset(DectUser.objects.values_list("extension", flat=True))
            enabled = get_user_model().objects.filter(is_active=True)
            accounts = frozenset(enabled.values_list("username", flat=True))
        peer = values["redundancy.peer"]
        refusal = reason + (f": connect to the master at {peer}" if peer and not serving else "")
        return serving, refusal, values["system.device_secret"], extensions, accounts
    finally:
        close_old_connections()


async def watch(stop: asyncio.Event) -> None:
    """Accept applications while this server serves the devices, run the hub's clock, and
    write the web server's statistics counters (core.counters) now and then."""
    reader = sync_to_async(_read_state, thread_sensitive=False)
    flush = sync_to_async(_counters_flush, thread_sensitive=False)
    counted = HUB.delivered
    while not stop.is_set():
        counted = delivered_count(HUB, counted)
        if flush_due():
            await flush()
        try:
            refresh = time.monotonic() - STATE.extensions_at > 5.0
            serving, refusal, secret, extensions, accounts = await reader(refresh)
            STATE.device_secret = secret
            if extensions is not None:
                STATE.extensions, STATE.extensions_at = extensions, time.monotonic()
            if accounts is not None:
                # A disabled or deleted account's applications lose their sessions too.
                HUB.accounts_keep(accounts)
            HUB.accept(serving, refusal)
        except Exception:  # a database that is away: stop accepting until it is back
            logger.exception("XML-RPC: cannot read the node's state")
            HUB.accept(False, "this server cannot read its database")
        HUB.tick()
        try:
            await asyncio.wait_for(stop.wait(), STATE_EVERY)
        except TimeoutError:
            pass
    delivered_count(HUB, counted)
    await flush(force=True)  # what was counted since the last flush survives a restart


def delivered_count(hub: h.Hub, counted: int) -> int:
    """Count the messages ``hub`` delivered since it had delivered ``counted`` (the hub
    itself does no I/O); return the new mark."""
    if hub.delivered != counted:
        count("messages.delivered", hub.delivered - counted)
    return hub.delivered


def _counters_flush(*, force: bool = False) -> None:
    try:
        counters_flush(force=force)
    finally:
        close_old_connections()


async def lifespan(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable,
    also: tuple[Callable[[asyncio.Event], Awaitable[None]], ...] = (),
) -> None:
    """ASGI lifespan: start the watcher (and the other watchers ``also`` names) at start-up,
    stop them at shutdown."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            global LOOP
            LOOP = asyncio.get_running_loop()
            tasks = [asyncio.create_task(run(stop)) for run in (watch, *also)]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await send({"type": "lifespan.shutdown.complete"})
            return
