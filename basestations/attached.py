"""The devices of this server, held in the web process's memory: a keep-alive that Django
would answer from what it already knows is answered in the web server's event loop, over
HTTP (``endpoint``) or in a datagram (``basestations.udp``: the same answer, or "use
HTTP" for anything this module hands to Django).

Why: profiled with ``bench/keepalive.py`` (100 devices, py-spy on the web process), a
keep-alive through Django spent about a fifth of its CPU in the middleware stack and the
WSGI bridge and most of the rest in five database round trips (the connection's health
check, the configuration, the device with its runtime row, the update of that row, the
handsets), each a few hundred microseconds of psycopg and ORM work, for a keep-alive that
nearly always changes nothing but three columns (the time of the last contact and
keep-alive, and the signing stamp). And at site scale (a thousand base stations moving to
the backup in a failover) the first contacts through Django were the bottleneck: about 60
a second under the load of the takeover, so the last base station waited 15 s.

How: every ``DEVICES_EVERY`` the configured devices are read with their runtime rows
(``Known``), and every ``REFRESH_EVERY`` what this server answers a device now (200 and
its attachment, or 409 naming the master). Then:

- the steady state (a device attached here, or redirected to the master, whose report is
  the same as at its last keep-alive: firmware, state, address, what it sees of the peer,
  the servers it knows, its channels in use, its handsets) is answered with the answer it
  got last, signed again; its contact (``last_contact_at``, ``last_keepalive_at`` for an
  attached one, ``last_stamp``; never older over newer) is written in one batch every
  ``FLUSH_EVERY`` seconds, and its handsets' sightings re-stamped every
  ``contacts.HANDSET_REFRESH``;
- any other keep-alive of a configured device with acceptable firmware and a newer stamp
  than its last contact (its first contact, its move to this server in a failover, its
  first redirect to the master while this server is a backup, a changed report) is
  answered as the Django view would answer it (200, or 409), held, and its runtime row
  written within one ``REFRESH_EVERY`` exactly as the view writes it
  (``basestations.contacts``: the row, the refusal forgotten, the attachment logged, the
  handsets recorded);

with the signature checked with the device's key and the stamp against its last stamp in
memory (no replay). Everything else goes to the Django view (``basestations.api.
keepalive``) as before, which writes at once: an unknown device, old firmware (its
refusal is recorded), a replay, a wrong signature, a malformed body, a device added since
the last reading of the devices. Before it does, what is held of that device and every
arrival not yet written are written, and after it ``heard`` brings memory up to what it
wrote.

What is held is dropped, so that the next keep-alive is an arrival or goes through Django:
every held device when the answer changes (this server stops or starts serving devices,
the peer's address, the interval, the ARI, the device secret; read every
``REFRESH_EVERY`` seconds), a device that is deleted or whose MAC changes (at once when it
is done here, within ``DEVICES_EVERY`` when replicated), and every device when the
database cannot be read (after ``STALE_AFTER``): a server that cannot read its database
does not answer devices from memory.

A restart of the web process loses what was not yet written: at most ``FLUSH_EVERY``
seconds of contacts and ``REFRESH_EVERY`` of arrivals, so a keep-alive captured in that
time could be replayed once, within the signature's 30 s age limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

from basestations import protocol, udp
from basestations.contacts import (
    HANDSET_REFRESH,
    accepted_note,
    link_values,
    links_create,
    links_write,
    was_attached,
)
from basestations.models import BaseStation, HandsetSighting, MediaResource
from basestations.selectors import LINK_MODELS, keepalive_answer, keepalive_interval
from core import signing
from core.arrays import execute as arrays_execute
from core.asgi import (
    Handler,
    body_read,
    body_replayed,
    client_of,
    headers_named,
    path_of,
    respond,
)
from core.models import Refusal
from core.selectors import config_read

logger = logging.getLogger(__name__)

FLUSH_EVERY = 1.0  # seconds between writes of the held devices' contacts (arrivals: every step)
REFRESH_EVERY = 0.25  # seconds between readings of the configuration and the node's role
# Seconds between readings of the configured devices' MACs: a device changed or deleted in
# this server's GUI is dropped at once (``release``), one changed by replication then.
DEVICES_EVERY = 5.0
STALE_AFTER = 1.0  # without a successful reading for this long, nothing is answered here
# Keep-alives that go through Django wait at most this long (seconds) for one of its
# slots (half of its threads: the GUI keeps the others), else they get a 503: under a
# flood (a thousand devices arriving at once) the devices retry at their next interval
# instead of queueing in front of the GUI for longer than they wait for an answer, which
# is how an unbounded queue ended with every answer too late (keep-alives 39 s old).
DJANGO_WAIT = 0.5
BUSY = b'{"error": "this server is busy: try again at the next keep-alive"}'


@dataclass(slots=True)
class Held:
    """A device attached here (200) or redirected to the master (409), as its last
    keep-alive left it."""

    kind: str
    device_id: int
    key: str  # the device's signing key
    report: tuple  # what the device reported (``steady``)
    answer: bytes  # the answer it got (JSON)
    status: int  # and its status
    contact: tuple[float, float]  # (signing stamp, epoch) of its last keep-alive
    flushed: float  # the stamp last written to the database
    handsets_at: float  # epoch of the last stamp of its handsets' sightings


@dataclass(slots=True)
class Known:
    """A configured device as this server last recorded its contact (its runtime row, as
    read every ``DEVICES_EVERY`` and kept up to date by every keep-alive since)."""

    kind: str
    device_id: int
    name: str
    exists: bool  # it has a runtime row here
    last_stamp: float
    last_keepalive_at: datetime | None
    attached_since: datetime | None
    refused: bool  # its row holds a refusal or a redirect


@dataclass(slots=True)
class Arrival:
    """A keep-alive answered here that changes the device's runtime row (an attachment, a
    redirect to the master, a new report): written in the next ``step``."""

    mac: str
    known: Known
    exists: bool  # the device had a runtime row here before
    status: int
    values: dict[str, Any]
    handsets: list[str]
    refused_before: bool
    attached_before: bool


class _Held:
    def __init__(self) -> None:
        self.devices: dict[str, Held] = {}
        self.known: dict[str, Known] = {}
        # Appended in the event loop, taken by the writer (a deque is safe between threads).
        self.arrivals: deque[Arrival] = deque()
        self.lock = threading.Lock()  # writes to the database and drops of devices
        self.live = False  # the watcher runs (in the web process only)
        self.answer: dict[str, Any] | None = None  # the 200 answer now; None: not serving
        self.answer_json = b""
        self.redirect: dict[str, Any] | None = None  # the 409 answer now (a backup's)
        self.redirect_json = b""
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
        answer=HELD.answer_json, status=200, contact=(stamp, now), flushed=stamp,
        handsets_at=now,
    )  # fmt: skip
    with HELD.lock:
        HELD.devices[report["mac"]] = held


def release(mac: str) -> None:
    """Stop answering ``mac`` here and write its last contact (and every arrival not yet
    written): called before a keep-alive of it goes through Django, which then checks the
    stamp against the database."""
    with HELD.lock:
        held = HELD.devices.pop(mac, None)
        if (held is not None and held.contact[0] > held.flushed) or HELD.arrivals:
            _write([held] if held is not None else [])


def heard(mac: str, stamp: float, status: int) -> None:
    """What the Django view has just written of a keep-alive of ``mac`` signed at
    ``stamp`` and answered with ``status``, so that the next one answered here starts
    from it (and a replay of an older one is not answered here either)."""
    known = HELD.known.get(mac)
    if known is None:
        return
    known.last_stamp = max(known.last_stamp, stamp)
    if status == 401:  # a replay: nothing was written
        return
    known.exists = True
    if status == 200:
        at = datetime.fromtimestamp(time.time(), UTC)
        if not was_attached(known.last_keepalive_at, at):
            known.attached_since = at
        known.last_keepalive_at, known.refused = at, False
    else:
        known.last_keepalive_at = known.attached_since = None
        known.refused = True


def forget(mac: str) -> None:
    """A device deleted or whose MAC changed here: nothing of it is answered from memory,
    and what was answered of it but not yet written is not written."""
    with HELD.lock:
        HELD.known.pop(mac, None)
        for arrival in [a for a in list(HELD.arrivals) if a.mac == mac]:
            HELD.arrivals.remove(arrival)
    release(mac)


# --- The endpoint -----------------------------------------------------------------------


def _answered(headers: dict[str, str], path: str, remote: str,
              body: bytes) -> tuple[int, dict[str, str], bytes] | None:  # fmt: skip
    """The signed answer of a keep-alive (its signing ``headers``, the ``path`` it was
    signed for, its sender's address) answered here; None to hand it to Django."""
    if time.monotonic() - HELD.read_at > STALE_AFTER or not HELD.secret:
        return None
    try:
        mac = protocol.mac_normalize(headers.get(signing.HEADER_NODE, ""))
    except ValueError:
        return None
    held = HELD.devices.get(mac)
    key = held.key if held is not None else signing.device_key(HELD.secret, mac)
    try:
        opened = signing.verify_request(secret=key, method="POST", path=path,
                                        body=body, headers=headers)  # fmt: skip
        report = protocol.keepalive_parse(json.loads(opened.body), mac)
    except (signing.SignatureError, ValueError):
        return None
    if opened.sender.upper() != mac:
        return None
    now = time.time()
    if held is not None and _steady(held, opened.timestamp, steady(report, remote), now):
        held.contact = (opened.timestamp, now)
        if HELD.devices.get(mac) is not held:  # released meanwhile: Django decides
            return None
        return _signed(key, held.status, held.answer, opened)
    return _arrived(mac, key, opened, report, remote, now, held)


def _steady(held: Held, stamp: float, report: tuple, now: float) -> bool:
    """Whether a keep-alive of ``held`` changes nothing but its time."""
    serving = HELD.answer if held.status == 200 else HELD.redirect
    return (
        serving is not None
        and stamp > held.contact[0]
        and now - held.contact[1] <= protocol.fresh_window(keepalive_interval())
        and report == held.report
    )


def _signed(key: str, status: int, answer: bytes, opened: Any) -> tuple[int, dict, bytes]:
    headers, body = signing.sign_response(
        secret=key, node=settings.NODE_NAME, status=status, request_nonce=opened.nonce,
        body=answer, requester=opened.sender,
    )  # fmt: skip
    return status, headers, body


def _arrived(mac: str, key: str, opened: Any, report: protocol.KeepAlive, remote: str,
             now: float, held: Held | None) -> tuple[int, dict, bytes] | None:  # fmt: skip
    """A keep-alive of a configured device that is not steady here (it arrives, it is
    redirected, its report changed), with acceptable firmware and a contact newer than
    this server's last one: answered here as Django would (200, or 409 naming the
    master), held, and its runtime row written in the next ``step``. Anything else (an
    unknown device, old firmware, a replay) goes to Django, which writes it at once and
    records the refusal."""
    known = HELD.known.get(mac)
    if HELD.answer is not None:
        status, answer, answer_json = 200, HELD.answer, HELD.answer_json
    elif HELD.redirect is not None:
        status, answer, answer_json = 409, HELD.redirect, HELD.redirect_json
    else:
        return None
    if known is None:
        return None
    last_stamp, last_keepalive_at = known.last_stamp, known.last_keepalive_at
    if held is not None:
        last_stamp = max(last_stamp, held.contact[0])
        if held.status == 200:  # its steady keep-alives since are in memory only
            last_keepalive_at = datetime.fromtimestamp(held.contact[1], UTC)
    if (
        report["kind"] != known.kind
        or opened.timestamp <= last_stamp
        or protocol.firmware_refusal(report["firmware"])
    ):
        return None
    at = datetime.fromtimestamp(now, UTC)
    values = link_values(
        report=report, stamp=opened.timestamp, remote=remote, status=status,
        message=answer.get("error", ""), now=at, last_keepalive_at=last_keepalive_at,
        attached_since=known.attached_since,
    )  # fmt: skip
    HELD.arrivals.append(Arrival(
        mac=mac, known=known, exists=known.exists, status=status, values=values,
        handsets=list(report.get("handsets") or ()), refused_before=known.refused,
        attached_before=was_attached(last_keepalive_at, at),
    ))  # fmt: skip
    known.exists, known.last_stamp = True, opened.timestamp
    known.last_keepalive_at, known.attached_since = (
        values["last_keepalive_at"],
        values["attached_since"],
    )
    known.refused = bool(values["refusal"])
    HELD.devices[mac] = Held(
        kind=known.kind, device_id=known.device_id, key=key, report=steady(report, remote),
        answer=answer_json, status=status, contact=(opened.timestamp, now),
        flushed=opened.timestamp, handsets_at=now,
    )  # fmt: skip
    return _signed(key, status, answer_json, opened)


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
        headers = headers_named(scope, signing.HEADERS)
        answered = _answered(headers, path_of(scope), client_of(scope), body)
        if answered is None:
            await _through_django(django, scope, body_replayed(body, receive), send)
            return
        status, headers, answer = answered
        await respond(send, status, answer, "application/json", headers)

    return keepalive


async def probe(scope: dict, receive: Any, send: Any) -> None:
    """The devices' liveness probe (``basestations.api.probe``) answered in the event loop:
    200 while this web server runs (a thousand base stations probe the other server every
    few seconds: through Django that took a core's tenth)."""
    if scope.get("method") not in ("GET", "HEAD"):
        await respond(send, 405, b'{"error": "GET only"}', "application/json", {"Allow": "GET"})
        return
    await respond(send, 200, json.dumps({"server": settings.NODE_NAME}).encode(),
                  "application/json")  # fmt: skip


class _Datagrams(asyncio.DatagramProtocol):
    """Keep-alive datagrams (``basestations.udp``): answered as the HTTP path answers
    them from memory, or ``USE_HTTP``; anything that is not a keep-alive datagram gets no
    answer (a datagram's sender address can be forged: nothing is reflected to it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            path, raw, body = udp.request_parse(data)
        except ValueError:
            return
        if path != protocol.KEEPALIVE_PATH:
            return
        headers = {name: raw[wire] for wire, name in signing.HEADERS.items() if wire in raw}
        try:
            answered = _answered(headers, path, str(addr[0]), body)
        except Exception:  # never the endpoint: this keep-alive goes over HTTP instead
            logger.exception("device keep-alives: a datagram could not be answered")
            answered = None
        status, answer_headers, answer = answered or (udp.USE_HTTP, {}, b"")
        self.transport.sendto(udp.response_bytes(status, answer_headers, answer), addr)


async def _datagrams_open() -> asyncio.DatagramTransport | None:
    """Listen for keep-alive datagrams where ``settings.DEVICE_UDP`` (host:port, the web
    server's own address) says; None (devices keep to HTTP) when unset or taken."""
    if not settings.DEVICE_UDP:
        return None
    host, _, port = settings.DEVICE_UDP.rpartition(":")
    try:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            _Datagrams, local_addr=(host.strip("[]") or "0.0.0.0", int(port))
        )
    except (OSError, ValueError) as exc:
        logger.warning("device keep-alives: no datagrams on %s (%s): devices keep to HTTP",
                       settings.DEVICE_UDP, exc)  # fmt: skip
        return None
    udp.listening_set(int(port))
    return transport  # type: ignore[return-value]


# --- Keeping in step with the node and the database -------------------------------------


def _at(epoch: float) -> Any:
    return connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(epoch, UTC))


