"""The Status page: both servers side by side, as this one knows them and the peer told."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import NodeState, Phase
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_master
from users.models import DectUser, SipRegistration
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def card(page: str, node: str) -> dict[str, str]:
    """The fields of one server's card, by their data-field."""
    start = page.index(f'data-node="{node}"')
    end = page.find('class="card node-card', start + 1)
    html = page[start : end if end > 0 else len(page)]
    return dict(re.findall(r'data-field="([^"]+)">([^<]*)<', html))


def heard_ago(text: str) -> float:
    """Seconds of 'n.n s ago'; the peer was heard 1.5 s before the test's last steps."""
    match = re.fullmatch(r"(\d+\.\d) s ago", text)
    assert match, text
    return float(match.group(1))


@pytest.fixture
def paired_master(settings):
    settings.NODE_NAME = "kws-a"
    # The peer was heard 1.5 s ago: fresh for the whole test, however slow the machine.
    settings.DETECTION_WINDOW = 10.0
    become_master()
    config_update(changes={"sip.registrar": "127.0.0.1:5060"}, actor="test")
    users = [dect_user_create(actor="test", extension=str(2000 + n)) for n in range(40)]
    DectUser.objects.filter(pk__in=[u.pk for u in users[:20]]).update(home="A")
    DectUser.objects.filter(pk__in=[u.pk for u in users[20:]]).update(home="B")
    now = timezone.now()
    SipRegistration.objects.bulk_create(
        SipRegistration(user=u, state="registered", changed_at=now) for u in users[:19]
    )
    NodeState.objects.update_or_create(
        pk=1,
        defaults={
            "phase": Phase.NORMAL,
            "reason": "normal: paired with kws-b",
            "peer_seen_at": now - timedelta(seconds=1.5),
            "peer_status": {
                "claims": {
                    "node": "kws-b",
                    "mode": "slave",
                    "firmware": "PCS06B",
                    "database_uuid": "",
                    "features": {},
                },  # fmt: skip
                "phase": "normal",
                "users_handled": 20,
                "users_registered": 18,
                "replication": {
                    "position": 41,
                    "master_head": 44,
                    "lag_entries": 3,
                    "lag_seconds": 0.4,
                },  # fmt: skip
                "devices": {"rfp": [1, 2, 3], "media": [7]},
            },
        },
    )


def test_both_servers_are_shown_side_by_side(paired_master, admin_client):
    page = admin_client.get(reverse("status")).text
    own, peer = card(page, "kws-a"), card(page, "kws-b")
    assert (own["role"], own["phase"], own["users"]) == ("Master", "normal", "20")
    assert own["registered"] == "19 of 20"
    assert re.fullmatch(r"change log at #\d+; backup acknowledged #0", own["replication"])
    assert (peer["role"], peer["phase"], peer["users"]) == ("Backup (slave)", "normal", "20")
    assert 1.5 <= heard_ago(peer["heartbeat"]) < 30
    assert peer["registered"] == "18 of 20"
    assert peer["replication"] == "applied #41 of #44, 3 behind (0.4 s)"
    assert peer["devices"] == "3 base stations, 1 media resources"
    assert "Normal: paired with kws-b" in page


def test_without_a_pbx_the_page_says_so(paired_master, admin_client):
    config_update(changes={"sip.registrar": ""}, actor="test")
    page = admin_client.get(reverse("status")).text
    assert card(page, "kws-a")["registered"] == "no PBX configured (sip.registrar)"


def test_htmx_gets_the_live_fragment(paired_master, admin_client):
    fragment = admin_client.get(reverse("status"), HTTP_HX_REQUEST="true").text
    assert fragment.startswith('<div id="pair-status"') and 'hx-trigger="every 2s"' in fragment
    assert 1.5 <= heard_ago(card(fragment, "kws-b")["heartbeat"]) < 30


def test_a_split_brain_shows_peer_unreachable_and_no_takeover(paired_master, admin_client):
    NodeState.objects.filter(pk=1).update(
        phase=Phase.PEER_LOST,
        reason="peer unreachable, no takeover: 0 of 10 base stations report it unreachable",
    )
    page = admin_client.get(reverse("status")).text
    assert "Peer unreachable, no takeover: 0 of 10 base stations" in page
    assert card(page, "kws-a")["phase"] == "peer lost"


def test_a_change_of_pbx_shows_the_re_registration_progress_of_both_servers(
    paired_master, admin_client
):
    from users.models import PbxLink, PeerRegistration

    now = timezone.now()
    PbxLink.objects.create(pk=1, registrar="127.0.0.1:5060", transport="udp",
                           previous="127.0.0.1:5070", since=now)  # fmt: skip
    waiting_here = DectUser.objects.filter(home="A", registration__isnull=True).get()
    SipRegistration.objects.create(user=waiting_here, state="pending", changed_at=now)
    waiting_there = DectUser.objects.filter(home="B").first()
    PeerRegistration.objects.create(user=waiting_there, state="pending", changed_at=now)
    page = admin_client.get(reverse("status")).text
    assert card(page, "kws-a")["sip-progress"] == (
        "Re-registering with 127.0.0.1:5060: 19 of 20 registered"
    )
    # The peer's figures are those of its heartbeat.
    assert card(page, "kws-b")["sip-progress"] == (
        "Re-registering with 127.0.0.1:5060: 18 of 20 registered"
    )
    # Done once every user has the PBX's answer: the line goes.
    SipRegistration.objects.filter(user=waiting_here).update(state="failed")
    PeerRegistration.objects.filter(user=waiting_there).update(state="registered")
    page = admin_client.get(reverse("status")).text
    assert "sip-progress" not in page
