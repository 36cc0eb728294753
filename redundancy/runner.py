"""The runner of the redundancy engine: one beat collects the observations, asks
``statemachine.decide`` what to do, stores the decision and carries out its actions
(events, adopting the master's database UUID, queueing the takeover or the rebalance
as Celery tasks)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from basestations.selectors import witness_report
from core.assignment import SLOTS, Assignment
from core.health import health_parts, health_watch, unserved_reason
from core.models import NodeState
from core.selectors import config_read
from core.services import config_update, event_record
from redundancy import statemachine as sm
from redundancy.heartbeat import heartbeat_send, own_claims
from redundancy.scenarios import role_set

logger = logging.getLogger(__name__)

# The Celery task (redundancy.tasks) the TakeOver action queues, by name: the tasks call
# into the services, so the runner does not import them.
TAKE_OVER_TASK = "redundancy.users_take_over"
# The one-off tick at a decision's ``recheck_at`` (redundancy.tasks.engine_recheck).
RECHECK_TASK = "redundancy.engine_recheck"


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def failover_time_applied(values: dict[str, Any], state: NodeState) -> tuple[int, str]:
    """The failover time that applies here and whose it is: the master's, as the note
    sets it on the master only; on a backup the value its master's heartbeat gave (its
    own until one arrived)."""
    own = values["redundancy.failover_time"]
    if values["redundancy.mode"] != "slave":
        return own, "this server (the master)" if values["redundancy.mode"] == "master" else ""
    peer = state.peer_status or {}
    theirs = peer.get("failover_time")
    master = (peer.get("claims") or {}).get("mode") == "master"
    if master and isinstance(theirs, int) and not isinstance(theirs, bool) and 0 <= theirs <= 3600:
        return theirs, f"the master {(peer.get('claims') or {}).get('node') or 'the master'}"
    return own, "this server (no heartbeat of the master yet)"


def observations(values: dict[str, Any], state: NodeState) -> sm.Observations:
    peer = state.peer_status or {}
    peer_slot = peer.get("slot")
    window = settings.DETECTION_WINDOW
    own = {p.role: p for p in health_parts(window=window)}
    return sm.Observations(
        mode=values["redundancy.mode"],
        failover_time=failover_time_applied(values, state)[0],
        detection_window=settings.DETECTION_WINDOW,
        own=own_claims(values),
        peer=sm.Claims.from_dict(peer["claims"]) if peer.get("claims") else None,
        peer_seen_at=_epoch(state.peer_seen_at),
        verdict=sm.Verdict.from_dict(peer.get("verdict")),
        witness=witness(),
        slot=state.slot,
        assignment=Assignment.from_dict(state.assignment),
        registering=state.registering,
        peer_slot=peer_slot if peer_slot in SLOTS else "",
        peer_assignment=Assignment.from_dict(peer.get("assignment")),
        peer_registering=str(peer.get("registering") or ""),
        own_healthy=own["sip"].alive,
        peer_unserved=unserved_reason(peer.get("health") or {}, window=window),
        peer_phase=str(peer.get("phase") or ""),
    )


def witness() -> sm.Witness | None:
    """The base stations' view of the peer; None when none are configured to ask."""
    report = witness_report()
    if not report["known"]:
        return None
    return sm.Witness(
        known=report["known"],
        confirmed=report["confirmed"],
        summary=f"{report['peer_unreachable']} of {report['known']} report it unreachable, "
        f"{report['needed']} needed",
    )


