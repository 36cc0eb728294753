"""The configuration lock: the one place that says whether this node may write.

A backup never writes replicated configuration (it is done on the master), and
during a failover nothing may be changed at all. Services call
``write_check()`` before a write; views turn ``Locked`` into HTTP 423.
"""

from __future__ import annotations

from redundancy.models import NodeState, Phase


class Locked(Exception):
    """A write refused because configuration is locked; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def lock_reason() -> str:
    """Why replicated configuration cannot be changed here, or '' if it can."""
    state = NodeState.load()
    if state.locked:
        return state.lock_reason or "configuration is locked"
    from kws_admin.services import config_read

    if config_read()["redundancy.mode"] == "slave":
        return "this server is the backup: configuration is done on the master"
    return ""


def write_check() -> None:
    """Raise Locked unless this node may change replicated configuration now."""
    reason = lock_reason()
    if reason:
        raise Locked(reason)


def failover_check() -> None:
    """Raise Locked while this backup is in a failover: then nothing can be changed,
    not even this server's own redundancy settings (promotion has its own action)."""
    state = NodeState.load()
    if state.phase == Phase.FAILOVER and state.locked:
        raise Locked(state.lock_reason)
