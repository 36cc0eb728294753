"""The device API: signed keep-alives, refusals logged once, who serves devices."""

import time

import pytest
from django.utils import timezone

from basestations import protocol
from basestations.models import BaseStationLink, MediaResourceLink
from basestations.selectors import handset_last_seen
from core import signing
from core.models import Event, NodeState
from core.selectors import config_read
from core.services import config_update
from tests.basestations.conftest import MAC, MEDIA_MAC, become_backup, become_master, report

pytestmark = [pytest.mark.django_db]


def refusals():
    return list(Event.objects.filter(kind="device_refused").values_list("message", flat=True))


def test_an_accepted_base_station_learns_the_peer_and_the_interval_and_is_attached_here(
    keepalive, device_secret, rfp, settings
):
    become_master(peer="10.0.0.2:8001")
    response = keepalive(report(ip="10.20.0.1"))
    assert response.status_code == 200 and response.verified
    assert response.answer == {"server": settings.NODE_NAME, "peer": "10.0.0.2:8001",
                               "interval": protocol.KEEPALIVE_INTERVAL, "missed": 2,
                               "ari": config_read()["system.ari"]}  # fmt: skip
    link = BaseStationLink.objects.get(pk=rfp.pk)
    assert (link.ip, link.firmware, link.state, link.peer_reachable) == (
        "10.20.0.1", "PCS06B", "synced", True,
    )  # fmt: skip
    assert link.last_keepalive_at and link.attached_since and not link.refusal


def test_a_peer_without_port_is_given_with_the_default_port(keepalive, device_secret, rfp):
    become_master(peer="backup.example")
    assert keepalive().answer["peer"] == "backup.example:80"


def test_a_single_server_accepts_and_names_no_peer(keepalive, device_secret, rfp):
    response = keepalive()
    assert response.status_code == 200 and response.answer["peer"] == ""


def test_the_reported_ip_falls_back_to_the_address_the_request_came_from(
    keepalive, device_secret, rfp
):
    keepalive(report(ip="not an ip"), remote="10.9.9.9")
    assert BaseStationLink.objects.get(pk=rfp.pk).ip == "10.9.9.9"


def test_firmware_older_than_pcs06a_is_refused_and_logged_once_per_device_and_version(
    keepalive, device_secret, rfp
):
    for _ in range(3):
        response = keepalive(report(firmware="PCS05B"))
        assert response.status_code == 403
        assert "firmware PCS05B is older than PCS06A" in response.answer["error"]
    assert refusals() == [
        f"Refused base station RFP 1 ({MAC}): firmware PCS05B is older than PCS06A; "
        "update it to PCS06A or newer."
    ]
    keepalive(report(firmware="PCS05A"))
    assert len(refusals()) == 2 and "PCS05A" in refusals()[0]
    link = BaseStationLink.objects.get(pk=rfp.pk)
    assert link.firmware == "PCS05A" and link.refusal.startswith("Refused")
    assert link.last_keepalive_at is None


def test_a_device_updated_after_a_refusal_is_accepted_and_a_new_refusal_is_logged_again(
    keepalive, device_secret, rfp
):
    keepalive(report(firmware="PCS05B"))
    assert keepalive(report(firmware="PCS06A")).status_code == 200
    assert not BaseStationLink.objects.get(pk=rfp.pk).refusal
    keepalive(report(firmware="PCS05B"))
    assert len(refusals()) == 2


def test_an_unparseable_firmware_version_is_refused(keepalive, device_secret, rfp):
    response = keepalive(report(firmware="6.1"))
    assert response.status_code == 403 and "unknown firmware version" in response.answer["error"]


def test_an_unsigned_device_is_refused_and_logged_once(keepalive, device_secret, rfp):
    for _ in range(3):
        response = keepalive(sign=False)
        assert response.status_code == 401
        assert "unsigned" in response.answer["error"]
    assert [m.lower() for m in refusals()] == [
        f"Refused a device keep-alive from 10.1.2.3 (claims MAC {MAC}): unsigned message: "
        "header X-KWS-Timestamp missing.".lower()
    ]
    assert not BaseStationLink.objects.exists()


