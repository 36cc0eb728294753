"""An operator reads every page and makes only the few writes of the allow-list: every
other write of every URL is refused on the server with 403, whatever the page shows."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from accounts.access import OPERATOR_REFUSAL, OPERATOR_WRITES
from core.models import ChangeLogEntry
from messaging import rpc
from messaging.server import _login_check
from tests.kws_admin.test_access import is_device_api, is_peer_api, named_urls
from users.models import DectUser

pytestmark = pytest.mark.django_db


def every_url(resolver=None, prefix=""):
    """Every named URL, those with arguments too (given 1, or "x" for a string): the
    role rule refuses before any view looks the object up."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from every_url(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            path = "/" + prefix + str(entry.pattern)
            path = re.sub(r"<int:\w+>", "1", path)
            yield entry.name, re.sub(r"<(\w+:)?\w+>", "x", path)


PAGES = [u for u in every_url() if u[0] != "login" and not is_peer_api(u[1])]
PAGES = [u for u in PAGES if not is_device_api(u[1])]


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("oscar", password="operator pw 4711")


@pytest.fixture
def operator_client(operator):
    client = Client()
    client.force_login(operator)
    return client


def test_the_walk_reaches_every_page_those_with_arguments_too():
    names = {name for name, _ in PAGES}
    assert {"administrator_list", "administrator_add", "administrator_change"} <= names
    assert {"user_edit", "user_delete", "messaging_user_test"} <= names
    for name, path in PAGES:
        assert resolve(path).url_name == name, path


# Pages without arguments (those with arguments need their object).
READS = [u for u in named_urls() if u in PAGES]


@pytest.mark.parametrize(("name", "path"), READS)
def test_an_operator_reads_every_page(operator_client, name, path):
    response = operator_client.get(path)
    assert response.status_code != 403, name
    assert response.status_code < 500, name


@pytest.mark.parametrize(("name", "path"), [u for u in PAGES if u[0] not in OPERATOR_WRITES])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_every_other_write_of_an_operator_is_refused_with_403(operator_client, name, path, method):
    before = ChangeLogEntry.objects.count()
    response = getattr(operator_client, method)(path, {"password": "operator pw 4711"})
    assert response.status_code == 403, (name, method)
    assert "your account is an operator" in response.text
    assert ChangeLogEntry.objects.count() == before


def test_an_htmx_write_of_an_operator_gets_the_refusal_as_a_fragment(operator_client):
    response = operator_client.post(reverse("redundancy_settings"), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert OPERATOR_REFUSAL in response.text and "<html" not in response.text


def test_the_same_writes_of_an_administrator_pass_the_rule(admin_client):
    # Not refused by the role (the form itself may still be wrong: 400, not 403).
    response = admin_client.post(reverse("administrator_add"), {"username": "x"})
    assert response.status_code == 400


def test_an_operator_changes_his_own_password(operator_client, operator):
    response = operator_client.post(
        reverse("password_change"),
        {"old_password": "operator pw 4711", "new_password1": "a new operator pw 88",
         "new_password2": "a new operator pw 88"},
    )  # fmt: skip
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.check_password("a new operator pw 88")


def test_an_operator_sends_a_test_message_to_a_handset(operator_client):
    user = DectUser.objects.create(extension="2001", display_name="Ward 1")
    response = operator_client.post(
        reverse("messaging_user_test", args=[user.pk]), {"display": "hi"}
    )
    # Past the role rule: the page answers (here the message service is not running).
    assert response.status_code == 302 and response["Location"].endswith(f"/{user.pk}/")


def test_an_operator_may_log_in_to_the_xml_rpc_api_which_changes_no_configuration(operator):
    # The API sends messages and alarms and reads handset states; no method changes
    # configuration, so an operator account (an application's) may use all of it.
    assert _login_check("oscar", "operator pw 4711", "127.0.0.9")


# What /RPC2 offers: sessions, messages and alarms to handsets, calls and handset states.
# A method that changed configuration would have to refuse an operator's session: a new
# method fails this test until it is decided.
MESSAGING_METHODS = {
    "session_login", "session_logout", "session_receive", "endpoint_sms",
    "endpoint_sms_advanced", "endpoint_broadcast", "endpoint_base_stations",
    "endpoint_call_setup", "endpoint_call_accept", "endpoint_call_display",
    "endpoint_call_menu", "endpoint_call_prompt", "endpoint_call_release",
    "endpoint_hardware_extension", "endpoint_status",
}  # fmt: skip


def test_every_xml_rpc_method_is_messaging_which_an_operator_may_use():
    assert set(rpc.METHODS) == MESSAGING_METHODS


def test_pages_show_an_operator_why_they_are_read_only(operator_client):
    page = operator_client.get(reverse("user_list")).text
    assert "Read-only here: your account is an operator" in page
    page = operator_client.get(reverse("administrator_list")).text
    assert "Read-only here: your account is an operator" in page
    assert "Add account</button>" not in page


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        ("redundancy_settings", "Reset database UUID</button>"),
        ("license_list", "Install</button>"),
        ("user_import", "Import</button>"),
        ("phonebook_settings", "Test connection</button>"),
    ],
)
def test_pages_hide_their_write_controls_from_an_operator(
    operator_client, admin_client, name, hidden
):
    assert hidden in admin_client.get(reverse(name)).text
    page = operator_client.get(reverse(name)).text
    assert hidden not in page
    assert "Read-only here: your account is an operator" in page


def test_an_operator_reads_a_user_and_may_send_it_a_test_message_but_not_edit_it(
    operator_client,
):
    user = DectUser.objects.create(extension="2002", display_name="Ward 2")
    page = operator_client.get(reverse("user_edit", args=[user.pk]))
    assert page.status_code == 200
    assert "Read-only here: your account is an operator" in page.text
    assert reverse("messaging_user_test", args=[user.pk]) in page.text
    assert "Delete user</button>" not in page.text
