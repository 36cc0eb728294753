"""Reads of the redundancy engine for the Status page and the header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from basestations.selectors import devices_per_node
from kws_admin.config import MODE_LABELS
from kws_admin.services import config_read
from redundancy.models import NodeState, Phase
from redundancy.replication import replication_status
from users.selectors import registration_progress


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


def _role(mode: str) -> str:
    return MODE_LABELS.get(mode, mode or "unknown")


def pair_overview() -> tuple[NodeCard, NodeCard | None, NodeState]:
    """This server and its peer side by side (the peer as its last heartbeat told)."""
    values = config_read()
    state = NodeState.load()
    mode = values["redundancy.mode"]
    registered, handled = registration_progress()
    devices = devices_per_node()
    own = NodeCard(
        name=settings.NODE_NAME,
        mode=mode,
        role=_role(mode),
        phase=Phase(state.phase).label if mode != "single" else "single",
        heartbeat_age=None,
        users_handled=handled,
        users_registered=registered,
        firmware=settings.FIRMWARE_VERSION,
        database_uuid=values["redundancy.database_uuid"],
        replication=replication_status(),
        is_self=True,
        devices=devices.get(settings.NODE_NAME),
    )
    if mode == "single":
        return own, None, state
    status = state.peer_status or {}
    claims = status.get("claims") or {}
    age = (timezone.now() - state.peer_seen_at).total_seconds() if state.peer_seen_at else None
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
        devices=next((v for k, v in devices.items() if k != settings.NODE_NAME), None),
    )
    return own, peer, state
