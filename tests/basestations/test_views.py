"""The Base stations page: live list of both kinds, htmx fragments, forms, locks (423)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from basestations.models import BaseStation, BaseStationLink, MediaResource
from basestations.services import basestation_create, devices_provision, media_resource_create
from core.models import NodeState
from tests.basestations.conftest import MAC, become_backup, become_master

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def page(client, **params):
    return client.get(reverse("basestation_list"), params)


def test_the_page_lists_base_stations_and_media_resources_with_their_live_state(
    admin_client, settings
):
    rfp = basestation_create(actor="t", name="RFP 1", mac=MAC, location="Ward 3")
    basestation_create(actor="t", name="RFP 2", mac="00:13:D1:0A:0B:02")
    media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01", channels=16)
    BaseStationLink.objects.create(basestation=rfp, ip="10.20.0.1", firmware="PCS06B",
                                   state="synced", last_keepalive_at=timezone.now(),
                                   last_contact_at=timezone.now())  # fmt: skip
    text = page(admin_client).text
    for shown in ("RFP 1", MAC, "10.20.0.1", "PCS06B", "synced", "Ward 3", "Media 1", "16",
                  "Last keep-alive", "Attached to", "never", "not attached"):  # fmt: skip
        assert shown in text, shown
    assert f'<span class="attached attached-here" title="">{settings.NODE_NAME}</span>' in text
    assert "2 base stations: <strong>1</strong> attached to this server" in text
    assert "No device secret is configured" in text


def test_a_device_refused_for_its_firmware_says_so_until_it_is_accepted(admin_client):
    rfp = basestation_create(actor="t", name="RFP 1", mac=MAC)
    BaseStationLink.objects.create(
        basestation=rfp,
        firmware="PCS05B",
        last_contact_at=timezone.now() - timezone.timedelta(minutes=5),
        refusal="Refused base station RFP 1: firmware PCS05B is older",
    )
    text = page(admin_client).text
    assert "attached-refused" in text and "firmware PCS05B is older" in text
    assert "RFP 1" in page(admin_client, attached="refused").text
    assert "RFP 1" not in page(admin_client, attached="here").text


def test_devices_the_peer_reported_are_shown_attached_to_it(admin_client):
    become_master(peer="10.0.0.2:8001")
    rfp = basestation_create(actor="t", name="RFP 1", mac=MAC)
    NodeState.objects.filter(pk=1).update(
        peer_status={"claims": {"node": "backup"}, "devices": {"rfp": [rfp.pk], "media": []}},
        peer_seen_at=timezone.now(),
    )
    text = page(admin_client).text
    assert '<span class="attached attached-peer" title="">backup</span>' in text
    assert "RFP 1" in page(admin_client, attached="peer").text
    assert "RFP 1" not in page(admin_client, attached="none").text


def test_a_device_is_never_shown_attached_to_a_peer_that_has_gone_silent(admin_client):
    become_master(peer="10.0.0.2:8001")
    rfp = basestation_create(actor="t", name="RFP 1", mac=MAC)
    NodeState.objects.filter(pk=1).update(
        peer_status={"claims": {"node": "backup"}, "devices": {"rfp": [rfp.pk], "media": []}},
        peer_seen_at=timezone.now() - timedelta(minutes=10),  # its last word, long ago
    )
    text = page(admin_client).text
    assert "attached-peer" not in text
    assert "RFP 1" in page(admin_client, attached="none").text


def test_search_finds_by_name_mac_and_location(admin_client):
    basestation_create(actor="t", name="RFP 1", mac=MAC, location="Ward 3")
    basestation_create(actor="t", name="Lobby", mac="00:13:D1:0A:0B:02")
    assert "Lobby" not in page(admin_client, q="ward").text
    assert "RFP 1" not in page(admin_client, q="0a-0b-02").text


def test_htmx_polls_get_the_fragment_they_target(admin_client):
    basestation_create(actor="t", name="RFP 1", mac=MAC)
    media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01")
    url = reverse("basestation_list")
    rfp = admin_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="basestation-table").text
    assert rfp.startswith("{# ") is False and 'id="basestation-table"' in rfp
    assert "<nav" not in rfp and "Media 1" not in rfp and 'hx-trigger="every 2s"' in rfp
    media = admin_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="media-table").text
    assert 'id="media-table"' in media and "Media 1" in media and "RFP 1" not in media


def test_the_media_table_pages_and_sorts_on_its_own(admin_client):
    devices_provision(basestations=60, media=3, actor="t")
    text = page(admin_client, **{"media-sort": "-name"}).text
    assert "page 1 of 2" in text  # base stations: 60 at 50 a page
    assert text.index("Media 03") < text.index("Media 01")


def test_the_list_costs_the_same_number_of_queries_at_5_and_at_120_devices(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert page(admin_client).status_code == 200
        return len(ctx)

    devices_provision(basestations=5, media=1, actor="t")
    queries()  # the session's first request also stamps its activity (a session write)
    few = queries()
    devices_provision(basestations=120, media=10, actor="t")
    now = timezone.now()
    BaseStationLink.objects.bulk_create(
        BaseStationLink(basestation=b, last_keepalive_at=now, state="synced")
        for b in BaseStation.objects.all()
    )
    assert queries() == few


def test_add_edit_and_delete_a_base_station(admin_client):
    response = admin_client.post(
        reverse("basestation_create"), {"name": "RFP 9", "mac": "0013d10a0b09", "location": "Lab"}
    )
    assert response.status_code == 302
    rfp = BaseStation.objects.get()
    assert rfp.mac == "00:13:D1:0A:0B:09"
    edit = admin_client.get(reverse("basestation_edit", args=[rfp.pk])).text
    assert 'value="RFP 9"' in edit and "Delete base station" in edit
    response = admin_client.post(reverse("basestation_edit", args=[rfp.pk]),
                                 {"name": "RFP 10", "mac": rfp.mac, "location": ""})  # fmt: skip
    assert response.status_code == 302 and BaseStation.objects.get().name == "RFP 10"
    assert admin_client.post(reverse("basestation_delete", args=[rfp.pk])).status_code == 302
    assert not BaseStation.objects.exists()


def test_add_edit_and_delete_a_media_resource(admin_client):
    response = admin_client.post(
        reverse("media_resource_create"),
        {"name": "Media 1", "mac": "00:13:D1:0A:0C:01", "channels": "8"},
    )
    assert response.status_code == 302
    media = MediaResource.objects.get()
    assert media.channels == 8
    response = admin_client.post(
        reverse("media_resource_edit", args=[media.pk]),
        {"name": "Media 1", "mac": media.mac, "channels": "16"},
    )
    assert response.status_code == 302 and MediaResource.objects.get().channels == 16
    admin_client.post(reverse("media_resource_delete", args=[media.pk]))
    assert not MediaResource.objects.exists()


def test_a_refused_value_is_shown_at_its_field(admin_client):
    basestation_create(actor="t", name="RFP 1", mac=MAC)
    response = admin_client.post(reverse("basestation_create"), {"name": "RFP 2", "mac": MAC})
    assert response.status_code == 200
    assert f"MAC {MAC} is already used by base station RFP 1" in response.text
    assert 'data-error-for="mac"' in response.text


@pytest.mark.parametrize("phase", ["normal", "failover"])
def test_a_backup_answers_every_write_with_423_and_shows_no_add_buttons(admin_client, phase):
    rfp = basestation_create(actor="t", name="RFP 1", mac=MAC)
    media = media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01")
    become_backup(phase)
    text = page(admin_client).text
    assert "Read-only here" in text and "Add base station" not in text
    posts = [
        (reverse("basestation_create"), {"name": "RFP 2", "mac": "00:13:D1:0A:0B:02"}),
        (reverse("basestation_edit", args=[rfp.pk]), {"name": "RFP 9", "mac": MAC}),
        (reverse("basestation_delete", args=[rfp.pk]), {}),
        (
            reverse("media_resource_create"),
            {"name": "M", "mac": "00:13:D1:0A:0C:09", "channels": 4},
        ),
        (
            reverse("media_resource_edit", args=[media.pk]),
            {"name": "M", "mac": media.mac, "channels": 4},
        ),  # fmt: skip
        (reverse("media_resource_delete", args=[media.pk]), {}),
    ]
    for url, data in posts:
        response = admin_client.post(url, data)
        assert response.status_code == 423, url
        assert "locked" in response.text.lower()
    assert BaseStation.objects.get().name == "RFP 1" and MediaResource.objects.count() == 1


def test_the_page_needs_a_login(client):
    response = client.get(reverse("basestation_list"))
    assert response.status_code == 302 and "/login/" in response["Location"]
