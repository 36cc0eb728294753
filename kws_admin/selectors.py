"""Reads shared by every page: what the header says about this node."""

from dataclasses import dataclass

from django.conf import settings

from core import config
from core.locks import write_permission
from core.models import NodeState, Phase
from core.selectors import config_read


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
    rule = write_permission(values=values, state=state)
    return NodeSummary(
        name=settings.NODE_NAME,
        mode=mode,
        mode_label=config.MODE_LABELS[mode],
        phase=phase,
        phase_label=Phase(phase).label,
        locked=not rule.allowed,
        lock_reason=rule.reason,
        firmware=settings.FIRMWARE_VERSION,
    )