def _contacts_write(cursor: Any, meta: Any, rows: list[tuple[int, float, Any]], *,
                    attached: bool) -> None:  # fmt: skip
    """Set the last contact of each (device id, stamp, time) in ``rows`` unless the row has
    a newer one (and its last accepted keep-alive, for devices ``attached`` here, not for
    redirected ones): one statement on PostgreSQL (arrays), one per row on SQLite."""
    table, pk = meta.db_table, meta.pk.column
    keepalive = "last_keepalive_at = {at}, " if attached else ""
    if connection.vendor == "postgresql":
        ids, stamps, ats = (list(column) for column in zip(*rows, strict=True))
        arrays_execute(
            f"UPDATE {table} AS link SET last_contact_at = v.at, "  # noqa: S608
            f"{keepalive.format(at='v.at')}last_stamp = v.stamp "
            "FROM unnest(%b::integer[], %b::float8[], %b::timestamptz[]) "
            f"AS v(id, stamp, at) WHERE link.{pk} = v.id AND link.last_stamp < v.stamp",
            [ids, [float(stamp) for stamp in stamps], ats],
        )
        return
    cursor.executemany(
        f"UPDATE {table} SET last_contact_at = %s, {keepalive.format(at='%s')}"  # noqa: S608
        f"last_stamp = %s WHERE {pk} = %s AND last_stamp < %s",
        [
            (at, at, stamp, pk_value, stamp) if attached else (at, stamp, pk_value, stamp)
            for pk_value, stamp, at in rows
        ],
    )


