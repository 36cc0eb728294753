"""Who serves devices, devices per node, and the split-brain witness."""

from datetime import timedelta

import pytest
from django.utils import timezone

from basestations.models import BaseStation, BaseStationLink, MediaResource, MediaResourceLink
from basestations.selectors import (
    device_acceptance,
    devices_heartbeat,
    devices_per_node,
    witness_report,
)
from basestations.services import devices_provision
from core.models import NodeState
from tests.basestations.conftest import become_backup, become_master

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def test_a_single_server_and_a_master_accept_devices():
    assert device_acceptance() == (True, "this server is a single server")
    become_master()
    assert device_acceptance() == (True, "this server is the master")


@pytest.mark.parametrize(
    ("phase", "accepts"),
    [("normal", False), ("peer_lost", False), ("rejected", False), ("failover", True)],
)
def test_a_backup_accepts_devices_only_in_failover(phase, accepts):
    become_backup(phase)
    accepted, reason = device_acceptance()
    assert accepted is accepts
    assert ("failover" in reason) if accepts else ("devices attach to the master" in reason)


def links(count, *, attached=0, unreachable=0, redirected=0, stale=0):
    """Give the first base stations runtime rows: ``attached`` here, of which the first
    ``unreachable`` report the peer unreachable; then ``redirected`` (heard, 409) ones
    reporting it unreachable; then ``stale`` ones last heard a minute ago."""
    devices_provision(basestations=count, media=1, actor="t")
    now = timezone.now()
    rfps = list(BaseStation.objects.order_by("name"))
    for i, rfp in enumerate(rfps):
        make = BaseStationLink.objects.create
        if i < attached:
            make(basestation=rfp, last_contact_at=now, last_keepalive_at=now,
                 peer_reachable=i >= unreachable)  # fmt: skip
        elif i < attached + redirected:
            make(basestation=rfp, last_contact_at=now, peer_reachable=False,
                 refusal="this server is the backup")  # fmt: skip
        elif i < attached + redirected + stale:
            old = now - timedelta(minutes=1)
            make(basestation=rfp, last_contact_at=old, last_keepalive_at=old,
                 peer_reachable=False)  # fmt: skip
    return rfps


def test_the_witness_of_a_master_whose_devices_all_reach_the_backup_confirms_nothing():
    links(10, attached=10)
    assert witness_report() == {"known": 10, "attached": 10, "peer_unreachable": 0, "heard": 10,
                                "silent": 0, "needed": 7, "confirmed": False,
                                "peer_reachable": 10}  # fmt: skip


def test_the_witness_confirms_when_60_percent_plus_one_report_the_peer_unreachable():
    links(10, attached=3, unreachable=3, redirected=3, stale=2)
    report = witness_report()
    assert report == {"known": 10, "attached": 3, "peer_unreachable": 6, "heard": 6,
                      "silent": 4, "needed": 7, "confirmed": False, "peer_reachable": 0}  # fmt: skip
    BaseStationLink.objects.filter(
        last_contact_at__lt=timezone.now() - timedelta(seconds=30)
    ).update(last_contact_at=timezone.now())
    assert witness_report()["peer_unreachable"] == 8 and witness_report()["confirmed"]


def test_a_backup_that_hears_from_no_device_is_not_confirmed():
    links(5)
    report = witness_report()
    assert report["silent"] == 5 and report["heard"] == 0 and not report["confirmed"]


def test_no_base_stations_confirm_nothing():
    assert witness_report()["confirmed"] is False


def test_devices_per_node_counts_ours_and_what_the_peer_said(settings):
    rfps = links(4, attached=3)
    media = MediaResource.objects.get()
    MediaResourceLink.objects.create(media_resource=media, last_keepalive_at=timezone.now())
    assert devices_heartbeat() == {"rfp": sorted(r.pk for r in rfps[:3]), "media": [media.pk]}
    assert devices_per_node() == {settings.NODE_NAME: {"rfp": 3, "media": 1}}
    become_master(peer="10.0.0.2:8001")
    assert devices_per_node()[settings.NODE_NAME] == {"rfp": 3, "media": 1}
    assert devices_per_node()["10.0.0.2:8001"] is None  # no heartbeat with devices yet
    NodeState.objects.filter(pk=1).update(
        peer_status={"claims": {"node": "backup"}, "devices": {"rfp": [rfps[3].pk], "media": []}}
    )
    assert devices_per_node() == {settings.NODE_NAME: {"rfp": 3, "media": 1},
                                  "backup": {"rfp": 1, "media": 0}}  # fmt: skip


def test_devices_moved_since_a_takeover_began_are_counted_with_the_last_arrival():
    from basestations.selectors import devices_moved_since

    rfps = links(3, attached=3)
    started = timezone.now()
    assert devices_moved_since(started) == {"last_at": None, "rfp": 0, "media": 0}
    later = started + timedelta(seconds=2)
    BaseStationLink.objects.filter(pk__in=[r.pk for r in rfps[:2]]).update(
        attached_since=later, last_keepalive_at=later
    )
    assert devices_moved_since(started, now=later) == {"last_at": later, "rfp": 2, "media": 0}
