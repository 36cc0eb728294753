"""The application note's administration scenarios as services.

- Permanent failure of the master: **promote** the backup to master.
- Re-instating the original master: it first joins as a backup and receives
  everything; then the **switchover** swaps the roles. The acting master stops
  writing: under the change-log lock (so writes in progress finish first) it
  marks itself as handing over, which the lock rule refuses every write for,
  and reads its head position. It hands the backup that position, the backup
  pulls until it has applied exactly that position and becomes master, and
  only then does the acting master become the backup. A change acknowledged to
  an administrator is therefore on both servers before the roles swap; a write
  meanwhile is refused with HTTP 423 and never half-applied. No database lock
  is held while the servers talk: on the embedded SQLite default that would
  lock the master's whole database, and the backup's pulls need it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from basestations.selectors import witness_report
from core.assignment import BOTH, Assignment, newest
from core.audit import audit_origin, audit_record
from core.changelog import changelog_head_lock
from core.models import NodeState
from core.peer import PeerClient, PeerError
from core.rules import FAILOVER, NORMAL, PEER_LOST, Scope, write_rule
from core.selectors import config_read, peer_claims
from core.services import config_update, event_record
from licensing.services import ROLE_LICENSE_CHECK, system_ari_adopt
from redundancy import statemachine as sm
from redundancy.follower import replication_pull
from redundancy.heartbeat import MalformedStatus, parse_status, status_payload
from redundancy.models import ReplicationState
from users.models import DectUser

logger = logging.getLogger(__name__)

# How long the backup may take to catch up with the head during a switchover.
SWITCHOVER_SYNC_TIMEOUT = 20.0
# How long the master asks for the backup's node type when the switchover's answer was lost.
SWITCHOVER_CONFIRM_TIMEOUT = 10.0


class ScenarioError(Exception):
    """An administration scenario that cannot run now; the message says why."""


def role_set(*, mode: str, values: dict[str, Any], actor: str) -> None:
    """Change this server's node type as part of a scenario: the database UUID is kept
    (the pair stays one database) and the licenses the server has are kept too."""
    config_update(
        changes={
            "redundancy.mode": mode,
            "redundancy.database_uuid": values["redundancy.database_uuid"],
        },
        actor=actor,
        skip_write_check=True,
        skip_checks={ROLE_LICENSE_CHECK},
    )


def _engine_restart(*, mode: str, phase: str, took_over_at: float | None = None) -> None:
    """Give the engine a fresh state for the new role; the next beat decides from there.
    The switchover mark, if any, goes: the roles have swapped."""
    state = NodeState.objects.select_for_update().get(pk=1)
    state.engine = {
        "state": sm.State(phase=phase, took_over_at=took_over_at).as_dict(),
        "handles_users": True,
    }
    rule = write_rule(Scope.SHARED, mode=mode, phase=phase)
    state.phase = phase
    state.locked, state.lock_reason = not rule.allowed, rule.reason
    state.switchover_since = None
    state.save()


def _assignment_take_all() -> None:
    """This server (promoted) serves every user: an assignment newer than any it knows."""
    state = NodeState.objects.select_for_update().get(pk=1)
    peer = state.peer_status or {}
    known = newest(
        Assignment.from_dict(state.assignment), Assignment.from_dict(peer.get("assignment"))
    )
    slot = state.slot or "A"
    state.slot = slot
    state.assignment = Assignment(known.epoch + 1, True, slot).as_dict()
    state.registering = BOTH
    state.save()


def _master_gone(*, master_off: bool) -> str:
    """Why the master counts as gone (for the event), or ScenarioError saying why not:
    it still answers heartbeats, or base stations still reach it; without base stations
    to ask, only the administrator's word that it is switched off counts."""
    state = NodeState.load()
    window = settings.DETECTION_WINDOW
    if state.peer_seen_at is not None:
        age = (timezone.now() - state.peer_seen_at).total_seconds()
        if age <= window:
            raise ScenarioError(
                f"the master answered {age:.1f} s ago: it is not lost. Promote only a backup "
                "whose master is permanently gone (two masters would serve the same users)"
            )
    report = witness_report()
    if report["peer_reachable"]:
        raise ScenarioError(
            f"{report['peer_reachable']} of {report['known']} base stations still reach the "
            "master: it is running. Switch it off before promoting this backup"
        )
    if report["known"]:
        return f"{report['peer_unreachable']} of {report['known']} base stations report it gone"
    if not master_off:
        raise ScenarioError(
            "no base station can confirm that the master is gone: make sure it is switched "
            "off, then confirm that it is"
        )
    return "the administrator confirmed it is switched off"