def _write(devices: list[Held]) -> None:
    """Write the arrivals not yet written, then the last contacts of ``devices`` (never
    over a newer one), and re-stamp the sightings of the handsets of those whose sightings
    are due; HELD.lock is held. Arrivals whose write fails are kept for the next one."""
    arrivals: list[Arrival] = []
    while HELD.arrivals:
        arrivals.append(HELD.arrivals.popleft())
    rows: dict[tuple[str, bool], list[tuple]] = {
        (kind, attached): [] for kind in LINK_MODELS for attached in (True, False)
    }
    due: list[Held] = []
    for held in devices:
        stamp, epoch = held.contact
        if stamp > held.flushed:
            at = _at(epoch)
            rows[held.kind, held.status == 200].append((held.device_id, stamp, at))
        if held.status == 200 and held.report[-1] and epoch - held.handsets_at >= HANDSET_REFRESH:
            due.append(held)
    if not any(rows.values()) and not due and not arrivals:
        return
    try:
        with transaction.atomic():
            _arrivals_write(arrivals)
            with connection.cursor() as cursor:
                for (kind, attached), values in rows.items():
                    if values:
                        _contacts_write(cursor, LINK_MODELS[kind]._meta, values,
                                        attached=attached)  # fmt: skip
            for held in due:
                HandsetSighting.objects.filter(
                    basestation_id=held.device_id, extension__in=held.report[-1]
                ).update(seen_at=datetime.fromtimestamp(held.contact[1], UTC))
    except (OperationalError, InterfaceError):  # the database is away: kept for later
        HELD.arrivals.extendleft(reversed(arrivals))
        raise
    except DatabaseError:  # what the database refuses now, it would refuse again
        logger.exception("device keep-alives: %d arrivals could not be written", len(arrivals))
        return
    for held in devices:
        held.flushed = max(held.flushed, held.contact[0])
    for held in due:
        held.handsets_at = held.contact[1]


