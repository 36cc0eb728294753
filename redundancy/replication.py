"""Replication: the master's change log, and the backup that follows it.

The master is the only writer of replicated configuration. A service that
changes it calls ``changelog_append`` inside its own transaction; the entry
gets the next ``seq`` while the one-row ``ChangeLogHead`` is locked, so
transactions commit in ``seq`` order and the log has no holes (a rolled-back
write rolls its number back). ``redundancy.locks.write_check`` runs first, so
a backup or a locked node refuses every replicated write in one place.

The backup pulls (``replication_pull``: Celery beat every second, and the
master's nudge right after each commit) the entries after its position from
``GET /api/peer/changes`` and applies each batch, in order, in ONE transaction
together with its new position. Applying is idempotent (upserts by key,
deletes of what may be gone). Nothing is applied unless the master's database
UUID equals ours (an error event names both, once per distinct refusal).

A full snapshot resync (``GET /api/peer/snapshot``, applied in one
transaction) replaces every replicated table when the position cannot be
continued: the master's log is new to this backup (first join, another
master, a master whose database was recreated), this node wrote entries of
its own since it last followed (it was a master: its data may hold changes
the new master never saw), the master's head is behind our position, or the
next entries were trimmed from the master's log. A first join always starts
with a snapshot because a node that joins may hold data of its own. A
snapshot also retires this node's own log (new ``log_id``, entries deleted),
so whoever follows this node later starts with a snapshot too.

Durability guarantee. While the pair is in sync (the master's
``NodeState.phase`` is ``normal``) a write through the services returns to
the administrator only after the backup acknowledged it: the commit hook
calls the backup's ``POST /api/peer/nudge`` synchronously (timeout
``NUDGE_TIMEOUT``); the backup pulls and applies right away and answers its
position, which the master records. A failover or role swap after that
cannot lose the change. When the backup is down, not joined, refuses (other
UUID) or does not answer in time, the change is acknowledged on the master
alone: it reaches the backup with its next pull, and is lost only if the
master's database is lost before that. This is logged at most once per
minute. The hook never raises and is bounded by the timeout, so tests and
Celery tasks do not hang; unit tests never see ``normal`` unless they set it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypedDict

from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kws_admin.models import PasswordChangeRequired
from kws_admin.services import config_read
from redundancy.locks import Locked, write_check
from redundancy.models import (
    ChangeLogEntry,
    ChangeLogHead,
    Event,
    NodeState,
    Phase,
    ReplicationState,
)
from redundancy.peer import PeerClient, PeerError
from redundancy.services import event_record
from users.models import DectUser

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A pull catches up at most this many batches per call; the next tick continues.
MAX_BATCHES = 40
# How long an administrator's save waits for the backup's acknowledgement (s).
NUDGE_TIMEOUT = 2.0
SNAPSHOT_TIMEOUT = 60.0
# The master keeps this many entries; a backup further behind resyncs from a snapshot.
TRIM_KEEP = 50_000
QUIET_SECONDS = 60.0


class ApplyError(Exception):
    """An entry this node cannot apply (unknown entity or op, malformed data)."""


class Client(Protocol):
    def call(self, method: str, path: str, payload: Any = None) -> Any: ...


# --- Payloads of the peer API ------------------------------------------------


class EntryPayload(TypedDict):
    seq: int
    created: str
    entity: str
    op: str
    key: str
    data: Any


class ChangesAnswer(TypedDict):
    database_uuid: str
    log_id: str
    head: int
    entries: list[EntryPayload]


class SnapshotAnswer(TypedDict):
    database_uuid: str
    log_id: str
    head: int
    entities: dict[str, list[dict[str, Any]]]


# --- The registry of replicated entities -------------------------------------


@dataclass(frozen=True)
class Entity:
    """How one kind of replicated data is applied and copied whole.

    ``apply(op, key, data)`` must be idempotent. ``snapshot()`` returns every
    row as JSON-able dicts and ``restore(rows)`` makes the local table equal to
    them; entities that only change other entities' rows have neither.
    ``sequence_models`` get their id sequence reset after rows with explicit
    ids were written, so a promoted backup can create rows.
    """

    name: str
    ops: frozenset[str]
    apply: Callable[[str, str, Any], None]
    snapshot: Callable[[], list[dict[str, Any]]] | None = None
    restore: Callable[[list[dict[str, Any]]], None] | None = None
    sequence_models: tuple[type[models.Model], ...] = ()


ENTITIES: dict[str, Entity] = {}


def entity_register(entity: Entity) -> Entity:
    """Add a replicated entity; snapshots restore in registration order (parents first)."""
    ENTITIES[entity.name] = entity
    return entity


# --- user: DectUser rows, by id ---------------------------------------------

_USER_FIELDS = [f.attname for f in DectUser._meta.concrete_fields]


def dect_user_data(user: DectUser) -> dict[str, Any]:
    """Every column of a user, as the change log and the snapshot carry it."""
    return {name: getattr(user, name) for name in _USER_FIELDS}


def _user_fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or "id" not in data:
        raise ApplyError(f"user data without id: {data!r:.200}")
    unknown = set(data) - set(_USER_FIELDS)
    if unknown:
        raise ApplyError(f"user data has fields this server does not know: {sorted(unknown)}")
    return data


def _user_apply(op: str, key: str, data: Any) -> None:
    if op == "upsert":
        fields = dict(_user_fields(data))
        DectUser.objects.update_or_create(id=fields.pop("id"), defaults=fields)
    elif op == "delete":
        DectUser.objects.filter(id=int(key)).delete()


def _user_snapshot() -> list[dict[str, Any]]:
    return list(DectUser.objects.order_by("id").values(*_USER_FIELDS))


def _user_restore(rows: list[dict[str, Any]]) -> None:
    # Rows are kept by id, not deleted and re-created: node-local rows that point at a
    # user (its SIP registration) survive a resync.
    wanted = {int(row["id"]): _user_fields(row) for row in rows}
    DectUser.objects.exclude(id__in=list(wanted)).delete()
    current = {row["id"]: row for row in DectUser.objects.values(*_USER_FIELDS)}
    changed = [pk for pk, row in current.items() if row != wanted[pk]]
    if changed:
        # Free their unique values first, so users that swapped extensions or IPEIs do
        # not collide half way (extensions are digits, so "~id" is never taken).
        DectUser.objects.bulk_update(
            [DectUser(id=pk, extension=f"~{pk}", ipei=None) for pk in changed],
            ["extension", "ipei"],
            batch_size=1000,
        )
        DectUser.objects.bulk_update(
            [DectUser(**wanted[pk]) for pk in changed],
            [name for name in _USER_FIELDS if name != "id"],
            batch_size=1000,
        )
    DectUser.objects.bulk_create(
        [DectUser(**row) for pk, row in wanted.items() if pk not in current], batch_size=1000
    )


# --- user_assignment: the NODE column of many users at once -----------------


def _user_assignment_apply(op: str, key: str, data: Any) -> None:
    if not isinstance(data, dict) or not set(data) <= {"M", "S"}:
        raise ApplyError(f"user_assignment data must be {{'M': [...], 'S': [...]}}: {data!r:.200}")
    for node, ids in data.items():
        DectUser.objects.filter(id__in=ids).exclude(node=node).update(node=node)


def user_assignment_record() -> int:
    """Append the NODE of every user (after a rebalance or takeover), in the caller's
    transaction; returns the entry's seq."""
    data: dict[str, list[int]] = {"M": [], "S": []}
    for pk, node in DectUser.objects.order_by("id").values_list("id", "node"):
        data.setdefault(node, []).append(pk)
    return changelog_append(entity="user_assignment", op="set", key="all", data=data)


