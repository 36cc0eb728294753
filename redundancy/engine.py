"""The runner of the redundancy engine: heartbeat exchange, decisions, and their actions.

At every beat (``redundancy.heartbeat``) a node sends its status to the peer
and records the signed answer; the peer does the same the other way. Either
message is a valid heartbeat. The runner then asks ``statemachine.decide``
what to do, stores the decision and carries out its actions: events,
adopting the master's database UUID, and queueing the takeover or the
rebalance as Celery tasks.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from basestations.models import BaseStation, MediaResource
from basestations.selectors import devices_heartbeat, devices_moved_since, witness_report
from kws_admin.services import config_read, config_update
from licensing.selectors import licensed_features
from redundancy import statemachine as sm
from redundancy.models import NodeState
from redundancy.peer import PeerClient, PeerError, nonce_purge
from redundancy.replication import replication_status
from redundancy.services import event_record
from users.models import DectUser, PeerRegistration
from users.registration import (
    peer_cursor_parse,
    peer_registration_rows_parse,
    peer_registrations_record,
)
from users.selectors import (
    LETTER,
    handled_users,
    peer_registrations_cursor,
    registration_progress,
    registrations_changed_since,
)

logger = logging.getLogger(__name__)


class MalformedStatus(ValueError):
    """A peer status that does not have the expected shape."""


def own_claims(values: dict[str, Any] | None = None) -> sm.Claims:
    values = values or config_read()
    return sm.Claims(
        node=settings.NODE_NAME,
        mode=values["redundancy.mode"],
        firmware=settings.FIRMWARE_VERSION,
        database_uuid=values["redundancy.database_uuid"],
        features=licensed_features(),
        ari=values["system.ari"],
    )


def status_payload(*, values: dict[str, Any], peer_claims: sm.Claims | None) -> dict[str, Any]:
    """What this server tells its peer in a heartbeat (request or answer)."""
    state = NodeState.load()
    claims = own_claims(values)
    payload: dict[str, Any] = {
        "claims": claims.__dict__,
        "phase": state.phase,
        "users_handled": handled_users().count(),
        "users_registered": registration_progress()[0],
        "users_total": DectUser.objects.count(),
        "replication": replication_status(),
        "devices": devices_heartbeat(),
        # Registration states flow both ways: ours after what the peer says it has.
        "registrations": registrations_changed_since(
            (state.peer_status or {}).get("registrations_seen")
        ),
        "registrations_seen": peer_registrations_cursor(),
        "sent_at": time.time(),
    }
    if claims.mode == "master" and peer_claims is not None:
        payload["verdict"] = sm.join_verdict(claims, peer_claims).as_dict()
    return payload


@dataclass(frozen=True)
class PeerStatus:
    """A peer's heartbeat status, checked: its claims and the registration states it
    carried (stored apart from the status)."""

    claims: sm.Claims
    registrations: list[PeerRegistration]


def parse_status(payload: Any) -> PeerStatus:
    """Check the shape of a peer's status and return what it says; MalformedStatus
    otherwise."""
    if not isinstance(payload, dict) or not isinstance(payload.get("claims"), dict):
        raise MalformedStatus("a heartbeat needs a 'claims' object")
    claims = payload["claims"]
    for name in ("node", "mode", "firmware", "database_uuid"):
        if not isinstance(claims.get(name), str):
            raise MalformedStatus(f"claims.{name} must be a string")
    if not isinstance(claims.get("features", {}), dict):
        raise MalformedStatus("claims.features must be an object")
    verdict = payload.get("verdict")
    if verdict is not None and not isinstance(verdict, dict):
        raise MalformedStatus("verdict must be an object")
    try:
        peer_cursor_parse(payload.get("registrations_seen"))
        rows = peer_registration_rows_parse(payload.get("registrations", []))
    except ValueError as exc:
        raise MalformedStatus(str(exc)) from None
    return PeerStatus(claims=sm.Claims.from_dict(claims), registrations=rows)


def peer_status_record(payload: dict[str, Any], parsed: PeerStatus) -> None:
    """Remember a valid status of the peer (``parsed`` from ``parse_status``) and when it
    arrived, and the registration states it carried (in their own table)."""
    status = {key: value for key, value in payload.items() if key != "registrations"}
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        NodeState.objects.filter(pk=1).update(peer_seen_at=timezone.now(), peer_status=status)
        if parsed.registrations:
            peer_registrations_record(parsed.registrations)


def heartbeat_answer(payload: Any) -> tuple[int, dict[str, Any]]:
    """The peer API's heartbeat: record the peer's status, answer with ours."""
    values = config_read()
    if values["redundancy.mode"] == "single":
        return 409, {"error": f"{settings.NODE_NAME} is a single server, not paired"}
    try:
        parsed = parse_status(payload)
    except MalformedStatus as exc:
        return 400, {"error": f"malformed heartbeat: {exc}"}
    peer_status_record(payload, parsed)
    return 200, status_payload(values=values, peer_claims=parsed.claims)


def heartbeat_send(values: dict[str, Any]) -> None:
    """Send our status to the peer and record its answer (a heartbeat either way)."""
    state = NodeState.load()
    last = state.peer_status.get("claims") if state.peer_status else None
    peer_claims = sm.Claims.from_dict(last) if last else None
    client = PeerClient.from_config(timeout=max(0.5, settings.HEARTBEAT_INTERVAL), values=values)
    try:
        answer = client.call(
            "POST", "/api/peer/heartbeat", status_payload(values=values, peer_claims=peer_claims)
        )
        parsed = parse_status(answer)
    except (PeerError, MalformedStatus) as exc:
        logger.debug("heartbeat to %s failed: %s", values["redundancy.peer"], exc)
        return
    peer_status_record(answer, parsed)


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def observations(values: dict[str, Any], state: NodeState) -> sm.Observations:
    peer = state.peer_status or {}
    return sm.Observations(
        mode=values["redundancy.mode"],
        failover_time=values["redundancy.failover_time"],
        detection_window=settings.DETECTION_WINDOW,
        own=own_claims(values),
        peer=sm.Claims.from_dict(peer["claims"]) if peer.get("claims") else None,
        peer_seen_at=_epoch(state.peer_seen_at),
        verdict=sm.Verdict.from_dict(peer.get("verdict")),
        witness=witness(),
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


def engine_tick(*, now: float | None = None, exchange: bool = True) -> sm.Decision:
    """One beat: exchange heartbeats, decide, store the decision, carry out its actions."""
    values = config_read()
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
        state.engine = {"state": decision.state.as_dict(), "handles_users": decision.handles_users}
        state.save()
        for action in decision.actions:
            _carry_out(action, values)
    return decision


def _carry_out(action: sm.Action, values: dict[str, Any]) -> None:
    from redundancy import tasks  # the tasks module imports this one

    if isinstance(action, sm.RecordEvent):
        event_record(kind=action.kind, message=action.message, severity=action.severity)
    elif isinstance(action, sm.AdoptDatabaseUUID):
        config_update(
            changes={"redundancy.database_uuid": action.database_uuid},
            actor="engine",
            during_failover=True,
        )
        event_record(kind="join", message=f"Took the master's database UUID {action.database_uuid}")
    elif isinstance(action, sm.TakeOver):
        started = time.time()
        transaction.on_commit(lambda: tasks.users_take_over_task.delay(started_at=started))
    elif isinstance(action, sm.Rebalance):
        transaction.on_commit(lambda: tasks.users_rebalance_task.delay())


def engine_reset_on_start() -> None:
    """A node that (re)starts forgets its phase, so the pair re-forms (and rebalances)
    on the first heartbeat; whether the pair ever formed is kept."""
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = NodeState.objects.select_for_update().get(pk=1)
        old = sm.State.from_dict(state.engine.get("state"))
        state.engine = {"state": sm.State(joined_before=old.joined_before).as_dict()}
        state.peer_seen_at = None
        state.save()


def housekeeping() -> None:
    nonce_purge()


# --- Moving users ----------------------------------------------------------------


def _peer_name() -> str:
    peer = NodeState.load().peer_status or {}
    return (peer.get("claims") or {}).get("node") or config_read()["redundancy.peer"]


def assign_all_to_self() -> int:
    """Mark every user as handled by this server (replicated when this is the master);
    return how many users that is."""
    mode = config_read()["redundancy.mode"]
    with transaction.atomic():
        DectUser.objects.exclude(node=LETTER[mode]).update(node=LETTER[mode])
        if mode == "master":
            _assignment_record()
        return DectUser.objects.count()


def users_take_over(*, started_at: float) -> int:
    """Make this server handle every user of the lost peer; return how many moved."""
    mode = config_read()["redundancy.mode"]
    mine = LETTER[mode]
    with transaction.atomic():
        moved = DectUser.objects.exclude(node=mine).update(node=mine)
        if mode == "master":
            _assignment_record()
    took = time.time() - started_at
    event_record(
        kind="failover_finished",
        message=f"Failover finished: {moved} users of {_peer_name()} moved to "
        f"{settings.NODE_NAME} in {took:.2f} s",
    )
    devices_takeover_report(started_at=started_at)
    return moved


def devices_takeover_report(*, started_at: float, wait: float = 30.0) -> dict[str, int]:
    """Wait (bounded) until the devices the peer had attached have come here; record how
    many moved and how long it took."""
    # Every configured device should end up here (what the peer last reported may be stale).
    expected = BaseStation.objects.count() + MediaResource.objects.count()
    started = datetime.fromtimestamp(started_at, UTC)
    deadline = time.monotonic() + wait
    while True:
        moved = devices_moved_since(started)
        count = moved.get("rfp", 0) + moved.get("media", 0)
        if count >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if expected or count:
        last = moved.get("last_at")
        took = (last - started).total_seconds() if last else 0.0
        event_record(
            kind="failover_devices",
            message=f"{moved.get('rfp', 0)} base stations and {moved.get('media', 0)} media "
            f"resources moved to {settings.NODE_NAME} in {took:.2f} s"
            f"{'' if count >= expected else f' ({expected - count} of the peer did not come)'}",
        )
    return {"rfp": moved.get("rfp", 0), "media": moved.get("media", 0)}


def node_for_new_user() -> str:
    """The NODE of a user created now. While the pair is formed (a master in phase
    normal) at random, half each, so the split stays about 50/50 between rebalances;
    otherwise this server: a single server, or a master running without its backup."""
    values = config_read()
    if values["redundancy.mode"] == "master" and NodeState.load().phase == sm.NORMAL:
        return random.SystemRandom().choice(("M", "S"))
    return "M"


def users_rebalance() -> tuple[int, int]:
    """Master: assign each user to master or backup at random, half each."""
    with transaction.atomic():
        ids = list(DectUser.objects.values_list("id", flat=True))
        random.SystemRandom().shuffle(ids)
        half = len(ids) // 2
        to_master, to_backup = ids[:half], ids[half:]
        DectUser.objects.filter(id__in=to_master).update(node="M")
        DectUser.objects.filter(id__in=to_backup).update(node="S")
        _assignment_record(to_master=to_master, to_backup=to_backup)
        event_record(
            kind="rebalance",
            message=f"Rebalanced {len(ids)} users: {len(to_master)} to master "
            f"{settings.NODE_NAME}, "
            f"{len(to_backup)} to backup {_peer_name()}",
        )
    return len(to_master), len(to_backup)


def _assignment_record(
    *, to_master: list[int] | None = None, to_backup: list[int] | None = None
) -> None:
    """Replicate the NODE column of every user as one change-log entry."""
    from redundancy.replication import changelog_append

    if to_master is None or to_backup is None:
        rows = DectUser.objects.values_list("id", "node")
        to_master = [i for i, node in rows if node == "M"]
        to_backup = [i for i, node in rows if node == "S"]
    changelog_append(
        entity="user_assignment", op="set", key="all", data={"M": to_master, "S": to_backup}
    )
