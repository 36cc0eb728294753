"""Administration > Administrators: accounts added, disabled, deleted, given a role and a
new password on the master with a change-log entry each; the last enabled administrator
stays; on the backup and during a failover the page is read-only and writes are 423."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import PasswordChangeRequired
from core.models import ChangeLogEntry, Event, Phase
from core.rules import LOCK_FAILOVER
from tests.redundancy.test_replication_fakes import become_backup, become_master

pytestmark = pytest.mark.django_db

MINE = "correct horse 42"  # alice's password (tests/conftest.py)
NEW = "Ward seven rounds 9"


def add(client, username="bob", role="operator", password=MINE):
    return client.post(
        reverse("administrator_add"),
        {"username": username, "role": role, "new_password": NEW, "new_password_again": NEW,
         "password": password},
    )  # fmt: skip


def change(client, username, action, password=MINE, new=""):
    return client.post(
        reverse("administrator_change"),
        {"username": username, "action": action, "new_password": new,
         "new_password_again": new, "password": password},
    )  # fmt: skip


def entries(key):
    return list(ChangeLogEntry.objects.filter(entity="admin_account", key=key).order_by("seq"))


def test_an_added_account_is_replicated_and_must_change_its_password(admin_client):
    become_master()
    assert add(admin_client).status_code == 302
    bob = get_user_model().objects.get(username="bob")
    assert not bob.is_superuser and bob.check_password(NEW)
    assert PasswordChangeRequired.objects.filter(user=bob).exists()
    (entry,) = entries("bob")
    assert entry.op == "upsert" and entry.data["is_superuser"] is False
    assert entry.data["password_change_required"] is True
    assert NEW not in str(entry.data)
    event = Event.objects.get(kind="admin_account", message__contains="bob added")
    assert event.actor == "alice"
    page = admin_client.get(reverse("administrator_list")).text
    assert 'data-account="bob"' in page and "to be changed at the next login" in page


def test_a_wrong_own_password_changes_nothing(admin_client):
    response = add(admin_client, password="not mine")
    assert response.status_code == 400
    assert "Your password was not right" in response.text
    assert not get_user_model().objects.filter(username="bob").exists()


def test_bad_input_is_named_at_its_field_and_changes_nothing(admin_client):
    response = add(admin_client, username="alice")
    assert response.status_code == 400 and "exists already" in response.text
    response = admin_client.post(
        reverse("administrator_add"),
        {"username": "carol", "role": "operator", "new_password": "123",
         "new_password_again": "123", "password": MINE},
    )  # fmt: skip
    assert response.status_code == 400 and 'data-error-for="new_password"' in response.text
    response = change(admin_client, "alice", "reset")
    assert response.status_code == 400 and "a reset needs the new password" in response.text
    assert get_user_model().objects.count() == 1 and not ChangeLogEntry.objects.exists()


def test_disable_role_reset_and_delete_are_replicated(admin_client):
    become_master()
    add(admin_client)
    assert change(admin_client, "bob", "disable").status_code == 302
    assert not get_user_model().objects.get(username="bob").is_active
    assert change(admin_client, "bob", "enable").status_code == 302
    assert change(admin_client, "bob", "administrator").status_code == 302
    assert get_user_model().objects.get(username="bob").is_superuser
    assert change(admin_client, "bob", "reset", new="Another ward 12 pw").status_code == 302
    bob = get_user_model().objects.get(username="bob")
    assert bob.check_password("Another ward 12 pw")
    assert PasswordChangeRequired.objects.filter(user=bob).exists()
    assert change(admin_client, "bob", "delete").status_code == 302
    assert not get_user_model().objects.filter(username="bob").exists()
    states = [(e.op, e.data.get("is_active"), e.data.get("is_superuser")) for e in entries("bob")]
    assert states == [
        ("upsert", True, False), ("upsert", False, False), ("upsert", True, False),
        ("upsert", True, True), ("upsert", True, True), ("delete", None, None),
    ]  # fmt: skip


def test_a_disabled_account_cannot_log_in(admin_client):
    add(admin_client)
    response = Client().post(reverse("login"), {"username": "bob", "password": NEW})
    assert response.status_code == 302
    change(admin_client, "bob", "disable")
    response = Client().post(reverse("login"), {"username": "bob", "password": NEW})
    assert response.status_code == 200  # the login form again


@pytest.mark.parametrize("action", ["disable", "operator", "delete"])
def test_the_last_administrator_cannot_be_removed(admin_client, action):
    add(admin_client)  # bob is an operator: alice is the only administrator
    response = change(admin_client, "alice", action)
    assert response.status_code == 400
    assert "alice is the last enabled administrator" in response.text
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_active and alice.is_superuser
    # With a second administrator the first one may go.
    change(admin_client, "bob", "administrator")
    assert change(admin_client, "alice", action).status_code == 302


def test_a_disabled_administrator_does_not_count(admin_client):
    add(admin_client, role="administrator")
    change(admin_client, "bob", "disable")
    response = change(admin_client, "alice", "operator")
    assert "last enabled administrator" in response.text


def test_on_the_backup_the_page_is_read_only_and_writes_are_423(admin_client):
    become_backup()
    page = admin_client.get(reverse("administrator_list")).text
    assert "Read-only here: this server is the backup: administrator accounts are managed" in page
    assert "Add account</button>" not in page
    response = add(admin_client)
    assert response.status_code == 423 and "managed on the master" in response.text
    assert change(admin_client, "alice", "disable").status_code == 423
    assert get_user_model().objects.count() == 1 and not ChangeLogEntry.objects.exists()


def test_during_a_failover_the_page_is_read_only_and_writes_are_423(admin_client):
    become_backup(phase=Phase.FAILOVER)
    assert LOCK_FAILOVER in admin_client.get(reverse("administrator_list")).text
    assert add(admin_client).status_code == 423
    assert not get_user_model().objects.filter(username="bob").exists()


def test_a_backup_that_has_not_joined_keeps_its_own_accounts_as_before(admin_client):
    # The existing account rule: changed here only, replaced by the master's at the
    # first snapshot; nothing enters the change log.
    become_backup(phase=Phase.PEER_LOST)
    assert add(admin_client).status_code == 302
    assert get_user_model().objects.filter(username="bob").exists()
    assert not ChangeLogEntry.objects.exists()