# --- admin_account: django.contrib.auth users, by username ------------------

_ADMIN_FIELDS = (
    "password", "is_active", "is_staff", "is_superuser", "first_name", "last_name", "email",
)  # fmt: skip


def admin_account_data(user: Any) -> dict[str, Any]:
    """An admin account as replicated: its password hash, flags, names and whether it
    still has to change its initial password."""
    data = {name: getattr(user, name) for name in _ADMIN_FIELDS}
    data["username"] = user.get_username()
    data["password_change_required"] = PasswordChangeRequired.objects.filter(user=user).exists()
    return data


def _admin_upsert(data: Any) -> None:
    if not isinstance(data, dict) or not data.get("username"):
        raise ApplyError(f"admin_account data without username: {data!r:.200}")
    User = get_user_model()
    user, _ = User.objects.update_or_create(
        username=data["username"], defaults={name: data[name] for name in _ADMIN_FIELDS}
    )
    if data.get("password_change_required"):
        PasswordChangeRequired.objects.get_or_create(user=user)
    else:
        PasswordChangeRequired.objects.filter(user=user).delete()


def _admin_apply(op: str, key: str, data: Any) -> None:
    if op == "upsert":
        _admin_upsert(data)
    elif op == "delete":
        get_user_model().objects.filter(username=key).delete()


