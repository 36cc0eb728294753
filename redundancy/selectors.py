"""Reads of the redundancy engine: the Status page, and replication figures for it and
the heartbeat."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from basestations.selectors import devices_per_node
from core.changelog import changelog_head
from core.config import MODE_LABELS
from core.health import LABELS, PARTS, health_parts, unserved_reason
from core.models import NodeState, Phase
from core.selectors import config_read
from redundancy.models import ReplicationState
from users.selectors import SipSummary, peer_registering, sip_summary


@dataclass(frozen=True)
class NodeCard:
    """One server as the Status page shows it."""

    name: str
    mode: str
    role: str
    phase: str
    heartbeat_age: float | None  # seconds since we last heard it (None: this server / never)
    users_handled: int | None
    users_registered: int | None
    firmware: str
    database_uuid: str
    replication: dict[str, Any]
    is_self: bool
    devices: dict[str, int] | None = None
    # Each process of the server and the age of its stamp (core.health).
    processes: list[ProcessRow] = field(default_factory=list)
    # The peer is lost: what the card shows is what was last heard, greyed.
    stale: bool = False
    # Why the peer cannot serve its users, as its last heartbeat said ('' if it can).
    unserved: str = ""
    # 're-registering with <registrar>: N of M registered' until each user has an answer.
    sip_progress: str = ""
    # The REGISTER rate in use and why it last changed (users.selectors.sip_rate_text).
    sip_rate: str = ""
    sip_rate_since: datetime | None = None


@dataclass(frozen=True)
class ProcessRow:
    role: str
    label: str
    age: float | None
    alive: bool
    detail: str = ""


def _role(mode: str) -> str:
    return MODE_LABELS.get(mode, mode or "unknown")


def _own_processes() -> list[ProcessRow]:
    return [
        ProcessRow(p.role, p.label, p.age, p.alive, p.detail)
        for p in health_parts(window=settings.DETECTION_WINDOW)
    ]


def _peer_processes(report: dict[str, Any], heard_ago: float) -> list[ProcessRow]:
    """The peer's processes as its last heartbeat said, aged by the time since."""
    rows = []
    for role in PARTS:
        part = report.get(role)
        if not isinstance(part, dict):
            continue
        age = part.get("age")
        age = None if age is None else age + heard_ago
        alive = age is not None and age <= settings.DETECTION_WINDOW
        rows.append(ProcessRow(role, LABELS[role], age, alive, str(part.get("detail", ""))))
    return rows


def pair_overview() -> tuple[NodeCard, NodeCard | None, NodeState]:
    """This server and its peer side by side (the peer as its last heartbeat told)."""
    values = config_read()
    state = NodeState.load()
    mode = values["redundancy.mode"]
    sip = sip_summary()
    devices = devices_per_node()
    own = NodeCard(
        name=settings.NODE_NAME,
        mode=mode,
        role=_role(mode),
        phase=Phase(state.phase).label if mode != "single" else "single",
        heartbeat_age=None,
        users_handled=sip.handled,
        users_registered=sip.registered,
        firmware=settings.FIRMWARE_VERSION,
        database_uuid=values["redundancy.database_uuid"],
        replication=replication_status(),
        is_self=True,
        devices=devices.get(settings.NODE_NAME),
        processes=_own_processes(),
        sip_progress=sip.progress,
        sip_rate=sip.rate_text,
        sip_rate_since=sip.rate_changed_at,
    )
    if mode == "single":
        return own, None, state
    status = state.peer_status or {}
    claims = status.get("claims") or {}
    age = (timezone.now() - state.peer_seen_at).total_seconds() if state.peer_seen_at else None
    received = status.get("received_at")
    heard_ago = max(0.0, time.time() - received) if isinstance(received, int | float) else 0.0
    report = status.get("health") or {}
    window = settings.DETECTION_WINDOW
    unserved = unserved_reason(report, window=window)
    stale = age is None or age > window
    peer = NodeCard(
        name=claims.get("node") or values["redundancy.peer"],
        mode=claims.get("mode", ""),
        role=_role(claims.get("mode", "")),
        phase=Phase(status["phase"]).label if status.get("phase") in Phase.values else "unknown",
        heartbeat_age=age,
        users_handled=status.get("users_handled"),
        users_registered=status.get("users_registered"),
        firmware=claims.get("firmware", ""),
        database_uuid=claims.get("database_uuid", ""),
        replication=status.get("replication") or {},
        is_self=False,
        # Devices are not counted on a server that is gone: it serves none of them.
        devices=None
        if stale
        else next((v for k, v in devices.items() if k != settings.NODE_NAME), None),
        processes=_peer_processes(report, heard_ago),
        stale=stale,
        unserved=unserved,
        sip_progress="" if stale else _peer_sip_progress(sip, status),
        sip_rate=str(status.get("sip_rate") or "")[:300],
    )
    return own, peer, state


def _peer_sip_progress(own: SipSummary, status: dict[str, Any]) -> str:
    """The peer's registration progress, from the figures of its heartbeat, while the
    registration states it sent say some of its users still wait for the PBX."""
    handled, registered = status.get("users_handled"), status.get("users_registered")
    if not own.registrar or handled is None or registered is None or not peer_registering():
        return ""
    verb = "re-registering" if own.switched_from else "registering"
    return f"{verb} with {own.registrar}: {registered} of {handled} registered"


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