def backup_promote(*, actor: str, master_off: bool = False) -> int:
    """Make this backup the master (the master is permanently lost).

    Refused (ScenarioError) while the master answers or base stations still reach it;
    without base stations ``master_off`` (the administrator switched it off) is needed.
    Keeps the database UUID and every replicated change; this server then handles every
    user. Returns how many users it handles.
    """
    values = config_read()
    if values["redundancy.mode"] != "slave":
        raise ScenarioError("only a backup can be promoted: this server is not a backup")
    gone = _master_gone(master_off=master_off)
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        role_set(mode="master", values=values, actor=actor)
        # The handsets stay subscribed to the system ARI (replicated from the master);
        # where none was recorded yet, it is the master's, never this server's own.
        system_ari_adopt(actor=actor, ari=str(peer_claims().get("ari") or ""))
        _engine_restart(mode="master", phase=FAILOVER, took_over_at=time.time())
        _assignment_take_all()
        handled = DectUser.objects.count()
        event_record(
            kind="promotion",
            message=f"{settings.NODE_NAME} promoted from backup to master by {actor} (the "
            f"master is gone: {gone}); it handles all {handled} users. Add the old master "
            "back as a backup (node type Backup, database UUID reset); should it return as "
            "master, it steps down.",
            actor=actor,
            severity="warning",
        )
        # Recorded here, a master from now on: replicated to the old master when it
        # comes back as the backup.
        audit_record(
            kind="scenario",
            object_id="promote",
            object_repr="promotion",
            action="promote",
            summary=f"{settings.NODE_NAME} promoted from backup to master (the master is "
            f"gone: {gone}).",
            before={"redundancy.mode": "slave"},
            after={"redundancy.mode": "master"},
            actor=actor,
        )
    return handled


