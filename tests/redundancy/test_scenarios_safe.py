"""The note's administration scenarios made safe: promotion only when the master is
really gone, the master's failover time, the peer checked before it is saved, locked
forms shown read-only, and the login page of a backup."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from basestations.models import BaseStation, BaseStationLink
from core.models import Event, NodeState, Phase
from core.selectors import config_read
from redundancy import scenarios
from redundancy.runner import failover_time_applied
from tests.redundancy.test_replication_fakes import become_backup, become_master
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def failover_backup() -> None:
    become_backup(phase=Phase.FAILOVER)
    NodeState.objects.filter(pk=1).update(peer_seen_at=timezone.now() - timedelta(seconds=30))


def test_promotion_is_refused_while_the_master_answers():
    become_backup(phase=Phase.FAILOVER)
    NodeState.objects.filter(pk=1).update(peer_seen_at=timezone.now())
    with pytest.raises(scenarios.ScenarioError, match="the master answered"):
        scenarios.backup_promote(actor="alice", master_off=True)
    assert config_read()["redundancy.mode"] == "slave"


def test_promotion_is_refused_while_base_stations_still_reach_the_master():
    failover_backup()
    rfp = BaseStation.objects.create(name="RFP 1", mac="00:13:D1:0A:0B:01")
    BaseStationLink.objects.create(basestation=rfp, last_contact_at=timezone.now(),
                                   peer_reachable=True, last_stamp=1.0)  # fmt: skip
    with pytest.raises(scenarios.ScenarioError, match="1 of 1 base stations still reach"):
        scenarios.backup_promote(actor="alice", master_off=True)
    assert config_read()["redundancy.mode"] == "slave"


def test_without_base_stations_the_administrator_must_say_the_master_is_switched_off():
    failover_backup()
    with pytest.raises(scenarios.ScenarioError, match="make sure it is switched off"):
        scenarios.backup_promote(actor="alice")
    assert config_read()["redundancy.mode"] == "slave"
    scenarios.backup_promote(actor="alice", master_off=True)
    assert config_read()["redundancy.mode"] == "master"
    event = Event.objects.get(kind="promotion")
    assert "confirmed it is switched off" in event.message and event.actor == "alice"


def test_base_stations_that_report_the_master_gone_are_enough():
    failover_backup()
    rfp = BaseStation.objects.create(name="RFP 1", mac="00:13:D1:0A:0B:01")
    BaseStationLink.objects.create(basestation=rfp, last_contact_at=timezone.now(),
                                   peer_reachable=False, last_stamp=1.0)  # fmt: skip
    scenarios.backup_promote(actor="alice")
    assert "1 of 1 base stations report it gone" in Event.objects.get(kind="promotion").message


def test_a_backup_uses_the_failover_time_of_its_master():
    become_backup()
    NodeState.objects.filter(pk=1).update(peer_status={
        "claims": {"node": "kws-a", "mode": "master"}, "failover_time": 5})  # fmt: skip
    values = {**config_read(), "redundancy.failover_time": 7}
    assert failover_time_applied(values, NodeState.load()) == (5, "the master kws-a")
    become_master()
    assert (
        failover_time_applied(config_read(), NodeState.load())[0]
        == config_read()["redundancy.failover_time"]
    )


def test_the_backups_redundancy_page_shows_the_failover_time_read_only_with_its_source(
    admin_client,
):
    become_backup()
    NodeState.objects.filter(pk=1).update(peer_status={
        "claims": {"node": "kws-a", "mode": "master"}, "failover_time": 5})  # fmt: skip
    html = admin_client.get(reverse("redundancy_settings")).text
    assert (
        'name="failover_time"' in html and "disabled" in html.split('name="failover_time"')[1][:80]
    )
    assert "5 s, set by the master kws-a" in html


def test_an_unreachable_peer_is_saved_only_when_asked(admin_client):
    form = {"mode": "master", "peer": "127.0.0.1:9", "failover_time": "15",
            "secret": "pairing-secret-0123456789"}  # fmt: skip
    response = admin_client.post(reverse("redundancy_settings"), form)
    assert response.status_code == 200
    assert "127.0.0.1:9 does not answer" in response.text and "Nothing was saved" in response.text
    assert config_read()["redundancy.mode"] == "single"
    saved = admin_client.post(reverse("redundancy_settings"), {**form, "save_unreachable": "on"},
                              follow=True)  # fmt: skip
    assert config_read()["redundancy.mode"] == "master"
    assert "saved as asked" in saved.text


def test_locked_forms_are_shown_read_only_without_save_or_delete(admin_client):
    become_master()
    user = dect_user_create(actor="test", extension="2001")
    become_backup()
    for url in (reverse("user_edit", args=[user.pk]), reverse("user_create")):
        html = admin_client.get(url).text
        assert 'data-field="read-only"' in html and '<fieldset class="plain" disabled>' in html
        assert ">Save<" not in html and "Delete user" not in html


def test_the_login_page_of_a_backup_says_whose_accounts_sign_in(client):
    become_backup()
    NodeState.objects.filter(pk=1).update(peer_status={"claims": {"node": "kws-a"}})
    html = client.get(reverse("login")).text
    assert "This server is the backup of kws-a: sign in with the master's accounts" in html


def test_during_a_failover_the_redundancy_form_is_refused_before_the_peer_is_tried(admin_client):
    failover_backup()
    response = admin_client.post(reverse("redundancy_settings"),
                                 {"mode": "slave", "peer": "127.0.0.1:9", "failover_time": "9"})  # fmt: skip
    assert response.status_code == 423 and "failover" in response.text
