"""The node's phases and the one rule that says whether this node may write, and why.

Pure: no Django, no I/O, so the state machine, the services, the middleware and
the peer endpoints all ask the same function and can never disagree.

The application note's rules:

- On a backup every configuration page is read-only (configuration is done
  on the master), except this server's own network and redundancy settings.
- During a failover on the backup nothing can be changed: no settings, no
  users added or removed, no subscription changes.
- A master is never locked: when its backup fails it runs as a single server.

Administrator accounts follow the replicated data, with one difference: an
administrator must be able to change his own password wherever he logs in, so
a joined backup forwards such a change to the master, and a backup that has
not joined keeps its accounts to itself until the master's replace them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SINGLE, NORMAL, PEER_LOST, FAILOVER, REJECTED = (
    "single",
    "normal",
    "peer_lost",
    "failover",
    "rejected",
)
PHASES = (SINGLE, NORMAL, PEER_LOST, FAILOVER, REJECTED)
PHASE_LABELS = {
    SINGLE: "single",
    NORMAL: "normal",
    PEER_LOST: "peer lost",
    FAILOVER: "failover",
    REJECTED: "rejected",
}

LOCK_BACKUP = "this server is the backup: configuration is done on the master"
LOCK_FAILOVER = (
    "failover: the master is lost; no settings, users or subscriptions can be changed "
    "until it returns or this backup is promoted to master"
)
LOCK_SWITCHOVER = (
    "a switchover is handing the master role to the backup: nothing can be changed "
    "until the roles have swapped"
)


class Scope(StrEnum):
    """What a write changes."""

    # Replicated configuration: shared settings, users, base stations, media resources.
    SHARED = "shared"
    # This server's own settings and licenses (network, redundancy, ARI).
    LOCAL = "local"
    # Administrator accounts (replicated, but changeable from the backup through the master).
    ACCOUNT = "account"


class Route(StrEnum):
    """Where an allowed write goes."""

    # Written here (and into the change log when replicated).
    HERE = "here"
    # Forwarded to the master, which writes it and replicates it back.
    MASTER = "master"
    # Written here only, on a backup that has not joined: replaced by the master's data
    # at its first snapshot.
    LOCAL = "local"
    REFUSED = "refused"


@dataclass(frozen=True)
class WriteRule:
    route: Route
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.route != Route.REFUSED


def write_rule(scope: Scope, *, mode: str, phase: str, switching: bool = False) -> WriteRule:
    """Whether a node in ``mode`` and ``phase`` may make a write of ``scope``, where the
    write goes, and why not when it may not. ``switching``: this master is handing its
    role to the backup (a switchover in progress)."""
    if switching:
        return WriteRule(Route.REFUSED, LOCK_SWITCHOVER)
    if mode == "slave" and phase == FAILOVER:
        return WriteRule(Route.REFUSED, LOCK_FAILOVER)
    if scope == Scope.LOCAL or mode != "slave":
        return WriteRule(Route.HERE)
    if scope == Scope.SHARED:
        return WriteRule(Route.REFUSED, LOCK_BACKUP)
    if phase == NORMAL:
        return WriteRule(Route.MASTER)
    return WriteRule(Route.LOCAL)