def _peer_mode(client: Any, *, timeout: float) -> str | None:
    """The node type the peer reports in a signed heartbeat, asked until ``timeout``;
    None if it does not answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = client.call(
                "POST", "/api/peer/heartbeat",
                status_payload(values=config_read(), peer_claims=None),
            )  # fmt: skip
            return parse_status(answer).claims.mode
        except (PeerError, MalformedStatus):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)


def _handover_begin() -> int:
    """Stop writing on this master: once the writes in progress have committed (they
    hold the change-log lock), mark the node as handing over, so the lock rule refuses
    every write; return the head position every acknowledged change is at or before."""
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        head = changelog_head_lock().seq
        NodeState.objects.filter(pk=1).update(switchover_since=timezone.now())
    return head


def _handover_abort() -> None:
    NodeState.objects.filter(pk=1).update(switchover_since=None)


def switchover_start(
    *, actor: str, client: Any = None, confirm_client: Any = None
) -> dict[str, Any]:
    """Swap roles with the joined, in-sync backup (re-instating the original master).

    If the backup's answer is lost (it may have become master before it was), the
    backup is asked for its node type: master, and this server completes the swap;
    backup, and nothing changed; no answer, and this server stays master and says the
    outcome is in doubt (two masters reject each other; the administrator decides)."""
    values = config_read()
    state = NodeState.load()
    if values["redundancy.mode"] != "master":
        raise ScenarioError("only the master can hand its role to the backup")
    if state.phase != NORMAL:
        raise ScenarioError(
            "the backup must be joined and the pair in phase normal before the roles can swap"
        )
    backup = (state.peer_status.get("claims") or {}).get("node", values["redundancy.peer"])
    client = client or PeerClient.from_config(timeout=SWITCHOVER_SYNC_TIMEOUT + 5)
    lost = ""
    head = _handover_begin()
    try:
        try:
            # The new master records the switchover: who asked and from where.
            who = {"head": head, "actor": actor, "address": audit_origin(actor=actor)[1]}
            answer = client.call("POST", "/api/peer/switchover", who)
        except PeerError as exc:
            mode = _peer_mode(
                confirm_client or PeerClient.from_config(timeout=2.0),
                timeout=SWITCHOVER_CONFIRM_TIMEOUT,
            )
            if mode is None:
                raise ScenarioError(
                    f"the switchover's outcome is in doubt: {exc}, and {backup} does not "
                    f"answer. This server stays the master; check {backup}'s node type "
                    "before changing anything"
                ) from None
            if mode != "master":
                raise ScenarioError(
                    f"the backup did not take over the master role: {exc}"
                ) from None
            answer, lost = {}, f" (its answer was lost: {exc}; it reports master)"
        with transaction.atomic():
            NodeState.objects.select_for_update().get(pk=1)
            role_set(mode="slave", values=values, actor=actor)
            _engine_restart(mode="slave", phase=PEER_LOST)
            event_record(
                kind="switchover",
                message=f"Switchover: {backup} is now the master (it had applied position "
                f"{head}){lost}; {settings.NODE_NAME} is now the backup",
                actor=actor,
            )
    except BaseException:
        _handover_abort()
        raise
    return {"head": head, "new_master": backup, **(answer or {})}


def switchover_accept(payload: Any, *, client: Any = None) -> tuple[int, dict[str, Any]]:
    """Backup side of the switchover: catch up to the master's head, then become master.
    ``client`` reaches the master (its peer API) for the pulls."""
    if not isinstance(payload, dict) or not isinstance(payload.get("head"), int):
        return 400, {"error": "a switchover needs the master's head position (an integer)"}
    head = payload["head"]
    actor = str(payload.get("actor", "peer"))[:150]
    values = config_read()
    if values["redundancy.mode"] != "slave":
        return 409, {"error": f"{settings.NODE_NAME} is not a backup"}
    deadline = time.monotonic() + SWITCHOVER_SYNC_TIMEOUT
    position = ReplicationState.load().position
    while position < head:
        if time.monotonic() > deadline:
            return 409, {"error": f"not in sync: applied {position} of {head}"}
        before, position = position, replication_pull(client=client).position
        if position <= before:
            time.sleep(0.2)  # the master did not answer or had nothing new: do not spin
    if position != head:
        return 409, {"error": f"position {position} is past the master's head {head}"}
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        # The master's last heartbeat still says master: its own request says it hands
        # the role over, so this server does not take it for a master that came back.
        status = NodeState.objects.select_for_update().get(pk=1).peer_status or {}
        if isinstance(status.get("claims"), dict):
            status["claims"]["handing_over"] = True
            status["handover_at"] = time.time()  # kept on its late messages (heartbeat)
            NodeState.objects.filter(pk=1).update(peer_status=status)
        role_set(mode="master", values=values, actor=actor)
        _engine_restart(mode="master", phase=PEER_LOST)
        event_record(
            kind="switchover",
            message=f"Switchover: {settings.NODE_NAME} is now the master, with every change "
            f"up to position {head}",
            actor=actor,
        )
        audit_record(
            kind="scenario",
            object_id="switchover",
            object_repr="switchover",
            action="switchover",
            summary=f"Switchover: {settings.NODE_NAME} is now the master, its peer the backup.",
            before={"redundancy.mode": "slave"},
            after={"redundancy.mode": "master"},
            actor=actor,
            account=actor,
            address=str(payload.get("address", ""))[:200],
        )
    return 200, {"position": position, "node": settings.NODE_NAME}
