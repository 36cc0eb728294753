"""The one lock rule: whether a node may write, where the write goes, and why not."""

import pytest

from core.rules import (
    FAILOVER,
    LOCK_BACKUP,
    LOCK_FAILOVER,
    LOCK_SWITCHOVER,
    NORMAL,
    PEER_LOST,
    REJECTED,
    SINGLE,
    Route,
    Scope,
    write_rule,
)

S, L, A = Scope.SHARED, Scope.LOCAL, Scope.ACCOUNT


@pytest.mark.parametrize(
    ("scope", "mode", "phase", "route", "reason"),
    [
        # A single server and a master write everything, whatever their phase.
        (S, "single", SINGLE, Route.HERE, ""),
        (S, "master", NORMAL, Route.HERE, ""),
        (S, "master", PEER_LOST, Route.HERE, ""),
        (S, "master", FAILOVER, Route.HERE, ""),  # the backup failed: a single server
        (A, "master", FAILOVER, Route.HERE, ""),
        (L, "master", REJECTED, Route.HERE, ""),
        # A backup: configuration is done on the master; its own settings are its own.
        (S, "slave", NORMAL, Route.REFUSED, LOCK_BACKUP),
        (S, "slave", PEER_LOST, Route.REFUSED, LOCK_BACKUP),
        (S, "slave", REJECTED, Route.REFUSED, LOCK_BACKUP),
        (L, "slave", NORMAL, Route.HERE, ""),
        (L, "slave", PEER_LOST, Route.HERE, ""),
        # Accounts: through the joined master, or kept locally until the first snapshot.
        (A, "slave", NORMAL, Route.MASTER, ""),
        (A, "slave", PEER_LOST, Route.LOCAL, ""),
        (A, "slave", REJECTED, Route.LOCAL, ""),
        # During a failover on the backup nothing can be changed at all.
        (S, "slave", FAILOVER, Route.REFUSED, LOCK_FAILOVER),
        (L, "slave", FAILOVER, Route.REFUSED, LOCK_FAILOVER),
        (A, "slave", FAILOVER, Route.REFUSED, LOCK_FAILOVER),
    ],
)  # fmt: skip
def test_the_rule_by_scope_mode_and_phase(scope, mode, phase, route, reason):
    rule = write_rule(scope, mode=mode, phase=phase)
    assert (rule.route, rule.reason) == (route, reason)
    assert rule.allowed == (route != Route.REFUSED)


@pytest.mark.parametrize("scope", list(Scope))
def test_a_master_handing_its_role_over_refuses_every_write(scope):
    rule = write_rule(scope, mode="master", phase=NORMAL, switching=True)
    assert not rule.allowed and rule.reason == LOCK_SWITCHOVER
