"""SIP registration of the users this server handles: the node's ``sip`` process.

``RegistrationRunner`` keeps one ``SipRegistrationClient`` (users/sip) in step
with the database: about every second it reads which users this server
handles (NODE M on a master, S on a backup, every user after a takeover,
none on a backup that is rejected or never joined) and hands their
credentials to the client, which registers new ones at the configured rate,
refreshes them before expiry and un-registers users that were deleted or
handed to the other server. Status changes are buffered and written to
``SipRegistration`` in one bulk upsert per flush, so the Users list and the
Status page ("registered n of N") read them from the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from core.arrays import execute as arrays_execute
from core.assignment import BOTH
from core.counters import count, counters_flush, flush_due
from core.health import health_stamp
from core.models import NodeState
from core.selectors import config_read
from core.services import event_record
from users.config import registrar_address
from users.models import DectUser, PbxLink, PeerRegistration, SipRegistration
from users.selectors import handled_users
from users.sip.client import Credentials, RegistrationStatus, RegState, SipRegistrationClient

logger = logging.getLogger(__name__)

# Seconds a peer's registration state waits for its user to be replicated here (the
# replication lag is tens of milliseconds; a deleted user's last state holds no longer).
PEER_ROW_PATIENCE = 10.0


@dataclass(frozen=True)
class PbxSettings:
    server: tuple[str, int]
    transport: str
    domain: str
    rate: int | str  # registrations per second, or "auto" (users/sip/pace.py)
    rate_max: int  # the ceiling of "auto", in REGISTERs per second
    expires: int

    @property
    def address(self) -> tuple[tuple[str, int], str, str]:
        """What a registration is bound to (``users.config.REREGISTER_KEYS``): a change of
        it means registering every user again."""
        return self.server, self.transport, self.domain


def pbx_text(pbx: PbxSettings | None) -> str:
    """``host:port`` of a PBX as the pages show it; '' for none."""
    if pbx is None:
        return ""
    host, port = pbx.server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pbx_settings(values: dict[str, Any]) -> PbxSettings | None:
    if not values["sip.registrar"]:
        return None
    return PbxSettings(
        server=registrar_address(values["sip.registrar"]),
        transport=values["sip.transport"],
        domain=values["sip.domain"],
        rate=values["sip.rate"],
        rate_max=values["sip.rate_max"],
        expires=values["sip.expires"],
    )


def registering_now() -> str:
    """``NodeState.registering`` alone: the cheap check between two steps."""
    close_old_connections()
    return NodeState.objects.filter(pk=1).values_list("registering", flat=True).first() or ""


def desired_accounts(
    known: dict[str, Credentials] | None = None,
) -> tuple[PbxSettings | None, dict[str, Credentials], dict[str, int], str]:
    """The PBX to use, the accounts this server must hold, user ids by SIP user, and the
    ``NodeState.registering`` those accounts were read for (one read, so the two agree).
    Unchanged credentials are the objects of ``known`` (the last result), so comparing
    thousands of them is cheap."""
    known = known or {}
    close_old_connections()
    values = config_read()
    state = NodeState.load_light()
    pbx = pbx_settings(values)
    accounts: dict[str, Credentials] = {}
    ids: dict[str, int] = {}
    if pbx is not None:
        rows = handled_users(state).exclude(sip_username="").exclude(sip_password="")
        for user_id, username, password in rows.values_list("id", "sip_username", "sip_password"):
            creds = known.get(username)
            if creds is None or creds.password != password:
                creds = Credentials(username, password)
            accounts[username] = creds
            ids[username] = user_id
    return pbx, accounts, ids, state.registering


def _moment(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def registrations_record(changes: dict[int, RegistrationStatus]) -> int:
    """Write buffered status changes (by user id) in one bulk upsert; return how many.

    On PostgreSQL one statement from arrays (a user deleted meanwhile left out by the
    join): a takeover's thousands of changes through the ORM (the ids checked with an
    IN list, a model per row) took a fifth of the SIP process's CPU while it registered
    them."""
    close_old_connections()
    if connection.vendor == "postgresql":
        return _registrations_upsert(changes)
    existing = set(DectUser.objects.filter(id__in=changes).values_list("id", flat=True))
    rows = [
        SipRegistration(
            user_id=user_id,
            state=str(status.state.value),
            reason=status.reason[:200],
            changed_at=_moment(status.at) or datetime.now(UTC),
            expires_at=_moment(status.expires_at),
        )
        for user_id, status in changes.items()
        if user_id in existing  # a deleted user's final un-REGISTER has no row to keep
    ]
    SipRegistration.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["state", "reason", "changed_at", "expires_at"],
    )
    return len(rows)


def _registrations_upsert(changes: dict[int, RegistrationStatus]) -> int:
    table, users = SipRegistration._meta.db_table, DectUser._meta.db_table
    now = datetime.now(UTC)
    arrays = [
        list(changes),
        [str(s.state.value) for s in changes.values()],
        [s.reason[:200] for s in changes.values()],
        [_moment(s.at) or now for s in changes.values()],
        [_moment(s.expires_at) for s in changes.values()],
    ]
    return arrays_execute(
        f"INSERT INTO {table} (user_id, state, reason, changed_at, expires_at) "  # noqa: S608
        f"SELECT v.id, v.state, v.reason, v.changed_at, v.expires_at "
        f"FROM unnest(%b::bigint[], %b::varchar[], %b::varchar[], %b::timestamptz[], "
        f"%b::timestamptz[]) AS v(id, state, reason, changed_at, expires_at) "
        f"JOIN {users} AS u ON u.id = v.id "
        f"ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, "
        f"reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at, "
        f"expires_at = EXCLUDED.expires_at",
        arrays,
    )


def pbx_switch_record(*, pbx: PbxSettings | None, previous: PbxSettings | None) -> int:
    """The SIP process switches from ``previous`` to ``pbx``: record the PBX it talks to
    now and reset the states of the users it held, so the progress the pages show counts
    only what the new PBX has accepted (none yet). Return how many states were reset.

    With a PBX every user this server held is back to registering; without one (an empty
    ``sip.registrar``) they are not registered."""
    close_old_connections()
    now = datetime.now(UTC)
    link = PbxLink.load()
    link.registrar = pbx_text(pbx)
    link.transport = pbx.transport if pbx else ""
    link.domain = pbx.domain if pbx else ""
    link.previous = pbx_text(previous)
    link.since = now
    link.save()
    held = SipRegistration.objects.exclude(state=SipRegistration.State.UNREGISTERED)
    if pbx is None:
        state, reason = SipRegistration.State.UNREGISTERED, "no registrar (sip.registrar is empty)"
    else:
        state, reason = SipRegistration.State.PENDING, f"registering with {link.registrar}"
    reset = held.update(state=state, reason=reason, changed_at=now, expires_at=None)
    if previous is not None:  # a change of PBX, not the SIP process starting
        if pbx is None:
            message = f"No registrar: users un-registered from {link.previous}"
        else:
            message = (
                f"PBX changed from {link.previous}: re-registering users with {link.registrar}"
            )
        event_record(kind="sip", message=message)
    return reset


def sip_rate_record(*, rate: float | None, reason: str, changed_at: float) -> None:
    """Record the REGISTER rate the SIP process uses now and why it last changed (epoch
    ``changed_at``), for the Status page."""
    close_old_connections()
    PbxLink.objects.update_or_create(
        pk=1,
        defaults={
            "rate": rate,
            "rate_reason": reason[:200],
            "rate_changed_at": _moment(changed_at),
        },
    )


def takeover_reregistration_record(
    *, users: int, took: float, requests: int, pbx: PbxSettings, rate: float | None, reason: str
) -> str:
    """The event of the failover's re-registration: how many users, how long, at what
    rate; return its message."""
    per_second = requests / took if took > 0 else float(requests)
    if pbx.rate == "auto":
        how = f"adaptive rate {rate:.0f}/s now: {reason}"
    else:
        how = f"fixed rate {pbx.rate} registrations per second"
    message = (
        f"Failover re-registration: {users} users registered with {pbx_text(pbx)} in "
        f"{took:.2f} s, {per_second:.0f} REGISTERs per second ({how})"
    )
    close_old_connections()
    event_record(kind="sip", message=message)
    return message


def peer_registration_rows_parse(value: Any) -> list[PeerRegistration]:
    """The registration states of a peer's heartbeat (``selectors.registrations_changed_since``
    rows), checked; ValueError names what is wrong."""
    if not isinstance(value, list):
        raise ValueError("registrations must be a list")
    states = set(SipRegistration.State.values)
    parsed = []
    for n, row in enumerate(value):
        if not (isinstance(row, list) and len(row) == 4):
            raise ValueError(f"registrations[{n}] must be [user id, state, reason, changed at]")
        user_id, state, reason, changed_at = row
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
            raise ValueError(f"registrations[{n}]: {user_id!r} is not a user id")
        if state not in states:
            raise ValueError(f"registrations[{n}]: {state!r} is not a registration state")
        if not isinstance(reason, str):
            raise ValueError(f"registrations[{n}]: the reason must be a string")
        try:
            moment = datetime.fromisoformat(changed_at)
        except (TypeError, ValueError):
            raise ValueError(f"registrations[{n}]: {changed_at!r} is not a time") from None
        if moment.tzinfo is None:
            raise ValueError(f"registrations[{n}]: {changed_at!r} has no time zone")
        parsed.append(
            PeerRegistration(user_id=user_id, state=state, reason=reason[:200], changed_at=moment)
        )
    return parsed


def peer_cursor_parse(value: Any) -> list[Any] | None:
    """The cursor a peer's heartbeat gives (``selectors.peer_registrations_cursor``),
    checked; ValueError names what is wrong."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)):
        raise ValueError("registrations_seen must be [changed at, user id]")
    try:
        datetime.fromisoformat(value[0])
    except (TypeError, ValueError):
        raise ValueError(f"registrations_seen: {value[0]!r} is not a time") from None
    return value


