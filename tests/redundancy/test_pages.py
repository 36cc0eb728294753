"""The GUI frame: menu, header and the event log."""

import pytest
from django.urls import reverse

from core.models import Event, NodeState, Phase
from core.services import config_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

MENU = ["Status", "Users", "Base stations", "Configuration", "Redundancy", "Licenses", "Event log"]


def test_the_menu_mirrors_the_kws_gui(admin_client):
    page = admin_client.get(reverse("status")).text
    positions = [page.index(f">{item}<") for item in MENU]
    assert positions == sorted(positions)


def test_the_header_shows_name_mode_phase_and_lock(admin_client, settings):
    settings.NODE_NAME = "kws-east"
    config_update(
        changes={
            "redundancy.mode": "slave",
            "redundancy.peer": "10.0.0.1",
            "redundancy.secret": "x" * 16,
        },
        actor="test",
    )
    NodeState.objects.update_or_create(
        pk=1, defaults={"phase": Phase.FAILOVER, "locked": True, "lock_reason": "failover"}
    )
    fragment = admin_client.get(reverse("node_header"), HTTP_HX_REQUEST="true").text
    assert "kws-east" in fragment
    assert 'data-field="mode">backup (slave)<' in fragment
    assert 'data-field="phase">failover<' in fragment
    assert "configuration locked" in fragment
    assert 'hx-trigger="every 2s"' in fragment


def test_a_single_server_shows_phase_single_and_unlocked(admin_client):
    fragment = admin_client.get(reverse("node_header")).text
    assert 'data-field="mode">single<' in fragment
    assert 'data-field="phase">single<' in fragment
    assert "configuration unlocked" in fragment


def test_the_event_log_filters_by_kind_and_returns_a_partial_to_htmx(admin_client):
    Event.objects.create(kind="join", message="backup joined")
    Event.objects.create(kind="config", message="failover time changed")
    page = admin_client.get(reverse("event_list")).text
    assert "backup joined" in page and "failover time changed" in page

    partial = admin_client.get(reverse("event_list"), {"kind": "join"}, HTTP_HX_REQUEST="true")
    assert "backup joined" in partial.text
    assert "failover time changed" not in partial.text
    assert "<nav" not in partial.text


def test_the_redundancy_page_title_is_plain_text(admin_client):
    page = admin_client.get(reverse("redundancy_settings")).text
    title = page[page.index("<title>") + 7 : page.index("</title>")]
    assert title.startswith("Redundancy") and "<" not in title