def test_a_device_with_the_wrong_secret_is_refused(keepalive, device_secret, rfp):
    response = keepalive(secret="not-the-device-secret")
    assert response.status_code == 401
    assert "device secret" in response.answer["error"]
    assert len(refusals()) == 1 and MAC in refusals()[0]


def test_a_stale_keep_alive_is_refused(keepalive, device_secret, rfp):
    response = keepalive(now=time.time() - 120)
    assert response.status_code == 401 and "stale" in response.answer["error"]


def test_a_replayed_or_older_keep_alive_is_refused(keepalive, device_secret, rfp):
    now = time.time()
    assert keepalive(now=now).status_code == 200
    response = keepalive(now=now - 1)
    assert response.status_code == 401 and "replayed" in response.answer["error"]
    assert keepalive(now=now + 1).status_code == 200


def test_a_keep_alive_signed_by_another_mac_is_malformed(keepalive, device_secret, rfp):
    response = keepalive(signer="00:13:D1:FF:FF:FF")
    assert response.status_code == 400 and "signed by 00:13:D1:FF:FF:FF" in response.answer["error"]


def test_an_unknown_device_is_refused_and_logged_once(keepalive, device_secret, rfp):
    body = report(mac="00:13:D1:00:00:99")
    for _ in range(2):
        response = keepalive(body)
        assert response.status_code == 403 and "unknown device" in response.answer["error"]
    assert refusals() == [
        "Refused base station 00:13:D1:00:00:99: unknown device (no base station with this "
        "MAC is configured)."
    ]


def test_a_base_station_mac_is_not_a_media_resource(keepalive, device_secret, rfp):
    assert keepalive(report(kind="media")).status_code == 403


def test_without_a_device_secret_every_device_is_refused(keepalive, rfp):
    response = keepalive()
    assert response.status_code == 403 and "system.device_secret" in response.answer["error"]
    assert len(refusals()) == 1


def test_a_backup_sends_devices_to_the_master_but_hears_what_they_say(
    keepalive, device_secret, rfp
):
    become_backup("normal", master="10.0.0.1:8000")
    response = keepalive(report(peer_reachable=False))
    assert response.status_code == 409 and response.verified
    assert response.answer == {
        "error": "this server is the backup: devices attach to the master",
        "server": "10.0.0.1:8000",
    }
    link = BaseStationLink.objects.get(pk=rfp.pk)
    assert link.last_contact_at and link.last_keepalive_at is None
    assert link.peer_reachable is False
    assert not refusals()


def test_a_backup_in_failover_accepts_devices(keepalive, device_secret, rfp):
    become_backup("failover", master="10.0.0.1:8000")
    response = keepalive()
    assert response.status_code == 200 and response.answer["peer"] == "10.0.0.1:8000"


def test_a_media_resource_reports_its_channels(keepalive, device_secret, media):
    response = keepalive(report(mac=MEDIA_MAC, kind="media", state="ok", channels_in_use=3))
    assert response.status_code == 200
    assert MediaResourceLink.objects.get(pk=media.pk).channels_in_use == 3


def test_handsets_seen_on_a_base_station_are_recorded(keepalive, device_secret, rfp):
    from basestations.services import basestation_create

    other = basestation_create(actor="test", name="RFP 2", mac="00:13:D1:0A:0B:02")
    keepalive(report(handsets=["2001", "2002", "junk"]))
    seen = handset_last_seen("2001")
    assert seen.basestation == "RFP 1" and seen.mac == MAC
    assert handset_last_seen("junk") is None and handset_last_seen("2003") is None
    keepalive(report(mac=other.mac, handsets=["2002"]))
    assert handset_last_seen("2002").basestation == "RFP 2"
    assert handset_last_seen("2001").basestation == "RFP 1"


