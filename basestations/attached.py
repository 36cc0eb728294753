"""The devices attached to this server, held in the web process's memory: the keep-alive
of a device that reports what it reported before is answered without Django.

Why: profiled with ``bench/keepalive.py`` (100 devices, py-spy on the web process), a
keep-alive through Django spent about a fifth of its CPU in the middleware stack and the
WSGI bridge and most of the rest in five database round trips (the connection's health
check, the configuration, the device with its runtime row, the update of that row, the
handsets), each a few hundred microseconds of psycopg and ORM work, for a keep-alive that
nearly always changes nothing but three columns (the time of the last contact and
keep-alive, and the signing stamp).

How: in the steady state (a device attached here whose report is the same as at its last
keep-alive: firmware, state, address, what it sees of the peer, the servers it knows, its
channels in use, its handsets) the keep-alive is answered here, in the web server's event
loop: the signature is checked with the device's key held from its last keep-alive, the
stamp against its last stamp in memory (no replay), and the answer is the one the device
got last, signed again. The contacts are written in one batch every ``FLUSH_EVERY``
seconds (``last_contact_at``, ``last_keepalive_at``, ``last_stamp``; never older over
newer) and the handsets' sightings re-stamped every ``services.HANDSET_REFRESH``, so the
Status page, the witness and the takeover read the database as before, at most
``FLUSH_EVERY`` later. Everything else goes to the Django view
(``basestations.api.keepalive``) as before, which writes at once: a first contact, any
change in the report, a device not heard for longer than the fresh window, a refusal, a
redirect to the master, a replay, a wrong signature, a malformed body. After a 200 that
view holds the device here again.

What is held is dropped, so that the next keep-alive goes through Django: every held
device when the answer changes (this server stops or starts serving devices, the peer's
address, the interval, the ARI, the device secret; read every ``REFRESH_EVERY``
seconds), a device that is deleted or whose MAC changes (at once when it is done here, within
``DEVICES_EVERY`` when replicated), and
every device when the database cannot be read (after ``STALE_AFTER``): a server that
cannot read its database does not keep devices attached from memory.

A restart of the web process loses what was not yet written: at most ``FLUSH_EVERY``
seconds of contacts, so a keep-alive captured in that time could be replayed once, within
the signature's 30 s age limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from basestations import protocol
from basestations.models import BaseStation, HandsetSighting, MediaResource
from basestations.selectors import LINK_MODELS, keepalive_answer, keepalive_interval
from core import signing
from core.asgi import Handler, body_read, body_replayed, client_of, headers_of, path_of, respond
from core.selectors import config_read

logger = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # seconds between writes of the held devices' contacts
REFRESH_EVERY = 0.25  # seconds between readings of the configuration and the node's role
# Seconds between readings of the configured devices' MACs: a device changed or deleted in
# this server's GUI is dropped at once (``release``), one changed by replication then.
DEVICES_EVERY = 5.0
STALE_AFTER = 1.0  # without a successful reading for this long, nothing is answered here
HANDSET_REFRESH = 30.0  # as services.HANDSET_REFRESH: a sighting is re-stamped this often
# Keep-alives that go through Django wait at most this long (seconds) for one of its
# slots (half of its threads: the GUI keeps the others), else they get a 503: under a
# flood (a thousand devices arriving at once) the devices retry at their next interval
# instead of queueing in front of the GUI for longer than they wait for an answer, which
# is how an unbounded queue ended with every answer too late (keep-alives 39 s old).
DJANGO_WAIT = 0.5
BUSY = b'{"error": "this server is busy: try again at the next keep-alive"}'


@dataclass(slots=True)
class Held:
    """A device attached here, as its last keep-alive through Django left it."""

    kind: str
    device_id: int
    key: str  # the device's signing key
    report: tuple  # what the device reported (``steady``)
    answer: bytes  # the answer it got (JSON)
    contact: tuple[float, float]  # (signing stamp, epoch) of its last keep-alive
    flushed: float  # the stamp last written to the database
    handsets_at: float  # epoch of the last stamp of its handsets' sightings


class _Held:
    def __init__(self) -> None:
        self.devices: dict[str, Held] = {}
        self.lock = threading.Lock()  # writes to the database and drops of devices
        self.live = False  # the watcher runs (in the web process only)
        self.answer: dict[str, Any] | None = None  # the 200 answer now; None: not serving
        self.secret = ""
        self.read_at = 0.0  # monotonic time of the last successful reading
        self.macs_at = 0.0  # monotonic time of the last reading of the configured MACs
        self.written_at = 0.0  # monotonic time of the last write of the contacts


HELD = _Held()


def steady(report: protocol.KeepAlive, remote: str) -> tuple:
    """What must stay the same for a keep-alive to change nothing but its time."""
    return (
        report["kind"], report["firmware"], report["state"], report.get("peer_reachable"),
        protocol.reported_ip(report, remote), tuple(report.get("servers") or ()),
        report.get("channels_in_use"), tuple(report.get("handsets") or ()),
    )  # fmt: skip


def hold(*, device_id: int, key: str, report: protocol.KeepAlive, remote: str, stamp: float,
         answer: dict[str, Any]) -> None:  # fmt: skip
    """Hold a device the Django view has just attached (and written): its next keep-alives
    are answered here while they report the same. No-op outside the web process, or when
    ``answer`` is not the one this server gives now (the next reading decides)."""
    if not HELD.live or answer != HELD.answer:
        return
    now = time.time()
    held = Held(
        kind=report["kind"], device_id=device_id, key=key, report=steady(report, remote),
        answer=json.dumps(answer).encode(), contact=(stamp, now), flushed=stamp,
        handsets_at=now,
    )  # fmt: skip
    with HELD.lock:
        HELD.devices[report["mac"]] = held


def release(mac: str) -> None:
    """Stop answering ``mac`` here and write its last contact: called before a keep-alive of
    it goes through Django, which then checks the stamp against the database."""
    with HELD.lock:
        held = HELD.devices.pop(mac, None)
        if held is not None and held.contact[0] > held.flushed:
            _write([held])


# --- The endpoint -----------------------------------------------------------------------


def _answered(scope: dict, body: bytes) -> tuple[dict[str, str], bytes] | None:
    """The signed answer of a steady keep-alive of a held device; None to hand it to Django."""
    if HELD.answer is None or time.monotonic() - HELD.read_at > STALE_AFTER:
        return None
    headers = headers_of(scope)
    try:
        mac = protocol.mac_normalize(headers.get(signing.HEADER_NODE, ""))
    except ValueError:
        return None
    held = HELD.devices.get(mac)
    if held is None:
        return None
    try:
        opened = signing.verify_request(secret=held.key, method="POST", path=path_of(scope),
                                        body=body, headers=headers)  # fmt: skip
        report = protocol.keepalive_parse(json.loads(opened.body), mac)
    except (signing.SignatureError, ValueError):
        return None
    now = time.time()
    if (
        opened.sender.upper() != mac
        or opened.timestamp <= held.contact[0]
        or now - held.contact[1] > protocol.fresh_window(keepalive_interval())
        or steady(report, client_of(scope)) != held.report
    ):
        return None
    held.contact = (opened.timestamp, now)
    if HELD.devices.get(mac) is not held:  # released meanwhile: Django decides
        return None
    headers_out, answer = signing.sign_response(
        secret=held.key, node=settings.NODE_NAME, status=200, request_nonce=opened.nonce,
        body=held.answer, requester=opened.sender,
    )  # fmt: skip
    return headers_out, answer


_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _django_slots() -> asyncio.Semaphore:
    """The slots of the running event loop (the web server has one)."""
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots.clear()
        _slots[loop] = asyncio.Semaphore(max(1, settings.WEB_THREADS // 2))
    return _slots[loop]


async def _through_django(django: Handler, scope: dict, receive: Any, send: Any) -> None:
    """Hand a keep-alive to Django if one of its slots frees within ``DJANGO_WAIT``;
    503 otherwise: the device tries again at its next interval."""
    slots = _django_slots()
    try:
        async with asyncio.timeout(DJANGO_WAIT):
            await slots.acquire()
    except TimeoutError:
        await respond(send, 503, BUSY, "application/json", {"retry-after": "1"})
        return
    try:
        await django(scope, receive, send)
    finally:
        slots.release()


def endpoint(django: Handler) -> Handler:
    """The keep-alive path: answered here in the steady state, by ``django`` otherwise."""

    async def keepalive(scope: dict, receive: Any, send: Any) -> None:
        if scope.get("method") != "POST":
            await django(scope, receive, send)
            return
        body = await body_read(receive)
        if body is None:
            await respond(send, 413, b'{"error": "too large"}', "application/json")
            return
        answered = _answered(scope, body)
        if answered is None:
            await _through_django(django, scope, body_replayed(body, receive), send)
            return
        headers, answer = answered
        await respond(send, 200, answer, "application/json", headers)

    return keepalive


# --- Keeping in step with the node and the database -------------------------------------


def _at(epoch: float) -> Any:
    return connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(epoch, UTC))


def _contacts_write(cursor: Any, meta: Any, rows: list[tuple[int, float, Any]]) -> None:
    """Set the last contact of each (device id, stamp, time) in ``rows`` unless the row has
    a newer one: one statement on PostgreSQL (arrays), one per row on SQLite."""
    table, pk = meta.db_table, meta.pk.column
    if connection.vendor == "postgresql":
        ids, stamps, ats = (list(column) for column in zip(*rows, strict=True))
        cursor.execute(
            f"UPDATE {table} AS link SET last_contact_at = v.at, last_keepalive_at = v.at, "  # noqa: S608
            "last_stamp = v.stamp FROM unnest(%s::integer[], %s::float8[], %s::timestamptz[]) "
            f"AS v(id, stamp, at) WHERE link.{pk} = v.id AND link.last_stamp < v.stamp",
            [ids, stamps, ats],
        )
        return
    cursor.executemany(
        f"UPDATE {table} SET last_contact_at = %s, last_keepalive_at = %s, "  # noqa: S608
        f"last_stamp = %s WHERE {pk} = %s AND last_stamp < %s",
        [(at, at, stamp, pk_value, stamp) for pk_value, stamp, at in rows],
    )


def _write(devices: list[Held]) -> None:
    """Write the last contacts of ``devices`` (never over a newer one), and re-stamp the
    sightings of the handsets of those whose sightings are due; HELD.lock is held."""
    rows: dict[str, list[tuple]] = {kind: [] for kind in LINK_MODELS}
    due: list[Held] = []
    for held in devices:
        stamp, epoch = held.contact
        if stamp > held.flushed:
            at = _at(epoch)
            rows[held.kind].append((held.device_id, stamp, at))
        if held.report[-1] and epoch - held.handsets_at >= HANDSET_REFRESH:
            due.append(held)
    if not any(rows.values()) and not due:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for kind, values in rows.items():
            if values:
                _contacts_write(cursor, LINK_MODELS[kind]._meta, values)
        for held in due:
            HandsetSighting.objects.filter(
                basestation_id=held.device_id, extension__in=held.report[-1]
            ).update(seen_at=datetime.fromtimestamp(held.contact[1], UTC))
    for held in devices:
        held.flushed = max(held.flushed, held.contact[0])
    for held in due:
        held.handsets_at = held.contact[1]


def _drop(keep: Any) -> None:
    """Stop holding the devices ``keep`` refuses, after writing their contacts; HELD.lock
    is held."""
    gone = [(mac, held) for mac, held in HELD.devices.items() if not keep(mac, held)]
    _write([held for _, held in gone])
    for mac, _ in gone:
        del HELD.devices[mac]


def step(*, now: float | None = None) -> None:
    """One reading of the configuration and the role (dropping every held device when the
    answer changes), of the configured MACs when due, and a write of the contacts when
    due."""
    now = time.monotonic() if now is None else now
    try:
        config = config_read()
        status, answer = keepalive_answer(config)
        answer_now = answer if status == 200 else None
        secret = config["system.device_secret"]
        macs = None
        if now - HELD.macs_at >= DEVICES_EVERY:
            macs = {("rfp", pk, mac) for pk, mac in BaseStation.objects.values_list("pk", "mac")}
            macs |= {
                ("media", pk, mac) for pk, mac in MediaResource.objects.values_list("pk", "mac")
            }
        with HELD.lock:
            if answer_now != HELD.answer or secret != HELD.secret:
                _drop(lambda mac, held: False)
                HELD.answer, HELD.secret = answer_now, secret
            if macs is not None:
                _drop(lambda mac, held: (held.kind, held.device_id, mac) in macs)
                HELD.macs_at = now
            fresh, wall = protocol.fresh_window(keepalive_interval()), time.time()
            _drop(lambda mac, held: wall - held.contact[1] <= fresh)
            if now - HELD.written_at >= FLUSH_EVERY:
                _write(list(HELD.devices.values()))
                HELD.written_at = now
        HELD.read_at = now
    finally:
        close_old_connections()


async def watch(stop: asyncio.Event) -> None:
    """Run ``step`` every ``REFRESH_EVERY`` seconds while the web server runs; write what is
    held at shutdown."""
    stepper = sync_to_async(step, thread_sensitive=False)
    HELD.live = True
    failing = False
    try:
        while not stop.is_set():
            try:
                await stepper()
                if failing:
                    logger.info("device keep-alives: the database answers again")
                failing = False
            except Exception:
                if not failing:  # once per outage: devices go through Django meanwhile
                    logger.exception("device keep-alives: cannot read or write the database")
                failing = True
            try:
                await asyncio.wait_for(stop.wait(), REFRESH_EVERY)
            except TimeoutError:
                pass
    finally:
        HELD.live = False
        try:
            await sync_to_async(_final_write, thread_sensitive=False)()
        except Exception:
            logger.exception("device keep-alives: the last contacts could not be written")


def _final_write() -> None:
    try:
        with HELD.lock:
            _drop(lambda mac, held: False)
    finally:
        close_old_connections()
