"""The change log: every replicated write, in order, and the registry of what is replicated.

The master is the only writer of replicated configuration. A service that
changes it calls ``changelog_append`` inside its own transaction; the entry
gets the next ``seq`` while the one-row ``ChangeLogHead`` is locked, so
transactions commit in ``seq`` order and the log has no holes (a rolled-back
write rolls its number back). ``core.locks.write_check`` runs right after the
head is locked, so a backup or a locked node refuses every replicated write in
one place, and a write that waited for the lock sees the node as it is now.

Each app registers the entities it replicates (``entity_register`` from its
``AppConfig.ready``): how an entry is applied on the backup and how the
whole table is copied and restored for a snapshot. The follower that pulls and
applies the log is ``redundancy.follower``; the nudge that makes a save wait
for the backup registers itself here as a commit hook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from core.locks import write_check
from core.models import ChangeLogEntry, ChangeLogHead
from core.selectors import config_read

# The master keeps this many entries; a backup further behind resyncs from a snapshot.
TRIM_KEEP = 50_000


class ApplyError(Exception):
    """An entry this node cannot apply (unknown entity or op, malformed data). Its message
    names what is wrong, never a stored value (which may be a password or a secret)."""


@dataclass(frozen=True)
class Entity:
    """How one kind of replicated data is applied and copied whole.

    ``apply(op, key, data)`` must be idempotent. ``snapshot()`` returns every
    row as JSON-able dicts and ``restore(rows)`` makes the local table equal to
    them; entities that only change other entities' rows have neither.
    ``sequence_models`` get their id sequence reset after rows with explicit
    ids were written, so a promoted backup can create rows.

    For backup files and their restore preview (``core.backup``): ``title`` names the
    rows to an administrator, ``row_key`` identifies a snapshot row (default: its
    ``id``), ``row_label`` names it in a list, and ``secret_fields`` are left out of a
    backup file without secrets (a restore keeps this server's values of them);
    ``restore_check(rows)`` returns why a restore of these rows is refused (a license's
    user count), or ''. ``backed_up``: False leaves the entity out of backup files and
    their restore (the audit trail, which a restore must not rewrite).
    """

    name: str
    ops: frozenset[str]
    apply: Callable[[str, str, Any], None]
    snapshot: Callable[[], list[dict[str, Any]]] | None = None
    restore: Callable[[list[dict[str, Any]]], None] | None = None
    sequence_models: tuple[type[models.Model], ...] = ()
    title: str = ""
    row_key: Callable[[dict[str, Any]], str] = lambda row: str(row["id"])
    row_label: Callable[[dict[str, Any]], str] = lambda row: str(row["id"])
    secret_fields: frozenset[str] = frozenset()
    restore_check: Callable[[list[dict[str, Any]]], str] = lambda rows: ""
    backed_up: bool = True


ENTITIES: dict[str, Entity] = {}


def entity_register(entity: Entity) -> Entity:
    """Add a replicated entity; snapshots restore in registration order (parents first)."""
    ENTITIES[entity.name] = entity
    return entity


# --- Payloads of the peer API ------------------------------------------------


class EntryPayload(TypedDict):
    seq: int
    created: str
    entity: str
    op: str
    key: str
    data: Any


class SnapshotAnswer(TypedDict):
    database_uuid: str
    log_id: str
    head: int
    entities: dict[str, list[dict[str, Any]]]


# --- The log -----------------------------------------------------------------

# Called with (seq, log_id) once the transaction that appended entry ``seq`` commits.
CommitHook = Callable[[int, str], None]
_commit_hooks: list[CommitHook] = []


def changelog_commit_hook_add(hook: CommitHook) -> None:
    """Run ``hook(seq, log_id)`` after each commit that appended an entry (robust: an
    exception in it is logged by Django, never raised to the writer)."""
    if hook not in _commit_hooks:
        _commit_hooks.append(hook)


def changelog_head_lock() -> ChangeLogHead:
    """The head row, locked until the caller's transaction ends."""
    head, _ = ChangeLogHead.objects.select_for_update().get_or_create(pk=1)
    return head


def changelog_head() -> ChangeLogHead:
    head, _ = ChangeLogHead.objects.get_or_create(pk=1)
    return head


def changelog_append(*, entity: str, op: str, key: str, data: Any) -> int:
    """Write one change-log entry in the caller's ``transaction.atomic()``; return its seq.

    Raises Locked (via ``write_check``) on a backup or a locked node, ValueError
    for an unknown entity or op, TransactionManagementError outside a
    transaction. The commit hooks run once the caller's transaction commits.
    """
    spec = ENTITIES.get(entity)
    if spec is None or op not in spec.ops:
        raise ValueError(f"no replicated entity {entity!r} with op {op!r}")
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("changelog_append must run inside transaction.atomic()")
    # Lock the head first, then check: a write that waited for a switchover to finish
    # must see that this server has become the backup since.
    head = changelog_head_lock()
    write_check()
    head.seq += 1
    head.save(update_fields=["seq"])
    ChangeLogEntry.objects.create(
        seq=head.seq, created=timezone.now(), entity=entity, op=op, key=key, data=data
    )
    seq, log_id = head.seq, head.log_id
    for hook in _commit_hooks:
        transaction.on_commit(lambda hook=hook: hook(seq, log_id), robust=True)
    return seq


def changelog_retire() -> ChangeLogHead:
    """Start a new log on this node (a new ``log_id`` at 0, entries deleted), in the
    caller's transaction: its data was replaced by another node's, or it changed data
    of its own as a backup, so whoever follows it must start from a snapshot."""
    head = changelog_head_lock()
    head.log_id, head.seq = str(uuid.uuid4()), 0
    head.save()
    ChangeLogEntry.objects.all().delete()
    return head


def changelog_retired_notify() -> None:
    """After ``changelog_retire`` in the caller's transaction: run the commit hooks for the
    new log's head once it commits, so a backup in sync resyncs at once (its snapshot is
    what the nudge waits for)."""
    head = changelog_head()
    seq, log_id = head.seq, head.log_id
    for hook in _commit_hooks:
        transaction.on_commit(lambda hook=hook: hook(seq, log_id), robust=True)


def sequences_reset(model_classes: Iterable[type[models.Model]]) -> None:
    """Move the id sequences of ``model_classes`` past the rows written with explicit ids."""
    statements = connection.ops.sequence_reset_sql(no_style(), list(model_classes))
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


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


def changelog_entries(*, after: int, limit: int) -> list[EntryPayload]:
    """The entries after ``after``, oldest first, at most ``limit``."""
    entries = ChangeLogEntry.objects.filter(seq__gt=after).order_by("seq")[:limit]
    return [_entry_payload(entry) for entry in entries]


def snapshot_build() -> SnapshotAnswer:
    """Every replicated row and the head they correspond to, read in one snapshot
    (``_one_moment``) without blocking writers."""
    changelog_head()  # exists before the snapshot, which would not see it created meanwhile
    with _one_moment():
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


@contextmanager
def _one_moment() -> Iterator[None]:
    """Reads inside see the database as of one moment, and writers do not wait for them.

    PostgreSQL: a REPEATABLE READ transaction. SQLite (the embedded default): its
    transactions are IMMEDIATE (they take the write lock up front, see settings), so a
    DEFERRED one is begun by hand: in WAL mode it reads one snapshot beside the writer.
    Inside the caller's own transaction that transaction decides."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    elif connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
            try:
                yield
            finally:
                cursor.execute("COMMIT")
    else:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield
