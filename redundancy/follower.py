"""Replication, the backup's side: pull the master's change log and apply it.

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

What is replicated is the registry of ``core.changelog`` (each app registers
its entities); the master's side is ``redundancy.durability``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import DataError, IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.changelog import (
    ENTITIES,
    ApplyError,
    Entity,
    EntryPayload,
    changelog_head,
    changelog_retire,
    sequences_reset,
)
from core.models import Event, NodeState, Phase
from core.peer import PeerClient, PeerError
from core.selectors import config_read
from core.services import event_record
from redundancy.models import ReplicationState

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A pull catches up at most this many batches per call; the next tick continues.
MAX_BATCHES = 40
SNAPSHOT_TIMEOUT = 60.0


class Client(Protocol):
    def call(self, method: str, path: str, payload: Any = None) -> Any: ...


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
        sequences_reset(touched)
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
        sequences_reset(touched)
        local = changelog_retire()
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