def _arrivals_write(arrivals: list[Arrival]) -> None:
    """Each arrival's runtime row as the Django view would have written it, in order (a
    newer contact of the same device is never overwritten by an older one)."""
    if not arrivals:
        return
    # A row's refusal may be a redirect (409), which leaves no refusal to forget: one
    # reading of the refusals for the batch, not one deletion per arrival.
    refusals = (
        list(Refusal.objects.filter(kind="device_refused").values_list("key", flat=True))
        if any(arrival.refused_before for arrival in arrivals)
        else []
    )
    # One write per device: its latest arrival (its stamp is the newest), with what its
    # earlier ones in the batch had to note (a refusal to forget, an attachment to log).
    latest: dict[tuple[str, int], Arrival] = {}
    for arrival in arrivals:
        key = (arrival.known.kind, arrival.known.device_id)
        earlier = latest.get(key)
        if earlier is not None:
            arrival.exists = arrival.exists or earlier.exists
            arrival.refused_before = arrival.refused_before or earlier.refused_before
            if earlier.status == 200:
                arrival.attached_before = arrival.attached_before and earlier.attached_before
        latest[key] = arrival
    written: set[tuple[str, int]] = set()
    for kind in LINK_MODELS:
        mine = [a for (k, _), a in latest.items() if k == kind]
        links_create(kind, [a.known.device_id for a in mine if not a.exists])
        rows = [(a.known.device_id, a.values) for a in mine]
        written |= {(kind, pk) for pk in links_write(kind, rows)}
    for (kind, pk), arrival in latest.items():
        if (kind, pk) not in written:
            continue  # a newer contact (through Django) is there already
        if arrival.status == 200:
            accepted_note(
                kind=kind, device_id=pk, mac=arrival.mac, name=arrival.known.name,
                values=arrival.values, handsets=arrival.handsets,
                refused_before=arrival.refused_before
                and any(arrival.mac in key for key in refusals),
                attached_before=arrival.attached_before,
            )  # fmt: skip