def _admin_snapshot() -> list[dict[str, Any]]:
    return [admin_account_data(user) for user in get_user_model().objects.order_by("username")]


def _admin_restore(rows: list[dict[str, Any]]) -> None:
    # Upsert by username rather than replace: local ids (and so sessions) survive.
    for row in rows:
        _admin_upsert(row)
    names = [row["username"] for row in rows]
    get_user_model().objects.exclude(username__in=names).delete()


ROUTE_LOG, ROUTE_FORWARD, ROUTE_LOCAL = "log", "forward", "local"


def admin_account_route() -> str:
    """Where a change of an admin account goes on this node.

    ``log`` on a master or single server (a replicated write; Locked when
    locked). ``forward`` on a joined backup: the master makes the change and
    replicates it back (an administrator must be able to change the initial
    password wherever he logs in). ``local`` on a backup that is not joined:
    its accounts are its own until a snapshot replaces them. Raises Locked on
    a backup in failover, where nothing can be changed.
    """
    if config_read()["redundancy.mode"] != "slave":
        write_check()
        return ROUTE_LOG
    state = NodeState.load()
    if state.phase == Phase.NORMAL:
        return ROUTE_FORWARD
    if state.phase == Phase.FAILOVER:
        raise Locked(state.lock_reason or "failover: nothing can be changed")
    return ROUTE_LOCAL


def admin_account_record(user: Any) -> int | None:
    """Record a new or changed admin account in the caller's transaction, on the route
    of ``admin_account_route``; return the entry's seq (None if not logged here).

    A joined backup cannot create accounts (Locked: do it on the master)."""
    route = admin_account_route()
    if route == ROUTE_FORWARD:
        raise Locked("this server is the backup: admin accounts are created on the master")
    if route == ROUTE_LOCAL:
        _local_change_noted(f"admin account {user.get_username()}")
        return None
    return changelog_append(
        entity="admin_account", op="upsert", key=user.get_username(), data=admin_account_data(user)
    )


def admin_account_delete_record(username: str) -> int:
    """Append the deletion of an admin account, in the caller's transaction."""
    return changelog_append(entity="admin_account", op="delete", key=username, data={})


def _local_change_noted(what: str) -> None:
    """A backup changed replicated data on its own: it diverges from the master's log,
    so its next pull starts with a snapshot."""
    logger.info("%s changed locally on a backup that is not joined", what)
    ReplicationState.load()
    ReplicationState.objects.filter(pk=1).update(master_log_id="")


def admin_password_set(*, user: Any, password: str, actor: str) -> None:
    """Set an admin account's password and clear its first-login mark.

    Raises Locked where admin accounts cannot be changed, or when a joined
    backup cannot reach the master to forward the change (nothing changes
    then). The caller updates the session's auth hash."""
    route = admin_account_route()
    user.set_password(password)
    data = {**admin_account_data(user), "password_change_required": False}
    if route == ROUTE_FORWARD:
        _admin_forward(data)
    with transaction.atomic():
        _admin_upsert(data)
        if route == ROUTE_LOG:
            changelog_append(entity="admin_account", op="upsert", key=data["username"], data=data)
        elif route == ROUTE_LOCAL:
            _local_change_noted(f"admin account {data['username']}")
        event_record(
            kind="admin_account",
            message=f"Password of admin account {data['username']} changed"
            + (" (through the master)" if route == ROUTE_FORWARD else "")
            + ".",
            actor=actor,
        )


