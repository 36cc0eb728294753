"""Configuration > SIP: the PBX settings through config_update (each refused value beside
its field, nothing saved then), read-only with the reason on a backup and in a failover
(a POST gets 423), and the registration state of this server, which the page polls."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import ConfigValue, Event, Phase
from core.selectors import config_read
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_backup, become_master
from users.models import DectUser, PbxLink, SipRegistration
from users.registration import PbxSettings, pbx_switch_record
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

URL = reverse("sip_settings")
GOOD = {"registrar": "pbx.example.com:5070", "transport": "tcp", "domain": "example.com",
        "rate": "50", "rate_max": "10000", "expires": "600"}  # fmt: skip
SIP_KEYS = ("sip.registrar", "sip.transport", "sip.domain", "sip.rate", "sip.rate_max",
            "sip.expires")  # fmt: skip


def sip_values() -> dict:
    values = config_read()
    return {key: values[key] for key in SIP_KEYS}


def fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="([^"]+)"[^>]*>([^<]*)<', page))


def test_the_page_shows_the_settings_and_what_an_empty_registrar_means(admin_client):
    config_update(changes={"sip.registrar": "10.0.0.5", "sip.domain": "corp.example"},
                  actor="test")  # fmt: skip
    page = admin_client.get(URL).text
    assert 'value="10.0.0.5"' in page and 'value="corp.example"' in page
    assert 'value="auto"' in page and 'value="10000"' in page and 'value="300"' in page
    assert "An empty registrar means no PBX: neither server registers" in page
    assert '<button type="submit">Save</button>' in page and "Read-only here" not in page


def test_valid_settings_are_saved_and_replicated_with_an_event(admin_client):
    response = admin_client.post(URL, GOOD, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert sip_values() == {"sip.registrar": "pbx.example.com:5070", "sip.transport": "tcp",
                            "sip.domain": "example.com", "sip.rate": 50, "sip.rate_max": 10000,
                            "sip.expires": 600}  # fmt: skip
    assert "SIP settings saved." in response.text
    assert "This server registers its users again with pbx.example.com:5070" in response.text
    event = Event.objects.filter(kind="config").latest("id")
    assert "sip.registrar=pbx.example.com:5070" in event.message and event.actor == "alice"


def test_an_empty_registrar_is_saved_and_says_users_are_not_registered(admin_client):
    config_update(changes={"sip.registrar": "10.0.0.5"}, actor="test")
    response = admin_client.post(URL, {**GOOD, "registrar": ""}, follow=True)
    assert config_read()["sip.registrar"] == ""
    assert "No registrar: this server un-registers its users" in response.text


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("registrar", "pbx example", "'pbx example' is not a host name or IP address"),
        ("registrar", "10.0.0.5:70000", "port '70000' is not a number from 1 to 65535"),
        ("registrar", "999.1.1.1", "'999.1.1.1' is not a valid IPv4 address"),
        ("transport", "sctp", "'sctp' is not a SIP transport; use udp or tcp"),
        ("domain", "bad_domain!", "'bad_domain!' is not a host name or IP address"),
        ("rate", "fast", "'fast' is not a rate; use auto or 1 to 10000 registrations per second"),
        ("rate", "0", "0 is out of range; use 1 to 10000 registrations per second (or auto)"),
        ("rate", "", "'' is not a rate; use auto or 1 to 10000 registrations per second"),
        ("rate_max", "5", "5 is out of range; use 10 to 100000 REGISTERs per second"),
        ("expires", "59", "59 is out of range; use 60 to 86400 seconds"),
        ("expires", "1.5", "'1.5' is not a whole number of seconds"),
    ],
)
def test_a_bad_value_is_refused_beside_its_field_and_nothing_is_saved(
    admin_client, field, value, rule
):
    before = sip_values()
    response = admin_client.post(URL, {**GOOD, field: value})
    assert response.status_code == 200
    errors = dict(re.findall(r'data-error-for="([^"]+)">[^:]+: ([^<]*)<', response.text))
    assert errors == {field: rule.replace("'", "&#x27;")}
    assert sip_values() == before  # the valid fields of the same form are not saved either
    assert not Event.objects.filter(kind="config", actor="alice").exists()


def test_every_bad_value_of_one_form_is_named_at_once(admin_client):
    bad = {"registrar": "a b", "transport": "x", "domain": "-x-", "rate": "0", "rate_max": "x",
           "expires": "1"}  # fmt: skip
    response = admin_client.post(URL, bad)
    assert set(re.findall(r'data-error-for="([^"]+)"', response.text)) == set(bad)
    assert not ConfigValue.objects.filter(key__startswith="sip.").exists()


@pytest.mark.parametrize("phase", [Phase.NORMAL, Phase.FAILOVER])
def test_a_backup_shows_the_masters_values_read_only_and_answers_a_post_with_423(
    admin_client, phase
):
    ConfigValue.objects.create(key="sip.registrar", value="pbx.example.com")  # replicated
    become_backup(phase=phase)
    reason = (
        "failover: the master is lost" if phase == Phase.FAILOVER else "this server is the backup"
    )
    page = admin_client.get(URL).text
    assert f"Read-only here: {reason}" in page
    assert '<fieldset class="plain" disabled>' in page and 'value="pbx.example.com"' in page
    assert '<button type="submit">Save</button>' not in page
    for data in (GOOD, {**GOOD, "rate": "fast"}):  # locked before the values are looked at
        response = admin_client.post(URL, data)
        assert response.status_code == 423
        assert reason in response.text
    assert config_read()["sip.registrar"] == "pbx.example.com"
    assert config_read()["sip.rate"] == "auto"


def test_a_master_may_change_the_settings(admin_client):
    become_master()
    assert admin_client.post(URL, GOOD).status_code == 302
    assert config_read()["sip.registrar"] == "pbx.example.com:5070"


def test_the_page_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- the registration state of this server -----------------------------------------


def registrations(**states: int) -> None:
    """Users handled here (a single server handles all) in the given states."""
    now = timezone.now()
    n = 0
    for state, count in states.items():
        for _ in range(count):
            user = dect_user_create(actor="test", extension=str(3000 + n))
            n += 1
            if state != "none":
                SipRegistration.objects.create(
                    user=user, state=state, changed_at=now - timedelta(seconds=n),
                    reason="403 Forbidden" if state == "failed" else "",
                )  # fmt: skip


def test_the_state_summary_counts_the_users_of_this_server_and_names_the_pbx(admin_client):
    config_update(changes={"sip.registrar": "127.0.0.1:5070"}, actor="test")
    PbxLink.objects.create(pk=1, registrar="127.0.0.1:5070", transport="udp",
                           since=timezone.now())  # fmt: skip
    registrations(registered=3, pending=2, failed=1, unregistered=1, none=2)
    state = fields(admin_client.get(URL).text)
    assert state["pbx"].startswith("127.0.0.1:5070 over UDP")
    assert (state["handled"], state["registered"], state["pending"], state["failed"]) == (
        "9", "3", "2", "1",
    )  # fmt: skip
    assert state["unregistered"] == "3"  # one un-registered, two never tried
    assert state["last-error"].startswith("403 Forbidden")
    assert state["sip-progress"] == "Registering with 127.0.0.1:5070: 3 of 9 registered"


def test_the_summary_is_a_fragment_the_page_polls(admin_client):
    registrations(registered=1)
    page = admin_client.get(URL).text
    assert 'hx-get="/configuration/sip/" hx-trigger="every 2s"' in page
    fragment = admin_client.get(URL, HTTP_HX_REQUEST="true").text
    assert fragment.startswith('<section id="sip-state"') and "<form" not in fragment
    assert fields(fragment)["registered"] == "1"
    assert fields(fragment)["last-error"] == "none"
    assert "sip-progress" not in fragment  # nobody waits for an answer


def test_without_a_registrar_the_summary_says_users_are_not_registered(admin_client):
    registrations(none=2)
    assert fields(admin_client.get(URL).text)["pbx"] == (
        "none (no registrar): users are not registered"
    )


# --- a switch of PBX resets the states ----------------------------------------------


def pbx(port: int) -> PbxSettings:
    return PbxSettings(server=("127.0.0.1", port), transport="udp", domain="", rate=100,
                       rate_max=10000, expires=300)  # fmt: skip


@pytest.mark.django_db(transaction=True)  # it closes stale connections as the SIP process
def test_a_switch_of_pbx_resets_the_states_so_the_progress_starts_from_none():
    registrations(registered=3, failed=1, unregistered=1)
    assert pbx_switch_record(pbx=pbx(5070), previous=pbx(5060)) == 4
    states = dict(SipRegistration.objects.values_list("user__extension", "state"))
    assert sorted(states.values()) == ["pending"] * 4 + ["unregistered"]
    link = PbxLink.load()
    assert (link.registrar, link.previous) == ("127.0.0.1:5070", "127.0.0.1:5060")
    assert Event.objects.filter(kind="sip").get().message == (
        "PBX changed from 127.0.0.1:5060: re-registering users with 127.0.0.1:5070"
    )
    from users.selectors import sip_summary

    config_update(changes={"sip.registrar": "127.0.0.1:5070"}, actor="test")
    assert sip_summary().progress == "re-registering with 127.0.0.1:5070: 0 of 5 registered"


@pytest.mark.django_db(transaction=True)  # it closes stale connections as the SIP process
def test_a_switch_to_no_pbx_leaves_every_user_not_registered():
    registrations(registered=2, pending=1)
    assert pbx_switch_record(pbx=None, previous=pbx(5060)) == 3
    assert set(SipRegistration.objects.values_list("state", flat=True)) == {"unregistered"}
    assert PbxLink.load().registrar == ""
    assert Event.objects.filter(kind="sip").get().message == (
        "No registrar: users un-registered from 127.0.0.1:5060"
    )
    # The SIP process starting is no change of PBX.
    pbx_switch_record(pbx=pbx(5060), previous=None)
    assert Event.objects.filter(kind="sip").count() == 1
    assert DectUser.objects.count() == 3


def test_a_new_rate_or_expiry_alone_says_registered_users_stay_registered(admin_client):
    admin_client.post(URL, GOOD)
    response = admin_client.post(URL, {**GOOD, "rate": "20", "expires": "900"}, follow=True)
    assert "registered users stay registered" in response.text
    assert "register its users again" not in response.text
    assert (config_read()["sip.rate"], config_read()["sip.expires"]) == (20, 900)
    response = admin_client.post(URL, {**GOOD, "rate": "20", "expires": "900"}, follow=True)
    assert "Nothing changed." in response.text
    response = admin_client.post(URL, {**GOOD, "rate": " Auto ", "expires": "900"}, follow=True)
    assert "registered users stay registered" in response.text
    assert config_read()["sip.rate"] == "auto"