def _pop(keep: Any) -> list[Held]:
    """Stop holding the devices ``keep`` refuses; return them (their contacts are still to
    be written). HELD.lock is held."""
    gone = [(mac, held) for mac, held in list(HELD.devices.items()) if not keep(mac, held)]
    for mac, _ in gone:
        del HELD.devices[mac]
    return [held for _, held in gone]


def _drop(keep: Any) -> None:
    """Stop holding the devices ``keep`` refuses, and write their contacts; HELD.lock is
    held."""
    _write(_pop(keep))


def _devices_read() -> dict[str, Known]:
    """Every configured device with its runtime row here, by MAC."""
    fields = ("mac", "pk", "name", "link__last_stamp", "link__last_keepalive_at",
              "link__attached_since", "link__refusal")  # fmt: skip
    known = {}
    for kind, model in (("rfp", BaseStation), ("media", MediaResource)):
        for mac, pk, name, stamp, keepalive_at, since, refusal in model.objects.values_list(
            *fields
        ):
            known[mac] = Known(
                kind=kind, device_id=pk, name=name, exists=stamp is not None,
                last_stamp=stamp or 0.0, last_keepalive_at=keepalive_at, attached_since=since,
                refused=bool(refusal),
            )  # fmt: skip
    return known


def _known_merge(read: dict[str, Known]) -> dict[str, Known]:
    """The devices just read, each as recent as what this process knows of it since."""
    for mac, known in read.items():
        mine = HELD.known.get(mac)
        if (
            mine is not None
            and (mine.kind, mine.device_id) == (known.kind, known.device_id)
            and mine.last_stamp > known.last_stamp
        ):
            mine.name = known.name
            read[mac] = mine
    return read


