"""session_login is checked like a GUI login: the same failure count and lockout."""

import pytest
from django.contrib.auth import get_user_model

from core.models import Event
from messaging.server import _login_check

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_api_logins_lock_the_account_like_failed_gui_logins(settings, client):
    get_user_model().objects.create_user("nurse-app", password="right-Passw0rd-1")
    assert _login_check("nurse-app", "right-Passw0rd-1", "127.0.0.7")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert not _login_check("nurse-app", "wrong", "127.0.0.7")
    # Locked out now: the right password is refused too, from this address, and the event
    # log says so as it does for the GUI.
    assert not _login_check("nurse-app", "right-Passw0rd-1", "127.0.0.7")
    assert Event.objects.filter(kind="login_lockout", message__contains="nurse-app").exists()
    # Another address is not locked (the lockout is per account and address).
    assert _login_check("nurse-app", "right-Passw0rd-1", "127.0.0.8")


def test_the_state_the_api_reads_names_the_enabled_accounts():
    from messaging.server import _read_state

    get_user_model().objects.create_user("nurse-app", password="right-Passw0rd-1")
    get_user_model().objects.create_user("old-app", password="right-Passw0rd-1", is_active=False)
    *_, accounts = _read_state(True)
    assert accounts == frozenset({"nurse-app"})
    assert _read_state(False)[4] is None