def _admin_forward(data: dict[str, Any]) -> None:
    try:
        PeerClient.from_config(timeout=NUDGE_TIMEOUT + 3).call(
            "POST", "/api/peer/admin_account", data
        )
    except PeerError as exc:
        raise Locked(f"this server is the backup and could not reach the master: {exc}") from None


def admin_account_accept(payload: Any) -> tuple[int, dict[str, Any]]:
    """Master side of a forwarded admin account change: a replicated upsert."""
    if not isinstance(payload, dict) or not payload.get("username"):
        return 400, {"error": "an admin account needs a username"}
    missing = [name for name in _ADMIN_FIELDS if name not in payload]
    if missing:
        return 400, {"error": f"admin account fields missing: {', '.join(missing)}"}
    data = {name: payload[name] for name in (*_ADMIN_FIELDS, "username")}
    data["password_change_required"] = bool(payload.get("password_change_required"))
    try:
        with transaction.atomic():
            _admin_upsert(data)
            seq = changelog_append(
                entity="admin_account", op="upsert", key=data["username"], data=data
            )
            event_record(
                kind="admin_account",
                message=f"Admin account {data['username']} changed on the backup.",
                actor=data["username"],
            )
    except Locked as exc:
        return 423, {"error": exc.reason}
    return 200, {"seq": seq}


entity_register(
    Entity(
        "admin_account",
        frozenset({"upsert", "delete"}),
        _admin_apply,
        _admin_snapshot,
        _admin_restore,
    )
)
entity_register(
    Entity(
        "user",
        frozenset({"upsert", "delete"}),
        _user_apply,
        _user_snapshot,
        _user_restore,
        sequence_models=(DectUser,),
    )
)
entity_register(Entity("user_assignment", frozenset({"set"}), _user_assignment_apply))


# --- The change log (master side) -------------------------------------------


def _head_locked() -> ChangeLogHead:
    head, _ = ChangeLogHead.objects.select_for_update().get_or_create(pk=1)
    return head


def changelog_head() -> ChangeLogHead:
    head, _ = ChangeLogHead.objects.get_or_create(pk=1)
    return head


def changelog_append(*, entity: str, op: str, key: str, data: Any) -> int:
    """Write one change-log entry in the caller's ``transaction.atomic()``; return its seq.

    Raises Locked (via ``write_check``) on a backup or a locked node, ValueError
    for an unknown entity or op, TransactionManagementError outside a
    transaction. The backup is nudged once the caller's transaction commits.
    """
    spec = ENTITIES.get(entity)
    if spec is None or op not in spec.ops:
        raise ValueError(f"no replicated entity {entity!r} with op {op!r}")
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("changelog_append must run inside transaction.atomic()")
    # Lock the head first, then check: a write that waited for a switchover to finish
    # must see that this server has become the backup since.
    head = _head_locked()
    write_check()
    head.seq += 1
    head.save(update_fields=["seq"])
    ChangeLogEntry.objects.create(
        seq=head.seq, created=timezone.now(), entity=entity, op=op, key=key, data=data
    )
    seq = head.seq
    transaction.on_commit(lambda: _after_commit(seq), robust=True)
    return seq


def changelog_trim(*, keep: int = TRIM_KEEP) -> int:
    """Delete all but the newest ``keep`` entries; return how many were deleted."""
    head = changelog_head()
    deleted, _ = ChangeLogEntry.objects.filter(seq__lte=head.seq - keep).delete()
    return deleted


def _entry_payload(entry: ChangeLogEntry) -> EntryPayload:
    return {
        "seq": entry.seq,
        "created": entry.created.isoformat(),
        "entity": entry.entity,
        "op": entry.op,
        "key": entry.key,
        "data": entry.data,
    }