def test_a_handset_that_stays_is_restamped_only_after_the_refresh_time(
    keepalive, device_secret, rfp
):
    from basestations.models import HandsetSighting

    keepalive(report(handsets=["2001"]))
    first = HandsetSighting.objects.get(pk="2001").seen_at
    keepalive(report(handsets=["2001"]))
    assert HandsetSighting.objects.get(pk="2001").seen_at == first
    HandsetSighting.objects.update(seen_at=timezone.now() - timezone.timedelta(seconds=31))
    keepalive(report(handsets=["2001"]))
    assert HandsetSighting.objects.get(pk="2001").seen_at > first


def test_the_probe_answers_without_login_or_signature(client, db, settings):
    response = client.get(protocol.PROBE_PATH)
    assert response.status_code == 200 and response.json() == {"server": settings.NODE_NAME}


def test_a_get_of_the_keepalive_path_is_not_allowed(client, db):
    assert client.get(protocol.KEEPALIVE_PATH).status_code == 405


def test_a_changed_device_secret_refuses_devices_with_the_old_one(keepalive, device_secret, rfp):
    config_update(changes={"system.device_secret": "a-brand-new-device-secret"}, actor="test")
    assert keepalive().status_code == 401


def test_an_accepted_keepalive_costs_four_queries(keepalive, device_secret, rfp):
    """Configuration, the device, its runtime row (also the replay check), its handsets."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    become_master()
    keepalive(report(handsets=["2001", "2002"]))
    with CaptureQueriesContext(connection) as ctx:
        assert keepalive(report(handsets=["2001", "2002"])).status_code == 200
    assert len(ctx) == 4, "\n".join(q["sql"][:100] for q in ctx.captured_queries)


def test_a_backup_serving_devices_in_a_failover_has_them_broadcast_the_masters_ari(
    keepalive, device_secret, rfp
):
    own = config_read()["system.ari"]
    become_backup("failover")
    NodeState.objects.filter(pk=1).update(
        peer_status={"claims": {"node": "kws-a", "mode": "master", "ari": "10ABCDE0"}}
    )
    answer = keepalive().answer
    assert answer["ari"] == "10ABCDE0" != own  # the ARI swap (14075260 is installed)


def test_a_device_can_speak_only_for_its_own_mac(keepalive, device_secret, rfp):
    """A compromised base station knows its own key, not the system's secret: with it, it
    can report neither as another MAC nor for another MAC."""
    own_key = signing.device_key(device_secret, "02:00:00:00:00:99")
    as_other = keepalive(report(), key=own_key)  # the victim's MAC, the attacker's key
    assert as_other.status_code == 401
    assert "wrong signature" in as_other.answer["error"]
    for_other = keepalive(report(), signer="02:00:00:00:00:99", key=own_key)
    assert for_other.status_code == 400 and "signed by" in for_other.answer["error"]
    assert not BaseStationLink.objects.filter(pk=rfp.pk, peer_reachable__isnull=False).exists()


def test_device_keys_differ_per_mac_and_from_the_secret():
    a, b = signing.device_key("s" * 20, MAC), signing.device_key("s" * 20, MEDIA_MAC)
    assert a != b and "s" * 20 not in (a, b) and len(a) == 64
    assert signing.device_key("s" * 20, MAC.lower()) == a


def test_the_servers_a_device_knows_are_kept_and_shown_on_its_page(
    keepalive, device_secret, rfp, admin_client
):
    assert keepalive(report(servers=["10.0.0.1:8000", "10.0.0.2:8001"])).status_code == 200
    assert BaseStationLink.objects.get(pk=rfp.pk).servers == ["10.0.0.1:8000", "10.0.0.2:8001"]
    html = admin_client.get(f"/basestations/{rfp.pk}/").text
    assert "<code>10.0.0.1:8000</code>, <code>10.0.0.2:8001</code>" in html


@pytest.mark.parametrize("servers", ["10.0.0.1:8000", [1, 2], ["x"] * 9, [""]])
def test_a_malformed_list_of_servers_is_refused(keepalive, device_secret, rfp, servers):
    response = keepalive(report(servers=servers))
    assert response.status_code == 400 and "servers must be" in response.answer["error"]