def engine_tick(
    *, now: float | None = None, exchange: bool = True, recheck: bool = False
) -> sm.Decision:
    """One beat: exchange heartbeats, decide, store the decision, carry out its actions.

    ``recheck``: the one-off tick at an earlier decision's ``recheck_at``. At the peer's
    detection deadline it sends a heartbeat first, so a peer that is slow to send its own
    (a busy node) but answers is not declared lost, while a dead one (refused at once)
    is declared lost then; once the peer is lost (waiting for the failover time or the
    base stations' witness) it only decides again."""
    values = config_read()
    if recheck and exchange:
        phase = NodeState.objects.filter(pk=1).values_list("phase", flat=True).first()
        exchange = phase not in (sm.PEER_LOST, sm.FAILOVER)
    if exchange and values["redundancy.mode"] != "single" and values["redundancy.peer"]:
        heartbeat_send(values)
    now = time.time() if now is None else now
    with transaction.atomic():
        NodeState.objects.get_or_create(pk=1)
        state = NodeState.objects.select_for_update().get(pk=1)
        # Read the settings again under the lock: a promotion or switchover may have
        # changed this server's role while the heartbeat was on its way.
        values = config_read()
        previous = sm.State.from_dict(state.engine.get("state"))
        decision = sm.decide(previous, observations(values, state), now)
        if decision.reason != state.reason:
            logger.info("decided: %s", decision.reason)
        state.phase = decision.state.phase
        state.locked = decision.locked
        state.lock_reason = decision.lock_reason
        state.reason = decision.reason[:300]
        state.last_tick = datetime.fromtimestamp(now, UTC)
        scheduled = None if recheck else state.engine.get("recheck_at")
        scheduled = _recheck_schedule(decision.recheck_at, scheduled, now)
        state.engine = {"state": decision.state.as_dict(), "handles_users": decision.handles_users}
        if scheduled is not None:
            state.engine["recheck_at"] = scheduled
        if decision.assignment != Assignment.from_dict(state.assignment):
            logger.info(
                "assignment: %s", decision.assignment.describe() if decision.assignment else "none"
            )
        state.slot = decision.slot
        state.assignment = decision.assignment.as_dict() if decision.assignment else {}
        state.registering = decision.registering
        state.save()
        for action in decision.actions:
            _carry_out(action, decision.state)
        health_watch(window=settings.DETECTION_WINDOW, node=settings.NODE_NAME)
    return decision


def recheck_plan(
    at: float | None, scheduled: Any, now: float, *, beat: float
) -> tuple[float | None, float | None]:
    """Whether to queue a one-off tick for a decision's ``recheck_at`` (``at``), given the
    one queued already (``scheduled``, as stored; None: none): (when to queue one, or
    None; the one queued after this). Only when it comes before the next beat, and only
    one for a moment: beats and rechecks would otherwise each start a chain of them."""
    pending = scheduled if isinstance(scheduled, int | float) and scheduled > now else None
    if at is None or at >= now + beat or (pending is not None and pending <= at):
        return None, pending
    return at, at


def _recheck_schedule(at: float | None, scheduled: Any, now: float) -> float | None:
    """Queue the one-off tick ``recheck_plan`` asks for; returns the one queued."""
    queue_at, pending = recheck_plan(at, scheduled, now, beat=settings.HEARTBEAT_INTERVAL)
    if queue_at is not None:
        delay = max(0.0, queue_at - now)
        options = {"countdown": delay, "expires": delay + settings.HEARTBEAT_INTERVAL}
        transaction.on_commit(lambda: current_app.send_task(RECHECK_TASK, **options))
    return pending


def _carry_out(action: sm.Action, state: sm.State) -> None:
    if isinstance(action, sm.RecordEvent):
        event_record(kind=action.kind, message=action.message, severity=action.severity)
    elif isinstance(action, sm.AdoptDatabaseUUID):
        config_update(
            changes={"redundancy.database_uuid": action.database_uuid},
            actor="engine",
            skip_write_check=True,
        )
        event_record(kind="join", message=f"Took the master's database UUID {action.database_uuid}")
    elif isinstance(action, sm.StepDown):
        role_set(mode="slave", values=config_read(), actor="engine")
    elif isinstance(action, sm.TakeOver):
        # When the takeover began, and when the peer was found lost (the statistics).
        kwargs = {"started_at": time.time(), "lost_at": state.lost_at}
        transaction.on_commit(lambda: current_app.send_task(TAKE_OVER_TASK, kwargs=kwargs))


def engine_reset_on_start() -> None:
    """A node that (re)starts forgets its phase, so the pair re-forms (and rebalances)
    on the first heartbeat; whether the pair ever formed is kept. A switchover mark
    left by a process that died half way is dropped."""
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = NodeState.objects.select_for_update().get(pk=1)
        old = sm.State.from_dict(state.engine.get("state"))
        fresh = sm.State(joined_before=old.joined_before, started_at=time.time())
        state.engine = {"state": fresh.as_dict()}
        # Nothing is registered until the first beat has decided what this server owns.
        state.registering = ""
        state.peer_seen_at = None
        state.switchover_since = None
        state.save()