def changes_page(*, after: int, limit: int = BATCH_SIZE) -> ChangesAnswer:
    """The master's answer to a backup at position ``after`` (which it has applied)."""
    head = changelog_head()
    entries = ChangeLogEntry.objects.filter(seq__gt=after).order_by("seq")[:limit]
    ReplicationState.load()
    ReplicationState.objects.filter(pk=1).update(peer_position=after, peer_acked_at=timezone.now())
    return {
        "database_uuid": config_read()["redundancy.database_uuid"],
        "log_id": head.log_id,
        "head": head.seq,
        "entries": [_entry_payload(entry) for entry in entries],
    }


def snapshot_build() -> SnapshotAnswer:
    """Every replicated row and the head they correspond to, read in one snapshot.

    On PostgreSQL the transaction is REPEATABLE READ, so the head and the
    tables are read as of one moment without blocking writers; SQLite reads
    a consistent snapshot anyway."""
    changelog_head()  # exists before the snapshot, which would not see it created meanwhile
    with transaction.atomic():
        if connection.vendor == "postgresql" and not _in_outer_transaction():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = changelog_head()
        entities = {
            name: spec.snapshot() for name, spec in ENTITIES.items() if spec.snapshot is not None
        }
        return {
            "database_uuid": config_read()["redundancy.database_uuid"],
            "log_id": head.log_id,
            "head": head.seq,
            "entities": entities,
        }


def _in_outer_transaction() -> bool:
    # Inside our own atomic block only: savepoint_ids is empty for the outermost block.
    return len(connection.savepoint_ids) > 0


# --- Durability: nudge the backup after commit (master side) -----------------

_nudged = threading.local()
_quiet_lock = threading.Lock()
_quiet_until: dict[str, float] = {}


def _log_quietly(key: str, message: str, *args: Any) -> None:
    """Log a warning at most once per QUIET_SECONDS per key and process."""
    now = time.monotonic()
    with _quiet_lock:
        if _quiet_until.get(key, 0.0) > now:
            return
        _quiet_until[key] = now + QUIET_SECONDS
    logger.warning(message, *args)


def _nudge_client() -> Client:
    return PeerClient.from_config(timeout=NUDGE_TIMEOUT)


@dataclass
class NudgeResult:
    sent: bool
    acknowledged: bool
    position: int
    reason: str


def replication_nudge(*, seq: int | None = None, client: Client | None = None) -> NudgeResult:
    """Ask an in-sync backup to pull now and wait for its position (master side).

    ``acknowledged`` says whether the backup has applied ``seq`` (default: our
    head). Never raises for an absent or slow backup; that is the answer.
    """
    head = changelog_head().seq
    target = head if seq is None else seq
    if config_read()["redundancy.mode"] != "master":
        return NudgeResult(False, False, 0, "this server is not a master")
    if NodeState.load().phase != Phase.NORMAL:
        return NudgeResult(False, False, 0, "the backup is not in sync: acknowledged on the master")
    try:
        answer = (client or _nudge_client()).call("POST", "/api/peer/nudge", {"head": head})
        position = int(answer["position"])
    except (PeerError, KeyError, TypeError, ValueError) as exc:
        _log_quietly(
            "nudge", "backup did not acknowledge change #%s (acknowledged on the master alone): %s",
            target, exc,
        )  # fmt: skip
        return NudgeResult(True, False, 0, f"backup did not answer: {exc}")
    ReplicationState.load()
    ReplicationState.objects.filter(pk=1).update(
        peer_position=position, peer_acked_at=timezone.now()
    )
    if position < target:
        _log_quietly(
            "nudge-behind", "backup is at #%s after a nudge for #%s (outcome %s)",
            position, target, answer.get("outcome", "?"),
        )  # fmt: skip
        return NudgeResult(True, False, position, "the backup did not apply the change")
    return NudgeResult(True, True, position, "acknowledged by the backup")


def _after_commit(seq: int) -> None:
    """Commit hook of changelog_append: one nudge covers every entry up to the head,
    so the many hooks of a bulk write cost one round trip."""
    if getattr(_nudged, "through", 0) >= seq:
        return
    try:
        _nudged.through = changelog_head().seq
        replication_nudge(seq=seq)
    except Exception:  # a committed write must still answer the administrator
        logger.exception("nudge after change #%s failed", seq)


# --- The backup: pull and apply ---------------------------------------------


