"""Hardened pages and logins: failed logins are throttled and locked out, idle sessions
end, every page carries a strict Content-Security-Policy and no inline script, and
values full of quotes, angle brackets and ``</script>`` are escaped everywhere."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from basestations.services import basestation_create
from core.models import Event
from kws_admin.middleware import IdleSessionMiddleware
from tests.kws_admin.test_access import is_device_api, is_peer_api, named_urls
from users.services import dect_user_create

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-1"
EVIL = "\"'><script>alert(1)</script>"


@pytest.fixture
def account(db):
    return get_user_model().objects.create_superuser("alice", password=PASSWORD)


def login(client: Client, password: str, address: str = "10.0.0.7"):
    return client.post(reverse("login"), {"username": "alice", "password": password},
                       REMOTE_ADDR=address)  # fmt: skip


def test_ten_failed_logins_lock_the_account_out_from_that_address(account, settings):
    client = Client()
    statuses = [login(client, f"guess-{n}").status_code for n in range(10)]
    assert statuses[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert statuses[-1] == 429
    # Locked: even the right password is refused from there, for the cool-off time...
    locked = login(client, PASSWORD)
    assert locked.status_code == 429 and "Sign-in locked" in locked.text
    event = Event.objects.get(kind="login_lockout")
    assert "alice" in event.message and "10.0.0.7" in event.message
    assert PASSWORD not in event.message and "guess" not in event.message
    # ... but not from another address (an attacker cannot lock an administrator out).
    assert login(Client(), PASSWORD, address="10.0.0.8").status_code == 302


def test_a_local_command_lifts_a_lockout_at_once(account, settings):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, f"guess-{n}")
    assert login(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "alice")
    assert login(client, PASSWORD).status_code == 302


def test_a_session_ends_after_the_idle_time_but_not_while_only_polling(account, settings):
    client = Client()
    assert login(client, PASSWORD).status_code == 302
    assert client.get(reverse("status")).status_code == 200
    session = client.session
    session[IdleSessionMiddleware.ACTIVE] -= settings.SESSION_IDLE_SECONDS - 5
    session.save()
    # The header polls on its own: that is no activity, the session stays as it was.
    assert client.get(reverse("node_header"), HTTP_X_KWS_POLL="1").status_code == 200
    session = client.session
    # Now past the idle time and the stamp's resolution (the stamp may be that stale).
    session[IdleSessionMiddleware.ACTIVE] -= 10 + IdleSessionMiddleware.resolution()
    session.save()
    response = client.get(reverse("status"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.get(reverse("status")).status_code == 302  # logged out


def test_the_activity_stamp_is_rewritten_once_it_is_a_resolution_old(account, settings):
    client = Client()
    assert login(client, PASSWORD).status_code == 302
    assert client.get(reverse("status")).status_code == 200
    first = client.session[IdleSessionMiddleware.ACTIVE]
    assert client.get(reverse("status")).status_code == 200
    assert client.session[IdleSessionMiddleware.ACTIVE] == first  # no session write
    session = client.session
    session[IdleSessionMiddleware.ACTIVE] -= IdleSessionMiddleware.resolution()
    session.save()
    assert client.get(reverse("status")).status_code == 200
    assert client.session[IdleSessionMiddleware.ACTIVE] > first
    # A short idle time gets a finer stamp: a tenth of it.
    settings.SESSION_IDLE_SECONDS = 60
    assert IdleSessionMiddleware.resolution() == 6


def test_every_page_has_a_strict_policy_and_no_inline_script(admin_client):
    for name, path in named_urls():
        if is_peer_api(path) or is_device_api(path) or name in ("logout",):
            continue
        response = admin_client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, name
        assert "frame-ancestors 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        html = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {name}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline handler in {name}"
        assert "javascript:" not in html, name


@pytest.fixture
def evil_values(licensed, admin_user):
    user = dect_user_create(actor="test", extension="2001", display_name=EVIL[:100])
    rfp = basestation_create(actor="test", name=EVIL[:64], mac="00:13:D1:0A:0B:01",
                             location=EVIL)  # fmt: skip
    return user, rfp


def test_every_page_escapes_values_full_of_quotes_and_script_tags(admin_client, evil_values):
    user, rfp = evil_values
    paths = [p for n, p in named_urls() if not is_peer_api(p) and not is_device_api(p)
             and n != "logout"]  # fmt: skip
    paths += [reverse("user_edit", args=[user.pk]), reverse("basestation_edit", args=[rfp.pk])]
    seen = 0
    for path in paths:
        response = admin_client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        assert "<script>alert(1)</script>" not in response.text, path
        seen += "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert seen >= 3  # the lists and the edit forms show the values, escaped


def test_the_cool_off_is_a_setting(settings):
    assert settings.AXES_COOLOFF_TIME >= timedelta(minutes=1)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
