"""The configuration lock at run time: ``core.rules.write_rule`` applied to this node now.

Services call ``write_check(scope)`` before a write (``core.changelog.changelog_append``
calls it for every replicated write, after it has locked the log's head); views turn
``Locked`` into HTTP 423 (``kws_admin.middleware.LockedMiddleware``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from core.models import NodeState
from core.rules import SINGLE, Route, Scope, WriteRule, write_rule
from core.selectors import config_read

# A switchover mark older than this is left over from a process that died half way.
SWITCHOVER_MARK_MAX = timedelta(seconds=60)


class Locked(Exception):
    """A write refused because configuration is locked; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def switching(state: NodeState) -> bool:
    """Whether this master is handing its role to the backup right now."""
    since = state.switchover_since
    return since is not None and timezone.now() - since < SWITCHOVER_MARK_MAX


def write_permission(
    scope: Scope = Scope.SHARED,
    *,
    values: dict[str, Any] | None = None,
    state: NodeState | None = None,
) -> WriteRule:
    """Whether this node may make a write of ``scope`` now, where it goes, and why not.
    ``values`` and ``state``: this node's configuration and state, if read already."""
    values = values or config_read()
    state = state or NodeState.load()
    mode = values["redundancy.mode"]
    phase = state.phase if mode != "single" else SINGLE
    return write_rule(scope, mode=mode, phase=phase, switching=switching(state))


def write_check(scope: Scope = Scope.SHARED) -> Route:
    """Raise Locked unless this node may make a write of ``scope`` now; return its route."""
    rule = write_permission(scope)
    if not rule.allowed:
        raise Locked(rule.reason)
    return rule.route
