"""The lock rule applied to this node: the services, the header and the peer endpoints
ask the same function."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.locks import Locked, write_check, write_permission
from core.models import NodeState, Phase
from core.rules import LOCK_FAILOVER, LOCK_SWITCHOVER, Route, Scope
from tests.redundancy.test_replication_fakes import become_backup, become_master

pytestmark = pytest.mark.django_db


def test_the_header_says_what_the_services_enforce(admin_client):
    become_backup(phase=Phase.FAILOVER)
    with pytest.raises(Locked) as refused:
        write_check(Scope.LOCAL)
    assert refused.value.reason == LOCK_FAILOVER
    fragment = admin_client.get(reverse("node_header"), HTTP_HX_REQUEST="true").text
    assert "configuration locked" in fragment and LOCK_FAILOVER[:40] in fragment


def test_a_single_server_never_reads_a_stale_phase_as_a_failover():
    NodeState.objects.update_or_create(pk=1, defaults={"phase": Phase.FAILOVER})
    assert write_check(Scope.SHARED) == Route.HERE


def test_a_switchover_mark_locks_the_master_until_it_is_gone_or_stale():
    become_master()
    NodeState.objects.update_or_create(pk=1, defaults={"switchover_since": timezone.now()})
    assert write_permission().reason == LOCK_SWITCHOVER
    # A mark left by a process that died half way does not lock the node for ever.
    NodeState.objects.filter(pk=1).update(switchover_since=timezone.now() - timedelta(minutes=5))
    assert write_permission().allowed
