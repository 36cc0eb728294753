"""The heartbeat: what a node tells its peer, and what it makes of the peer's word.

At every beat (``redundancy.heartbeat``, run by ``redundancy.runner``) a node
sends its status to the peer and records the signed answer; the peer does the
same the other way. Either message is a valid heartbeat. A status carries the
node's claims (mode, firmware, licensed features, database UUID, ARI), its
phase, its counters, replication figures, the devices attached to it and the
registration states of its users; the master adds its verdict on the backup.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from basestations.selectors import devices_heartbeat
from core import config
from core.assignment import BOTH, SLOTS, Assignment
from core.health import engine_fresh, health_report, health_report_parse
from core.locks import switching
from core.models import NodeState
from core.peer import PeerClient, PeerError
from core.selectors import config_read
from core.services import event_record
from licensing.selectors import licensed_features
from redundancy import statemachine as sm
from redundancy.selectors import replication_status
from redundancy.statistics import heartbeat_statistics, heartbeat_statistics_parse
from users.models import DectUser, PbxLink, PeerRegistration
from users.registration import (
    peer_cursor_parse,
    peer_registration_rows_parse,
    peer_registrations_record,
)
from users.selectors import (
    handled_users,
    peer_registrations_cursor,
    registration_progress,
    registrations_changed_since,
    sip_rate_text,
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
        handing_over=values["redundancy.mode"] == "master" and switching(NodeState.load()),
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
        "sip_rate": sip_rate_text(PbxLink.load()),
        "replication": replication_status(),
        "devices": devices_heartbeat(),
        # Registration states flow both ways: ours after what the peer says it has.
        "registrations": registrations_changed_since(
            (state.peer_status or {}).get("registrations_seen")
        ),
        "registrations_seen": peer_registrations_cursor(),
        # Who handles which user (core.assignment): our slot, the newest assignment we
        # know, and the homes whose users we register now.
        # Our id in signed messages: the peer addresses its requests to it.
        "node_id": state.node_id,
        # The master's failover time applies to both servers (the note sets it there).
        "failover_time": values["redundancy.failover_time"],
        "slot": state.slot,
        "assignment": state.assignment or None,
        "registering": state.registering,
        # Each process's liveness: a node that cannot serve its users counts as lost.
        "health": health_report(window=settings.DETECTION_WINDOW),
        # The Statistics page's figures of this server: its counters and last failovers.
        **heartbeat_statistics(),
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
    node_id = payload.get("node_id", "")
    if not isinstance(node_id, str) or len(node_id) > 64:
        raise MalformedStatus("node_id must be a string of at most 64 characters")
    if payload.get("slot", "") not in ("", *SLOTS):
        raise MalformedStatus("slot must be A, B or empty")
    if payload.get("registering", "") not in ("", *SLOTS, BOTH):
        raise MalformedStatus("registering must be A, B, AB or empty")
    assignment = payload.get("assignment")
    if assignment is not None and Assignment.from_dict(assignment) is None:
        raise MalformedStatus("assignment must be {epoch, by_master, serving}")
    try:
        health_report_parse(payload.get("health"))
        heartbeat_statistics_parse(payload)
        peer_cursor_parse(payload.get("registrations_seen"))
        rows = peer_registration_rows_parse(payload.get("registrations", []))
    except ValueError as exc:
        raise MalformedStatus(str(exc)) from None
    return PeerStatus(claims=sm.Claims.from_dict(claims), registrations=rows)


def peer_status_record(payload: dict[str, Any], parsed: PeerStatus, *, answered: bool) -> None:
    """Remember a valid status of the peer (``parsed`` from ``parse_status``) and when it
    arrived, and the registration states it carried (in their own table).

    ``answered``: it is the peer's answer to our own heartbeat. Only such an answer
    says the peer is alive (``peer_seen_at``): it proves the peer's web server and engine
    work and the link carries our requests (a peer whose web server died can still send
    us its heartbeats, and devices cannot reach it)."""
    status = {key: value for key, value in payload.items() if key != "registrations"}
    status["received_at"] = time.time()
    NodeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        previous = NodeState.objects.select_for_update().get(pk=1).peer_status or {}
        before = previous.get("claims")
        _stepped_down_noted(before or {}, parsed.claims)
        _handover_kept(previous, status, parsed.claims)
        fields: dict[str, Any] = {"peer_status": status}
        if answered:
            fields["peer_seen_at"] = timezone.now()
        NodeState.objects.filter(pk=1).update(**fields)
        if parsed.registrations:
            peer_registrations_record(parsed.registrations)


# How long after this server accepted a switchover the old master's messages that still
# say master (composed before it marked the handover, delivered after) count as handing
# over: a few heartbeats. After that, a master that stays master is two masters again.
HANDOVER_GRACE_BEATS = 4


def _handover_kept(previous: dict[str, Any], status: dict[str, Any], now: sm.Claims) -> None:
    """Keep the handover mark ``switchover_accept`` put on the old master's claims while
    its messages still say master, for ``HANDOVER_GRACE_BEATS`` heartbeats: a heartbeat it
    sent just before it marked the handover, arriving just after this server became
    master, must not make this server step down (both would end as backups)."""
    marked = previous.get("handover_at")
    if not isinstance(marked, (int, float)) or now.mode != "master":
        return
    if time.time() - marked > HANDOVER_GRACE_BEATS * settings.HEARTBEAT_INTERVAL:
        return
    if isinstance(status.get("claims"), dict):
        status["claims"] = {**status["claims"], "handing_over": True}
        status["handover_at"] = marked


def _stepped_down_noted(before: dict[str, Any], now: sm.Claims) -> None:
    """The peer said it was master and says backup now: an old master that came back
    stepped down (statemachine.StepDown); this master's event log says so too."""
    if before.get("mode") == "master" and now.mode == "slave":
        if config_read()["redundancy.mode"] == "master":
            event_record(
                kind="two_masters",
                message=f"{now.node}, a master that came back, stepped down to be the backup "
                f"of {settings.NODE_NAME}",
                severity="warning",
            )


