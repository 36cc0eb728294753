"""Replication, the master's side: the entries it serves the backup, and the durability
promise.

While the pair is in sync (the master's ``NodeState.phase`` is ``normal``) a
write through the services returns to the administrator only after the backup
acknowledged it: a commit hook of the change log (``core.changelog``) calls
the backup's ``POST /api/peer/nudge`` synchronously (timeout
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
from dataclasses import dataclass
from typing import Any, TypedDict

from django.utils import timezone

from core.changelog import EntryPayload, changelog_entries, changelog_head
from core.models import NodeState, Phase
from core.peer import PeerClient, PeerError
from core.selectors import config_read
from redundancy.follower import BATCH_SIZE, Client
from redundancy.models import ReplicationState

logger = logging.getLogger(__name__)

# How long an administrator's save waits for the backup's acknowledgement (s).
NUDGE_TIMEOUT = 2.0
QUIET_SECONDS = 60.0


class ChangesAnswer(TypedDict):
    database_uuid: str
    log_id: str
    head: int
    entries: list[EntryPayload]


def changes_page(*, after: int, limit: int = BATCH_SIZE) -> ChangesAnswer:
    """The master's answer to a backup at position ``after`` (which it has applied)."""
    head = changelog_head()
    entries = changelog_entries(after=after, limit=limit)
    ReplicationState.load()
    ReplicationState.objects.filter(pk=1).update(peer_position=after, peer_acked_at=timezone.now())
    return {
        "database_uuid": config_read()["redundancy.database_uuid"],
        "log_id": head.log_id,
        "head": head.seq,
        "entries": entries,
    }


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


def after_commit(seq: int, log_id: str) -> None:
    """Commit hook of the change log: one nudge covers every entry up to the head, so
    the many hooks of a bulk write cost one round trip. The mark of what was nudged
    names the log too: a snapshot restarts this node's log at 0 (a new ``log_id``),
    and the numbers of the old log must not vouch for the new one's."""
    mark = getattr(_nudged, "mark", None)
    if mark is not None and mark[0] == log_id and mark[1] >= seq:
        return
    try:
        head = changelog_head()
        _nudged.mark = (head.log_id, head.seq)
        replication_nudge(seq=seq)
    except Exception:  # a committed write must still answer the administrator
        logger.exception("nudge after change #%s failed", seq)