def _same(known: Known | None, held: Held) -> bool:
    return known is not None and (known.kind, known.device_id) == (held.kind, held.device_id)


def step(*, now: float | None = None) -> None:
    """One reading of the configuration and the role (dropping every held device when the
    answer changes), of the configured devices when due, and a write of the arrivals and
    the contacts when due."""
    now = time.monotonic() if now is None else now
    try:
        config = config_read()
        status, answer = keepalive_answer(config)
        answer_now = answer if status == 200 else None
        redirect_now = answer if status == 409 else None
        secret = config["system.device_secret"]
        read = _devices_read() if now - HELD.macs_at >= DEVICES_EVERY else None
        with HELD.lock:
            gone: list[Held] = []
            if answer_now != HELD.answer or secret != HELD.secret:
                gone += _pop(lambda mac, held: False)
                HELD.answer, HELD.secret = answer_now, secret
                HELD.answer_json = json.dumps(answer_now).encode()
            if redirect_now != HELD.redirect:
                HELD.redirect, HELD.redirect_json = redirect_now, json.dumps(redirect_now).encode()
            if read is not None:
                gone += _pop(lambda mac, held: _same(read.get(mac), held))
                HELD.known = _known_merge(read)
                HELD.macs_at = now
            fresh, wall = protocol.fresh_window(keepalive_interval()), time.time()
            gone += _pop(lambda mac, held: wall - held.contact[1] <= fresh)
            # The reading is fresh now, however long the write below takes (a thousand
            # arrivals in a failover): keep-alives are answered from memory meanwhile.
            HELD.read_at = now
            if gone or HELD.arrivals or now - HELD.written_at >= FLUSH_EVERY:
                _write(gone + list(HELD.devices.values()))
                HELD.written_at = now
    finally:
        close_old_connections()


async def watch(stop: asyncio.Event) -> None:
    """Run ``step`` every ``REFRESH_EVERY`` seconds while the web server runs; write what is
    held at shutdown."""
    stepper = sync_to_async(step, thread_sensitive=False)
    HELD.live = True
    failing = False
    datagrams = await _datagrams_open()
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
        udp.listening_set(0)
        if datagrams is not None:
            datagrams.close()
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