def heartbeat_answer(payload: Any) -> tuple[int, dict[str, Any]]:
    """The peer API's heartbeat: record the peer's status, answer with ours, while this
    node's engine is deciding (503 otherwise: a node whose engine stopped must not look
    healthy to its peer, which then takes over)."""
    values = config_read()
    if values["redundancy.mode"] == "single":
        return 409, {"error": f"{settings.NODE_NAME} is a single server, not paired"}
    state = NodeState.load()
    if not engine_fresh(state):
        age = "never" if state.last_tick is None else f"{_age(state.last_tick):.1f} s ago"
        return 503, {"error": f"the engine of {settings.NODE_NAME} is not running (last "
                     f"decision: {age})"}  # fmt: skip
    try:
        parsed = parse_status(payload)
    except MalformedStatus as exc:
        return 400, {"error": f"malformed heartbeat: {exc}"}
    peer_status_record(payload, parsed, answered=False)
    return 200, status_payload(values=values, peer_claims=parsed.claims)


@dataclass(frozen=True)
class Probe:
    """What a signed probe of a peer address found: ``reached`` (it answered at all),
    ``ok`` (a signed answer: same pairing secret) and a sentence for the administrator."""

    reached: bool
    ok: bool
    message: str


def peer_probe(*, peer: str, secret: str, timeout: float = 3.0) -> Probe:
    """Try ``peer`` with ``secret`` before it is saved: a signed probe that changes
    nothing there."""
    try:
        client = PeerClient(peer=peer, secret=secret, node=settings.NODE_NAME, timeout=timeout,
                            sender=NodeState.load().node_id)  # fmt: skip
        answer = client.call("POST", "/api/peer/probe", {})
    except ValueError as exc:
        return Probe(False, False, f"{peer} is not a valid address: {exc}")
    except PeerError as exc:
        text = str(exc)
        if "unreachable" in text:
            return Probe(False, False, f"{peer} does not answer ({text})")
        return Probe(True, False, f"{peer} answered but refused: {text}")
    if not isinstance(answer, dict):
        return Probe(True, False, f"{peer} answered something that is not a KWS peer")
    mode = config.MODE_LABELS.get(str(answer.get("mode")), str(answer.get("mode")))
    firmware = answer.get("firmware", "?")
    node = answer.get("node", "?")
    return Probe(
        True, True, f"reached {node} at {peer} ({mode}, firmware {firmware}): the secret matches"
    )


def probe_answer() -> tuple[int, dict[str, Any]]:
    """The peer API's probe: who this server is; nothing is recorded."""
    values = config_read()
    return 200, {"node": settings.NODE_NAME, "mode": values["redundancy.mode"],
                 "firmware": settings.FIRMWARE_VERSION}  # fmt: skip


def _age(moment: datetime) -> float:
    return (timezone.now() - moment).total_seconds()


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
    peer_status_record(answer, parsed, answered=True)