@dataclass
class PullResult:
    """What one pull did; ``reason`` is a readable sentence for logs and the UI."""

    outcome: str  # skipped, unreachable, refused, up_to_date, applied, error
    position: int
    applied: int = 0
    snapshots: int = 0
    reason: str = ""


@dataclass
class _Page:
    database_uuid: str
    log_id: str
    head: int
    entries: list[EntryPayload] = field(default_factory=list)


def _page_parse(answer: Any) -> _Page:
    try:
        return _Page(
            database_uuid=str(answer["database_uuid"]),
            log_id=str(answer["log_id"]),
            head=int(answer["head"]),
            entries=list(answer["entries"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PeerError(f"malformed changes answer: {exc}") from None


def _pull_client() -> Client:
    return PeerClient.from_config()


def _skip_reason(*, nudged: bool) -> str:
    values = config_read()
    if values["redundancy.mode"] != "slave":
        return "this server is not a backup"
    # The master nudges only a backup it accepted (its phase is normal), which may be
    # a moment before this backup's engine says so itself.
    if not nudged and NodeState.load().phase != Phase.NORMAL:
        return "this backup has not joined the master (phase is not normal)"
    if not values["redundancy.database_uuid"]:
        return "this backup has no database UUID yet (it is fetched when it joins)"
    return ""


def _error_note(state: ReplicationState, message: str, *, event: bool) -> None:
    """Remember the current error; an event is written when it first appears."""
    if state.last_error == message[:500]:
        return
    ReplicationState.objects.filter(pk=1).update(last_error=message[:500])
    state.last_error = message[:500]
    if event:
        event_record(kind="replication", message=message, severity=Event.Severity.ERROR)
    else:
        logger.warning("replication: %s", message)


def _error_clear(state: ReplicationState) -> None:
    if state.last_error:
        ReplicationState.objects.filter(pk=1).update(last_error="")
        logger.info("replication: resumed after: %s", state.last_error)
        state.last_error = ""


def _resync_reason(state: ReplicationState, page: _Page) -> str:
    """Why the backup cannot continue at its position, or '' if it can."""
    local = changelog_head()
    if state.master_log_id != page.log_id:
        return "the master's change log is new to this backup"
    if state.master_uuid != page.database_uuid:
        return "the database UUID changed"
    if state.local_log_id != local.log_id or local.seq != 0:
        return "this server wrote changes of its own since it last followed the master"
    if page.head < state.position:
        return f"the master's head #{page.head} is behind this backup's position #{state.position}"
    if page.entries and int(page.entries[0]["seq"]) != state.position + 1:
        return (
            f"entries #{state.position + 1} to #{int(page.entries[0]['seq']) - 1} are no longer "
            "in the master's change log"
        )
    if not page.entries and page.head > state.position:
        return f"entries after #{state.position} are no longer in the master's change log"
    return ""


def _sequences_reset(model_classes: Iterable[type[models.Model]]) -> None:
    statements = connection.ops.sequence_reset_sql(no_style(), list(model_classes))
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def _entry_apply(entry: EntryPayload) -> Entity:
    spec = ENTITIES.get(entry["entity"])
    if spec is None or entry["op"] not in spec.ops:
        raise ApplyError(
            f"entry #{entry['seq']} is {entry['entity']} {entry['op']}, which this server's "
            "version does not know: update it to the master's version"
        )
    spec.apply(entry["op"], str(entry["key"]), entry["data"])
    return spec


def _batch_apply(expected: int, page: _Page) -> int | None:
    """Apply a batch and the new position in one transaction; None if another pull
    moved the position meanwhile (nothing applied then)."""
    now = timezone.now()
    with transaction.atomic():
        state = ReplicationState.objects.select_for_update().get(pk=1)
        if state.position != expected or state.master_log_id != page.log_id:
            return None
        touched: set[type[models.Model]] = set()
        for offset, entry in enumerate(page.entries):
            if int(entry["seq"]) != expected + offset + 1:
                raise ApplyError(f"entry #{entry['seq']} out of order after #{expected + offset}")
            touched.update(_entry_apply(entry).sequence_models)
        _sequences_reset(touched)
        last = page.entries[-1]
        state.position = int(last["seq"])
        state.master_head = page.head
        state.master_head_at = now
        state.last_pull_at = now
        state.last_applied_at = now
        state.last_applied_created = parse_datetime(last["created"])
        state.applied_count += len(page.entries)
        state.behind_since = (state.behind_since or now) if state.position < page.head else None
        state.last_error = ""
        state.save()
    return len(page.entries)


def _snapshot_apply(answer: Any, reason: str, seen: tuple[int, str]) -> int | None:
    """Replace every replicated table with the master's snapshot, in one transaction;
    retire this node's own log; return the new position. ``seen`` is the (position,
    master log) the decision was made on; None if another pull changed it meanwhile."""
    try:
        head = int(answer["head"])
        log_id = str(answer["log_id"])
        tables = dict(answer["entities"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PeerError(f"malformed snapshot: {exc}") from None
    unknown = set(tables) - set(ENTITIES)
    if unknown:
        raise ApplyError(
            f"the master's snapshot has {sorted(unknown)}, which this server's version does "
            "not know: update it to the master's version"
        )
    now = timezone.now()
    with transaction.atomic():
        state = ReplicationState.objects.select_for_update().get(pk=1)
        if (state.position, state.master_log_id) != seen:
            return None  # a concurrent pull moved on meanwhile; decide again
        # Taking the first snapshot of a master is routine; losing the position is not.
        routine = not state.master_log_id
        touched: list[type[models.Model]] = []
        for name, spec in ENTITIES.items():
            if spec.restore is not None:
                spec.restore(tables.get(name, []))
                touched.extend(spec.sequence_models)
        _sequences_reset(touched)
        local = _head_locked()
        local.log_id, local.seq = str(uuid.uuid4()), 0
        local.save()
        ChangeLogEntry.objects.all().delete()
        state.master_uuid = str(answer["database_uuid"])
        state.master_log_id = log_id
        state.local_log_id = local.log_id
        state.position = head
        state.master_head = head
        state.master_head_at = now
        state.last_pull_at = now
        state.last_applied_at = now
        state.snapshot_count += 1
        state.last_snapshot_at = now
        state.behind_since = None
        state.last_error = ""
        state.save()
        event_record(
            kind="replication",
            message=f"Full resync from the master's snapshot at #{head}: {reason}.",
            severity=Event.Severity.INFO if routine else Event.Severity.WARNING,
        )
    return head


def _uuid_refusal(state: ReplicationState, ours: str, theirs: str) -> PullResult:
    message = (
        f"Replication refused: the master's database UUID {theirs or '(none)'} differs from "
        f"this backup's {ours}; nothing is applied until they match (reset the backup's UUID "
        "so it fetches the master's when it joins)."
    )
    _error_note(state, message, event=True)
    return PullResult("refused", state.position, reason=message)


@dataclass
class _Clients:
    changes: Client
    snapshot: Client


def _pull_once(clients: _Clients, ours: str, state: ReplicationState) -> tuple[str, int, bool]:
    """One request (and its batch or snapshot); returns (outcome, applied, snapshot taken)."""
    answer = clients.changes.call(
        "GET", f"/api/peer/changes?after={state.position}&limit={BATCH_SIZE}"
    )
    page = _page_parse(answer)
    if page.database_uuid != ours:
        _uuid_refusal(state, ours, page.database_uuid)
        return "refused", 0, False
    reason = _resync_reason(state, page)
    if reason:
        snapshot = clients.snapshot.call("GET", "/api/peer/snapshot")
        theirs = str(snapshot.get("database_uuid", "")) if isinstance(snapshot, dict) else ""
        if theirs != ours:
            _uuid_refusal(state, ours, theirs)
            return "refused", 0, False
        if _snapshot_apply(snapshot, reason, (state.position, state.master_log_id)) is None:
            return "raced", 0, False
        return "snapshot", 0, True
    if not page.entries:
        now = timezone.now()
        ReplicationState.objects.filter(pk=1).update(
            master_head=page.head, master_head_at=now, last_pull_at=now, behind_since=None
        )
        return "up_to_date", 0, False
    applied = _batch_apply(state.position, page)
    if applied is None:
        return "raced", 0, False
    caught_up = int(page.entries[-1]["seq"]) >= page.head
    return ("up_to_date" if caught_up else "behind"), applied, False


def replication_pull(
    *, client: Client | None = None, max_batches: int = MAX_BATCHES, nudged: bool = False
) -> PullResult:
    """Bring this backup up to the master's head (or ``max_batches`` batches closer).

    Does nothing unless this node is a backup in phase ``normal`` (or
    ``nudged`` by the master, which nudges only a backup it accepted) with a
    database UUID. Never raises for an unreachable master or a refused batch:
    the result says what happened, and errors are kept in ReplicationState
    (an event is written once per distinct error that needs the administrator).
    """
    skip = _skip_reason(nudged=nudged)
    if skip:
        return PullResult("skipped", ReplicationState.load().position, reason=skip)
    ours = config_read()["redundancy.database_uuid"]
    if client is None:
        clients = _Clients(_pull_client(), PeerClient.from_config(timeout=SNAPSHOT_TIMEOUT))
    else:
        clients = _Clients(client, client)
    applied = snapshots = 0
    outcome = "behind"
    for _ in range(max_batches):
        state = ReplicationState.load()
        try:
            outcome, count, snapshot = _pull_once(clients, ours, state)
        except PeerError as exc:
            _error_note(state, f"master unreachable: {exc}", event=False)
            return PullResult("unreachable", state.position, applied, snapshots, str(exc))
        except (ApplyError, IntegrityError, DataError) as exc:
            return _apply_failed(state, exc, applied, snapshots)
        applied += count
        snapshots += snapshot
        if outcome == "refused":
            return PullResult("refused", state.position, applied, snapshots, state.last_error)
        if outcome == "up_to_date":
            break
    state = ReplicationState.load()
    if outcome == "up_to_date":
        _error_clear(state)
    if not (applied or snapshots) and outcome != "up_to_date":
        outcome = "behind"
    return PullResult(
        "applied" if applied or snapshots else outcome,
        state.position,
        applied,
        snapshots,
        f"at #{state.position} of the master's #{state.master_head}: applied {applied} "
        f"entries, {snapshots} snapshot(s)",
    )


def _apply_failed(
    state: ReplicationState, exc: Exception, applied: int, snapshots: int
) -> PullResult:
    """A batch that cannot be applied rolls back; a conflict (IntegrityError) means this
    backup's data diverged, so the next pull starts with a snapshot."""
    message = f"Replication stopped at #{state.position}: {exc}"
    if isinstance(exc, IntegrityError):
        ReplicationState.objects.filter(pk=1).update(master_log_id="")
        message += " (the next pull resyncs from a snapshot)"
    _error_note(state, message, event=True)
    return PullResult("error", state.position, applied, snapshots, message)


# --- Status ------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def replication_status() -> dict[str, Any]:
    """Replication figures of this node for the Status page and the heartbeat.

    As a backup: ``position`` (last applied entry), ``master_head`` (as last
    heard from the master), ``lag_entries`` and ``lag_seconds`` (0 when caught
    up, else the time since a pull first found this backup behind). As a
    master: ``head`` and the backup's acknowledged ``peer_position``.
    """
    state = ReplicationState.load()
    head = changelog_head()
    lag_entries = max(0, state.master_head - state.position)
    lag_seconds = 0.0
    if lag_entries and state.behind_since:
        lag_seconds = max(0.0, (timezone.now() - state.behind_since).total_seconds())
    return {
        "head": head.seq,
        "log_id": head.log_id,
        "position": state.position,
        "master_head": state.master_head,
        "lag_entries": lag_entries,
        "lag_seconds": round(lag_seconds, 3),
        "last_pull_at": _iso(state.last_pull_at),
        "last_applied_at": _iso(state.last_applied_at),
        "last_applied_created": _iso(state.last_applied_created),
        "applied_count": state.applied_count,
        "snapshot_count": state.snapshot_count,
        "last_error": state.last_error,
        "peer_position": state.peer_position,
        "peer_lag_entries": max(0, head.seq - state.peer_position),
        "peer_acked_at": _iso(state.peer_acked_at),
    }