def peer_registrations_record(rows: list[PeerRegistration], *, now: datetime | None = None) -> int:
    """Store the peer's registration states (parsed rows, oldest first) in one bulk upsert;
    return how many.

    A row of a user not replicated here yet stops the batch there: the last row stored is
    the cursor the peer sends after, so it comes again at the next beat. A row older than
    ``PEER_ROW_PATIENCE`` of a user this server still lacks is one it will never have
    (the peer knows users this server does not) and is left out."""
    now = now or datetime.now(UTC)
    existing = set(
        DectUser.objects.filter(id__in=[r.user_id for r in rows]).values_list("id", flat=True)
    )
    kept = []
    for row in rows:
        if row.user_id in existing:
            kept.append(row)
        elif (now - row.changed_at).total_seconds() < PEER_ROW_PATIENCE:
            break
    PeerRegistration.objects.bulk_create(
        kept,
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["state", "reason", "changed_at"],
    )
    return len(kept)


def _paired() -> bool:
    return config_read()["redundancy.mode"] != "single"


class RegistrationRunner:
    """Keeps this server's PBX registrations equal to the users it handles.

    A lost database never ends it: the step and the flush are retried (the step with
    backoff, up to ``MAX_BACKOFF``), and its liveness stamp ages meanwhile. A paired
    server that cannot read its database for longer than the detection window cannot
    tell whether the peer has taken its users over: it un-registers them rather than
    risk two registrations of one user, and registers what it owns once it can read
    again."""

    MAX_BACKOFF = 2.0

    def __init__(self, *, poll: float = 0.5, flush: float = 0.1) -> None:
        self.poll = poll
        self.flush_interval = flush
        self.client: SipRegistrationClient | None = None
        self.pbx: PbxSettings | None = None
        self.ids: dict[str, int] = {}
        # Users handed away or deleted, so their final un-REGISTER is still recorded.
        self._gone_ids: dict[str, int] = {}
        self._buffer: dict[int, RegistrationStatus] = {}
        # Since when the database cannot be read (monotonic), and whether this server
        # was paired when it last could.
        self._failing_since: float | None = None
        self._failures = 0
        self._paired = True
        self._released = False
        # A takeover being re-registered: its users, when they were handed to the
        # client (epoch) and the REGISTERs sent until then.
        self._homes = ""
        self._takeover: tuple[set[str], float, int] | None = None
        self._rate_shown: tuple[int | None, str] | None = None
        self._registering: str | None = None  # NodeState.registering at the last step
        self._accounts: dict[str, Credentials] = {}  # what the last step read

    def _on_change(self, user: str, status: RegistrationStatus) -> None:
        user_id = self.ids.get(user) or self._gone_ids.get(user)
        if user_id is not None:
            self._buffer[user_id] = status
        # Each REGISTER answered (or given up) is one attempt; un-REGISTERs are not counted.
        if status.state == RegState.REGISTERED:
            count("sip.registrations")
        elif status.state == RegState.FAILED and not status.reason.startswith("un-REGISTER"):
            count("sip.registration_failures")

    async def step(self) -> None:
        """Read what this server must hold, adjust the client, and stamp its liveness."""
        pbx, accounts, ids, self._registering = await asyncio.to_thread(
            desired_accounts, self._accounts
        )
        self._accounts = accounts
        self._paired = await asyncio.to_thread(_paired)
        homes = self._registering if self._paired else ""
        if pbx != self.pbx:
            if self.client and pbx and self.pbx and pbx.address == self.pbx.address:
                # Only the rate or the expiry: the registrations stand.
                self.client.retune(rate=pbx.rate, rate_max=pbx.rate_max, expires=pbx.expires)
                logger.info("registering at %s/s, expiry %s s", pbx.rate, pbx.expires)
                self.pbx = pbx
            else:
                await self._switch(pbx)
        self._gone_ids.update({u: i for u, i in self.ids.items() if u not in ids})
        # A takeover: every home after one (a moment without any may come between).
        if self.client is not None and homes == BOTH and self._homes not in ("", BOTH):
            taken = set(accounts) - set(self.ids)
            if taken:
                self._takeover = (taken, time.time(), self.client.sent["register"])
        if homes:
            self._homes = homes
        self.ids = ids
        if self.client is not None:
            self.client.set_accounts(accounts)
            await self._takeover_check()
            await self._rate_publish()
        registered = self.client.progress().registered if self.client is not None else 0
        detail = f"{len(accounts)} users to register, {registered} registered"
        await asyncio.to_thread(health_stamp, "sip", detail=detail)

    async def _takeover_check(self) -> None:
        """Once every user of a takeover is registered, record how long it took."""
        if self._takeover is None or self.client is None or self.pbx is None:
            return
        users, started, sent_before = self._takeover
        statuses = [self.client.status(u) for u in users]
        if any(s is None or s.state != RegState.REGISTERED for s in statuses):
            if self._homes != BOTH:
                self._takeover = None  # given back before it finished
            return
        self._takeover = None
        took = max(s.at for s in statuses if s is not None) - started
        rate, reason = self.client.rate_now()
        message = await asyncio.to_thread(
            takeover_reregistration_record,
            users=len(users),
            took=took,
            requests=self.client.sent["register"] - sent_before,
            pbx=self.pbx,
            rate=rate,
            reason=reason,
        )
        logger.info("%s", message)

    async def _rate_publish(self) -> None:
        """Write the rate in use and its reason when they changed (to the 1 %)."""
        assert self.client is not None
        rate, reason = self.client.rate_now()
        shown = (None if rate is None else round(rate, -1 if rate < 1000 else -2), reason)
        if shown == self._rate_shown:
            return
        pace = self.client.pace
        changed_at = time.time()
        if pace is not None:
            changed_at -= max(0.0, time.monotonic() - pace.last.at)
        await asyncio.to_thread(sip_rate_record, rate=rate, reason=reason, changed_at=changed_at)
        self._rate_shown = shown

    def _database_lost(self, exc: Exception) -> None:
        """A step could not read the database: note it; release every user once the
        node cannot tell for longer than the detection window whether they are its."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            logger.warning("registration step failed (%s); retrying", exc)
        self._failures += 1
        lost_for = now - self._failing_since
        if (
            self._paired
            and not self._released
            and lost_for > settings.DETECTION_WINDOW
            and self.client is not None
        ):
            logger.warning(
                "database unreachable for %.1f s: un-registering every user, the peer may "
                "have taken them over",
                lost_for,
            )
            self.client.set_accounts({})
            self._released = True

    def _database_back(self) -> None:
        if self._failing_since is not None:
            logger.info(
                "registration step works again after %.1f s",
                time.monotonic() - self._failing_since,
            )
        self._failing_since, self._failures, self._released = None, 0, False

    def _next_delay(self) -> float:
        if not self._failures:
            return self.poll
        return min(self.MAX_BACKOFF, self.poll * 2 ** min(self._failures - 1, 6))

    async def _switch(self, pbx: PbxSettings | None) -> None:
        """Leave the PBX in use (un-registering its users) and register with ``pbx``.
        Every state is reset first: what the old client reported and is not written yet
        is about the old PBX. Its un-REGISTERs are recorded for the users it leaves; the
        new client reports each user it registers afresh, which overrides them."""
        self._buffer.clear()
        await asyncio.to_thread(pbx_switch_record, pbx=pbx, previous=self.pbx)
        if self.client is not None:
            logger.info("PBX settings changed: un-registering from %s", self.pbx)
            await self.client.stop(unregister=True)
            self.client = None
        self.pbx = pbx
        if pbx is not None:
            self.client = SipRegistrationClient(
                pbx.server,
                transport=pbx.transport,  # type: ignore[arg-type]
                domain=pbx.domain or None,
                rate=pbx.rate,  # type: ignore[arg-type]
                rate_max=pbx.rate_max,
                expires=pbx.expires,
                on_change=self._on_change,
            )
            await self.client.start()
            self._rate_shown = None
            logger.info("registering users with %s:%s over %s", *pbx.server, pbx.transport)

    async def flush(self, *, final: bool = False) -> None:
        """Write the buffered status changes; kept for the next flush if that fails. The
        statistics counters are written every ``core.counters.FLUSH_EVERY`` seconds."""
        if final or flush_due():
            await asyncio.to_thread(counters_flush, force=final)
        if not self._buffer:
            return
        changes, self._buffer = self._buffer, {}
        try:
            await asyncio.to_thread(registrations_record, changes)
        except Exception as exc:  # a lost database: the states wait, newer ones win
            self._buffer = {**changes, **self._buffer}
            logger.debug("registration states not written yet: %s", exc)

    async def _homes_changed(self) -> bool:
        """Whether the engine changed the homes this server registers since the last
        step: one small read, so a takeover reaches the client within a flush interval
        rather than at the next full step."""
        if self._failures or self.client is None:
            return False
        try:
            return await asyncio.to_thread(registering_now) != self._registering
        except Exception:  # the step that follows says what is wrong
            return True

    async def run(self, stop: asyncio.Event) -> None:
        next_step = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_step or await self._homes_changed():
                try:
                    await self.step()
                except Exception as exc:  # a database hiccup must not end registration
                    self._database_lost(exc)
                else:
                    self._database_back()
                next_step = now + self._next_delay()
            await self.flush()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.flush_interval)
            except TimeoutError:
                pass
        await self.flush()
        if self.client is not None:
            await self.client.stop(unregister=False)
        await self.flush(final=True)
