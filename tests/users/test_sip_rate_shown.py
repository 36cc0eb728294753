"""The rate the SIP process uses shows: Configuration > SIP and the Status page read what
it recorded (users.registration.sip_rate_record), and a takeover's event says how long
its re-registration took at what rate."""

import re
import time

import pytest
from django.urls import reverse

from core.models import Event
from core.services import config_update
from users.registration import PbxSettings, sip_rate_record, takeover_reregistration_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("licensed")]


def field(page: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">([^<]*)<', page)
    assert match, f"no {name} in the page"
    return match.group(1).strip()


@pytest.fixture
def registrar():
    config_update(changes={"sip.registrar": "127.0.0.1:5060"}, actor="test")
    from users.models import PbxLink

    PbxLink.objects.update_or_create(pk=1, defaults={"registrar": "127.0.0.1:5060"})


def test_the_adaptive_rate_and_its_reason_show_on_the_sip_and_status_pages(registrar, admin_client):
    sip_rate_record(rate=425.4, reason="backing off: 503 from the PBX", changed_at=time.time())
    shown = "425 REGISTERs per second (adaptive, up to 10000): backing off: 503 from the PBX"
    assert field(admin_client.get(reverse("sip_settings")).text, "sip-rate") == shown
    assert field(admin_client.get(reverse("status")).text, "sip-rate") == shown


def test_a_fixed_rate_says_so(registrar, admin_client):
    config_update(changes={"sip.rate": "100"}, actor="test")
    sip_rate_record(rate=100, reason="fixed (sip.rate)", changed_at=time.time())
    page = admin_client.get(reverse("sip_settings")).text
    assert field(page, "sip-rate") == "100 registrations per second (fixed: sip.rate)"


def test_without_a_pbx_or_before_the_sip_process_recorded_it_no_rate_shows(admin_client):
    assert 'data-field="sip-rate"' not in admin_client.get(reverse("sip_settings")).text
    sip_rate_record(rate=425, reason="backing off: 503 from the PBX", changed_at=time.time())
    assert 'data-field="sip-rate"' not in admin_client.get(reverse("status")).text


def test_the_takeover_event_says_how_long_and_at_what_rate():
    pbx = PbxSettings(server=("10.0.0.5", 5060), transport="udp", domain="", rate="auto",
                      rate_max=10000, expires=300)  # fmt: skip
    takeover_reregistration_record(users=2000, took=0.84, requests=4000, pbx=pbx, rate=10000,
                                   reason="at the ceiling: the PBX answers promptly")  # fmt: skip
    assert Event.objects.get(kind="sip").message == (
        "Failover re-registration: 2000 users registered with 10.0.0.5:5060 in 0.84 s, "
        "4762 REGISTERs per second (adaptive rate 10000/s now: at the ceiling: the PBX "
        "answers promptly)"
    )
    fixed = PbxSettings(**{**pbx.__dict__, "rate": 100})
    takeover_reregistration_record(users=10, took=0.1, requests=20, pbx=fixed, rate=100,
                                   reason="fixed (sip.rate)")  # fmt: skip
    assert (
        Event.objects.filter(kind="sip")
        .latest("id")
        .message.endswith("(fixed rate 100 registrations per second)")
    )
