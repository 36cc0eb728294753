"""Every page needs a login; writes need CSRF; an initial password must be changed."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import PasswordChangeRequired

pytestmark = pytest.mark.django_db

PUBLIC = {"login"}


def named_urls(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from named_urls(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name and "<" not in str(entry.pattern):
            yield entry.name, "/" + prefix + str(entry.pattern)


def test_the_url_walk_finds_the_pages():
    names = {name for name, _ in named_urls()}
    assert {"status", "user_list", "redundancy_settings", "event_list", "node_header"} <= names


def is_peer_api(path):
    return path.startswith("/api/peer/")


def is_device_api(path):
    return path.startswith("/basestations/api/")


@pytest.mark.parametrize(
    ("name", "path"),
    [
        u
        for u in named_urls()
        if u[0] not in PUBLIC and not is_peer_api(u[1]) and not is_device_api(u[1])
    ],
)
def test_every_page_redirects_an_anonymous_visitor_to_login(client, name, path):
    response = client.get(path)
    assert response.status_code == 302, name
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "path"), [u for u in named_urls() if is_peer_api(u[1])])
def test_every_peer_api_endpoint_refuses_an_unsigned_request(client, name, path):
    response = client.post(path, b"{}", content_type="application/json")
    assert response.status_code == 401, name
    assert "error" in response.json()


def test_the_login_page_is_public(client):
    assert client.get(reverse("login")).status_code == 200


def test_a_post_without_csrf_token_is_refused(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("redundancy_settings"), {"mode": "single", "failover_time": "9"})
    assert response.status_code == 403


def test_an_account_with_its_initial_password_must_change_it_first(client):
    user = get_user_model().objects.create_superuser("admin", password="initial-pw-1")
    PasswordChangeRequired.objects.create(user=user)
    login = client.post(reverse("login"), {"username": "admin", "password": "initial-pw-1"})
    assert login.status_code == 302

    response = client.get(reverse("user_list"))
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change")
    assert "still has its initial password" in client.get(reverse("password_change")).text

    response = client.post(
        reverse("password_change"),
        {
            "old_password": "initial-pw-1",
            "new_password1": "a much better one 77",
            "new_password2": "a much better one 77",
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("user_list")).status_code == 200
    assert not PasswordChangeRequired.objects.filter(user=user).exists()


def test_the_device_keepalive_refuses_an_unsigned_device(client):
    response = client.post(reverse("device_keepalive"), b"{}", content_type="application/json")
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_the_device_probe_answers_without_a_login_and_tells_nothing(client):
    response = client.get(reverse("device_probe"))
    assert response.status_code == 200


HTMX = {"HTTP_HX_REQUEST": "true"}


def test_a_live_fragment_of_an_expired_session_sends_the_whole_page_to_login(client):
    response = client.get(reverse("node_header"), **HTMX)
    # Not a 302 that htmx would follow and swap the login page into the header.
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert response.content == b""


def test_a_live_fragment_before_the_initial_password_is_changed_sends_the_page_there(client):
    user = get_user_model().objects.create_superuser("admin", password="initial-pw-1")
    PasswordChangeRequired.objects.create(user=user)
    client.force_login(user)
    response = client.get(reverse("node_header"), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("password_change")


def test_a_boosted_request_is_redirected_as_usual(client):
    response = client.get(reverse("user_list"), HTTP_HX_BOOSTED="true", **HTMX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
