"""Configuration ▸ Redundancy: the form validates every field and never half-applies."""

import pytest
from django.urls import reverse

from core.models import ConfigValue, Event
from core.selectors import config_read
from core.services import config_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

PASSWORD = "correct horse 42"  # the admin_user fixture
SECRET = "pairing-secret-0123456789"


def post(client, **fields):
    data = {"mode": "single", "peer": "", "failover_time": "15", "secret": ""}
    data.update(fields)
    return client.post(reverse("redundancy_settings"), data)


def stored():
    return dict(ConfigValue.objects.values_list("key", "value"))


def test_the_page_shows_the_current_settings(admin_client):
    config_update(changes={"redundancy.failover_time": "33"}, actor="test")
    page = admin_client.get(reverse("redundancy_settings")).text
    assert 'value="33"' in page
    assert "Backup (slave)" in page
    assert config_read()["redundancy.database_uuid"] in page


def test_saving_a_master_stores_every_field(admin_client):
    response = post(
        admin_client, mode="master", peer="10.0.0.2:8001", failover_time="20", secret=SECRET
    )
    assert response.status_code == 302
    values = config_read()
    assert values["redundancy.mode"] == "master"
    assert values["redundancy.peer"] == "10.0.0.2:8001"
    assert values["redundancy.failover_time"] == 20
    assert values["redundancy.secret"] == SECRET
    assert Event.objects.filter(kind="config", actor="alice").exists()


def test_an_empty_secret_field_keeps_the_secret(admin_client):
    post(admin_client, mode="master", peer="10.0.0.2", secret=SECRET)
    post(admin_client, mode="master", peer="10.0.0.3", secret="")
    assert config_read()["redundancy.secret"] == SECRET
    assert config_read()["redundancy.peer"] == "10.0.0.3"


def test_the_secret_is_never_shown(admin_client):
    post(admin_client, mode="master", peer="10.0.0.2", secret=SECRET)
    page = admin_client.get(reverse("redundancy_settings")).text
    assert SECRET not in page
    assert "a secret is set" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"failover_time": "-4"}, "Failover time (s): -4 is negative; use 0 to 3600 seconds"),
        ({"failover_time": "99999"}, "Failover time (s): 99999 s is more than 3600 s"),
        ({"failover_time": "ten"}, "Failover time (s): &#x27;ten&#x27; is not a whole number"),
        ({"peer": "10.0.0.2:0"}, "Peer node: port &#x27;0&#x27; is not a number from 1 to 65535"),
        ({"peer": "no such host!"}, "is not a host name or IP address"),
        ({"mode": "master", "secret": SECRET}, "Peer node: required when the node type is master"),
        (
            {"mode": "slave", "peer": "10.0.0.1"},
            "Pairing secret: required when the node type is backup",
        ),
        ({"secret": "short"}, "Pairing secret: must be at least 16 characters long"),
    ],
)
def test_a_bad_value_is_refused_with_a_message_naming_field_and_rule(admin_client, fields, message):
    before = stored()
    response = post(admin_client, **{"failover_time": "25", **fields})
    assert response.status_code == 200
    assert message in response.text
    assert stored() == before


def test_an_unknown_mode_is_refused(admin_client):
    response = post(admin_client, mode="primary")
    assert "Select a valid choice" in response.text


def test_switching_a_master_to_backup_resets_the_database_uuid(admin_client):
    post(admin_client, mode="master", peer="10.0.0.2", secret=SECRET)
    assert config_read()["redundancy.database_uuid"]
    response = post(admin_client, mode="slave", peer="10.0.0.1", secret="")
    assert response.status_code == 302
    assert config_read()["redundancy.database_uuid"] == ""


def test_reset_uuid_on_a_master_generates_a_new_one(admin_client):
    post(admin_client, mode="master", peer="10.0.0.2", secret=SECRET)
    old = config_read()["redundancy.database_uuid"]
    response = admin_client.post(reverse("database_uuid_reset"), {"password": PASSWORD},
                                 follow=True)  # fmt: skip
    new = config_read()["redundancy.database_uuid"]
    assert new and new != old
    assert f"New database UUID: {new}" in response.text


def test_reset_uuid_on_a_backup_empties_it_to_be_fetched_from_the_master(admin_client):
    config_update(
        changes={
            "redundancy.mode": "slave",
            "redundancy.peer": "10.0.0.1",
            "redundancy.secret": SECRET,
            "redundancy.database_uuid": "123e4567-e89b-12d3-a456-426614174000",
        },
        actor="test",
    )
    response = admin_client.post(reverse("database_uuid_reset"), {"password": PASSWORD},
                                 follow=True)  # fmt: skip
    assert config_read()["redundancy.database_uuid"] == ""
    assert "fetched from the master" in response.text


def test_reset_uuid_asks_for_the_password_again_and_changes_nothing_without_it(admin_client):
    post(admin_client, mode="master", peer="10.0.0.2", secret=SECRET)
    old = config_read()["redundancy.database_uuid"]
    for password in ("", "not-my-password"):
        response = admin_client.post(reverse("database_uuid_reset"), {"password": password},
                                     follow=True)  # fmt: skip
        assert "Your password was not right: nothing changed." in response.text
    assert config_read()["redundancy.database_uuid"] == old


def test_reset_uuid_needs_a_post(admin_client):
    assert admin_client.get(reverse("database_uuid_reset")).status_code == 405
