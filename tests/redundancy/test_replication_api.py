"""Replication's peer endpoints over signed HTTP, and admin accounts on each route."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts import services as accounts_services
from accounts.models import PasswordChangeRequired
from accounts.services import admin_password_set
from core.changelog import changelog_head
from core.locks import Locked
from core.models import ChangeLogEntry, NodeState, Phase
from redundancy import api as redundancy_api
from redundancy import follower
from redundancy.models import ReplicationState
from tests.peer import peer_send
from tests.redundancy.test_replication_fakes import (
    SECRET,
    UUID,
    become_backup,
    become_master,
)
from users.services import dect_user_create

pytestmark = pytest.mark.django_db


def peer(method: str, path: str, payload=None):
    return peer_send(path, payload, secret=SECRET, method=method)[0]


def test_the_master_serves_its_changes_after_a_position_and_notes_the_backups_position():
    become_master()
    for n in range(3):
        dect_user_create(actor="alice", extension=f"200{n}")
    # Each create is two entries: the user and its audit record.
    answer = peer("GET", "/api/peer/changes?after=2&limit=1").json()
    assert answer["database_uuid"] == UUID and answer["head"] == 6
    assert [e["seq"] for e in answer["entries"]] == [3]
    assert answer["entries"][0]["data"]["extension"] == "2001"
    assert ReplicationState.load().peer_position == 2


@pytest.mark.parametrize(
    "path", ["/api/peer/changes?after=x", "/api/peer/changes?after=0&limit=0",
             "/api/peer/changes?after=-1"],
)  # fmt: skip
def test_bad_positions_are_refused(path):
    become_master()
    assert peer("GET", path).status_code == 400


def test_the_master_serves_a_snapshot_of_every_replicated_table():
    become_master()
    get_user_model().objects.create_superuser("admin", password="pw-123456789")
    dect_user_create(actor="alice", extension="2001")
    answer = peer("GET", "/api/peer/snapshot").json()
    assert answer["head"] == 2 and answer["database_uuid"] == UUID  # the user, its record
    assert [u["extension"] for u in answer["entities"]["user"]] == ["2001"]
    assert [a["username"] for a in answer["entities"]["admin_account"]] == ["admin"]


def test_only_a_master_serves_changes_and_snapshots():
    become_backup()
    assert peer("GET", "/api/peer/changes?after=0").status_code == 409
    assert peer("GET", "/api/peer/snapshot").status_code == 409
    assert peer("POST", "/api/peer/snapshot", {}).status_code == 405


def test_an_unsigned_request_gets_nothing():
    become_master()
    dect_user_create(actor="alice", extension="2001")
    response = Client().get("/api/peer/changes?after=0")
    assert response.status_code == 401 and "entries" not in response.json()


def test_a_nudge_makes_the_backup_pull_and_answer_its_position(monkeypatch):
    become_backup()
    ReplicationState.objects.create(pk=1, position=41)
    pulls = []

    def pull(*, nudged):
        pulls.append(nudged)
        ReplicationState.objects.filter(pk=1).update(position=42)
        return follower.PullResult("applied", 42, applied=1)

    monkeypatch.setattr(redundancy_api, "replication_pull", pull)
    answer = peer("POST", "/api/peer/nudge", {"head": 42}).json()
    assert answer["position"] == 42 and pulls == [True]


# --- Admin accounts -------------------------------------------------------------


@pytest.fixture
def admin(db):
    user = get_user_model().objects.create_superuser("admin", password="initial-pw-1")
    PasswordChangeRequired.objects.create(user=user)
    return user


def change_password(client: Client):
    return client.post(reverse("password_change"), {
        "old_password": "initial-pw-1", "new_password1": "a much better one 77",
        "new_password2": "a much better one 77",
    })  # fmt: skip


def test_a_password_change_on_the_master_is_replicated(admin, client):
    become_master()
    client.force_login(admin)
    assert change_password(client).status_code == 302
    entry = ChangeLogEntry.objects.get(entity="admin_account")
    assert entry.key == "admin" and entry.data["password_change_required"] is False
    admin.refresh_from_db()
    assert entry.data["password"] == admin.password and admin.check_password("a much better one 77")
    assert client.get(reverse("user_list")).status_code == 200  # still logged in


def test_a_backup_that_has_not_joined_changes_its_own_account_locally(admin, client):
    become_backup(phase=Phase.SINGLE)
    ReplicationState.objects.create(
        pk=1, master_uuid=UUID, master_log_id="some-log", position=5,
        local_log_id=changelog_head().log_id,
    )  # fmt: skip
    at_position = follower._Page(database_uuid=UUID, log_id="some-log", head=5)
    assert follower._resync_reason(ReplicationState.load(), at_position) == ""
    client.force_login(admin)
    assert change_password(client).status_code == 302
    assert not ChangeLogEntry.objects.exists()
    assert not PasswordChangeRequired.objects.exists()
    # its next pull resyncs
    assert follower._resync_reason(ReplicationState.load(), at_position)


def test_a_joined_backup_forwards_a_password_change_to_the_master(admin, client, monkeypatch):
    become_backup()
    forwarded = []
    monkeypatch.setattr(accounts_services, "_admin_forward", forwarded.append)
    client.force_login(admin)
    assert change_password(client).status_code == 302
    assert forwarded[0]["username"] == "admin"
    admin.refresh_from_db()
    assert forwarded[0] == {"username": "admin", "password": admin.password}  # nothing else
    assert not ChangeLogEntry.objects.exists()


def test_a_joined_backup_that_cannot_reach_the_master_changes_nothing(admin, client):
    become_backup()  # its peer 127.0.0.1:9 does not answer
    client.force_login(admin)
    response = change_password(client)
    assert response.status_code == 423
    assert "could not reach the master" in response.text
    admin.refresh_from_db()
    assert admin.check_password("initial-pw-1")


def test_nothing_changes_on_a_backup_in_failover(admin):
    become_backup(phase=Phase.FAILOVER)
    NodeState.objects.filter(pk=1).update(locked=True, lock_reason="failover: master lost")
    with pytest.raises(Locked, match="failover"):
        admin_password_set(user=admin, password="another-one-99", actor="admin")


def test_the_master_accepts_a_forwarded_password_change():
    become_master()
    user = get_user_model().objects.create_superuser("admin", password="initial-pw-1")
    PasswordChangeRequired.objects.create(user=user)
    user.set_password("from-the-backup-1")
    response = peer("POST", "/api/peer/admin_account",
                    {"username": "admin", "password": user.password})  # fmt: skip
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password("from-the-backup-1")
    assert not PasswordChangeRequired.objects.exists()
    assert response.json()["seq"] == ChangeLogEntry.objects.get(entity="admin_account").seq


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"username": "mallory", "password": make_password("x-pw-12345")}, 404),
        ({"username": "mallory", "password": "!", "is_active": True, "is_staff": True,
          "is_superuser": True, "first_name": "", "last_name": "", "email": "",
          "password_change_required": False}, 400),
        ({"username": "admin", "password": make_password("x-pw-12345"), "is_superuser": True},
         400),
        ({"username": "admin", "password": "plain-text-password"}, 400),
        ({"username": ["admin"], "password": make_password("x")}, 400),
        ([], 400),
    ],
)  # fmt: skip
def test_the_forwarded_change_creates_no_account_and_changes_no_flag(payload, status):
    become_master()
    get_user_model().objects.create_user("admin", password="initial-pw-1")
    response = peer("POST", "/api/peer/admin_account", payload)
    assert response.status_code == status
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert not get_user_model().objects.filter(is_superuser=True).exists()
    assert get_user_model().objects.get(username="admin").check_password("initial-pw-1")
    assert not ChangeLogEntry.objects.exists()


def test_kwsinit_records_the_admin_it_creates_on_a_master():
    become_master()
    call_command("kwsinit", "--admin=root", "--admin-password=initial-pw-1")
    entry = ChangeLogEntry.objects.get(entity="admin_account")
    assert (entry.entity, entry.key, entry.data["password_change_required"]) == (
        "admin_account", "root", True,
    )  # fmt: skip


def test_kwsinit_on_a_backup_creates_a_local_admin():
    become_backup(phase=Phase.SINGLE)
    call_command("kwsinit", "--admin=root", "--admin-password=initial-pw-1")
    assert get_user_model().objects.filter(username="root").exists()
    assert not ChangeLogEntry.objects.exists()
