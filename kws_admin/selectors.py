"""Reads shared by every page: what the header says about this node."""

from dataclasses import dataclass

from django.conf import settings

from kws_admin import config
from kws_admin.services import config_read
from redundancy.models import NodeState, Phase


@dataclass(frozen=True)
class NodeSummary:
    name: str
    mode: str
    mode_label: str
    phase: str
    phase_label: str
    locked: bool
    lock_reason: str
    firmware: str


def node_summary() -> NodeSummary:
    values = config_read()
    state = NodeState.load()
    mode = values["redundancy.mode"]
    phase = state.phase if mode != "single" else Phase.SINGLE
    return NodeSummary(
        name=settings.NODE_NAME,
        mode=mode,
        mode_label=config.MODE_LABELS[mode],
        phase=phase,
        phase_label=Phase(phase).label,
        locked=state.locked,
        lock_reason=state.lock_reason,
        firmware=settings.FIRMWARE_VERSION,
    )
