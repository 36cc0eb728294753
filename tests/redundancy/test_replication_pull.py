"""The backup's pull: batches in order, idempotent apply, resyncs, refusals, status."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from accounts.models import PasswordChangeRequired
from core.changelog import changelog_head
from core.models import ChangeLogEntry, ChangeLogHead, Event, Phase
from redundancy.follower import BATCH_SIZE, replication_pull
from redundancy.models import ReplicationState
from redundancy.selectors import replication_status
from tests.redundancy.test_replication_fakes import UUID, FakeMaster, become_backup, user_row
from users.models import DectUser

pytestmark = pytest.mark.django_db


def users() -> dict[int, dict]:
    return {row["id"]: row for row in DectUser.objects.values()}


@pytest.fixture
def master() -> FakeMaster:
    become_backup()
    return FakeMaster()


@pytest.fixture
def joined(master) -> FakeMaster:
    """A backup that took the master's (empty) snapshot at its first pull."""
    assert replication_pull(client=master).snapshots == 1
    master.requests.clear()
    return master


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda: become_backup(phase=Phase.PEER_LOST), "has not joined"),
        (lambda: become_backup(database_uuid=""), "no database UUID"),
        (lambda: None, "not a backup"),
    ],
)
def test_a_pull_does_nothing_unless_this_is_a_joined_backup_with_a_uuid(setup, reason):
    setup()
    master = FakeMaster()
    result = replication_pull(client=master)
    assert result.outcome == "skipped" and reason in result.reason
    assert master.requests == []


def test_a_nudge_from_the_master_pulls_before_this_backups_engine_says_normal():
    become_backup(phase=Phase.SINGLE)
    master = FakeMaster()
    master.upsert(1)
    assert replication_pull(client=master).outcome == "skipped"
    assert replication_pull(client=master, nudged=True).position == 1


def test_a_first_join_starts_with_a_snapshot_then_follows_the_log(master):
    master.upsert(1)
    master.upsert(2)
    DectUser.objects.create(**user_row(99))  # the joining node's own data goes

    result = replication_pull(client=master)
    assert result.snapshots == 1 and result.position == 2
    assert set(users()) == {1, 2}
    event = Event.objects.get(kind="replication")
    assert event.severity == "info" and "new to this backup" in event.message

    master.upsert(3)
    master.delete(1)
    result = replication_pull(client=master)
    assert (result.outcome, result.applied, result.snapshots) == ("applied", 2, 0)
    assert users() == master.users
    assert master.snapshots_served() == 1


def test_entries_are_applied_with_every_field_and_the_new_position(joined):
    joined.upsert(7, display_name="Anna Berg (ICU)", home="B", sip_password="s3cret")
    joined.upsert(8)
    # An older version's entry (it rewrote NODE columns) is applied as nothing.
    joined.add("user_assignment", "set", "all", {"M": [7], "S": [8]})
    replication_pull(client=joined)
    assert users() == joined.users
    assert users()[7]["display_name"] == "Anna Berg (ICU)" and users()[7]["home"] == "B"
    assert users()[8]["home"] == "A"
    state = ReplicationState.load()
    assert (state.position, state.applied_count, state.master_head) == (3, 3, 3)
    assert state.last_applied_at and state.last_pull_at


def test_applying_the_same_entries_again_changes_nothing(joined):
    for pk in range(1, 6):
        joined.upsert(pk)
    joined.upsert(2, extension="4002")
    joined.delete(3)
    joined.add("user_assignment", "set", "all", {"M": [1, 2], "S": [4, 5]})
    replication_pull(client=joined)
    once = users()

    ReplicationState.objects.filter(pk=1).update(position=0)
    replication_pull(client=joined)
    assert users() == once == joined.users


def test_a_long_backlog_is_fetched_in_batches_in_one_pull(joined):
    for pk in range(1, 1201):
        joined.upsert(pk)
    result = replication_pull(client=joined)
    assert result.position == 1200 and result.applied == 1200
    assert len(joined.requests) == 3
    assert all(f"limit={BATCH_SIZE}" in path for path in joined.requests)
    assert DectUser.objects.count() == 1200


def test_a_pull_is_bounded_and_the_next_one_continues(joined):
    for pk in range(1, 1201):
        joined.upsert(pk)
    result = replication_pull(client=joined, max_batches=1)
    assert (result.outcome, result.position) == ("applied", BATCH_SIZE)
    assert replication_status()["lag_entries"] == 1200 - BATCH_SIZE
    assert replication_pull(client=joined).position == 1200


def test_a_backup_promoted_later_can_create_users_after_applying_explicit_ids(joined):
    joined.upsert(41)
    replication_pull(client=joined)
    created = DectUser.objects.create(**{k: v for k, v in user_row(0, extension="5000").items()
                                         if k not in ("id", "ipei")})  # fmt: skip
    assert created.pk > 41


# --- Gaps and resyncs -----------------------------------------------------------


def test_a_gap_in_the_masters_log_triggers_a_snapshot(joined):
    for pk in range(1, 4):
        joined.upsert(pk)
    replication_pull(client=joined)
    for pk in range(4, 10):
        joined.upsert(pk)
    joined.delete(2)
    joined.trim(through=6)  # entries 4..6 are gone
    result = replication_pull(client=joined)
    assert result.snapshots == 1 and result.position == joined.head
    assert users() == joined.users
    event = Event.objects.filter(kind="replication").first()  # the newest
    assert "entries #4 to #6 are no longer" in event.message
    assert event.severity == "warning"


def test_a_log_trimmed_to_nothing_after_our_position_triggers_a_snapshot(joined):
    joined.upsert(1)
    replication_pull(client=joined)
    joined.upsert(2)
    joined.trim(through=2)
    assert replication_pull(client=joined).snapshots == 1
    assert set(users()) == {1, 2}


def test_a_master_behind_our_position_triggers_a_snapshot(joined):
    for pk in range(1, 4):
        joined.upsert(pk)
    replication_pull(client=joined)
    joined.entries, joined.head, joined.users = [], 0, {}
    joined.upsert(9)
    result = replication_pull(client=joined)
    assert result.snapshots == 1 and set(users()) == {9}
    assert "behind this backup's position" in Event.objects.filter(kind="replication")[0].message


def test_a_new_master_log_triggers_a_snapshot(joined):
    joined.upsert(1)
    replication_pull(client=joined)
    other = FakeMaster()
    other.upsert(5)
    assert replication_pull(client=other).snapshots == 1
    assert set(users()) == {5}


def test_a_node_that_wrote_as_master_resyncs_when_it_follows_again(joined):
    joined.upsert(1)
    replication_pull(client=joined)
    ChangeLogHead.objects.filter(pk=1).update(seq=17)  # it was master meanwhile
    joined.upsert(2)
    assert replication_pull(client=joined).snapshots == 1
    assert changelog_head().seq == 0  # its own old log is retired
    assert not ChangeLogEntry.objects.exists()


def test_a_snapshot_keeps_the_rows_it_keeps_so_local_runtime_rows_survive(master):
    from django.utils import timezone

    from users.models import SipRegistration

    for pk, extension in ((1, "2001"), (2, "2002"), (3, "2003")):
        DectUser.objects.create(**user_row(pk, extension=extension))
    SipRegistration.objects.create(user_id=1, state="registered", changed_at=timezone.now())
    master.upsert(1, extension="2002", ipei=user_row(2)["ipei"])  # 1 and 2 swapped
    master.upsert(2, extension="2001", ipei=user_row(1)["ipei"])
    master.upsert(4)
    assert replication_pull(client=master).snapshots == 1
    assert users() == master.users
    assert SipRegistration.objects.get().user_id == 1


def test_a_snapshot_replaces_admin_accounts_but_keeps_their_local_ids(master):
    kept = get_user_model().objects.create_user("admin", password="local-one-123")
    get_user_model().objects.create_user("backup-only", password="local-two-123")
    hashed = make_password("from-the-master-1")
    master.add("admin_account", "upsert", "admin", {
        "username": "admin", "password": hashed, "is_active": True, "is_staff": True,
        "is_superuser": True, "first_name": "", "last_name": "", "email": "a@example.org",
        "password_change_required": True,
    })  # fmt: skip
    replication_pull(client=master)
    admin = get_user_model().objects.get()
    assert admin.pk == kept.pk and admin.password == hashed and admin.is_superuser
    assert PasswordChangeRequired.objects.filter(user=admin).exists()

    data = {**master.admins["admin"], "password_change_required": False}
    master.add("admin_account", "upsert", "admin", data)
    master.add("admin_account", "upsert", "viewer", {**data, "username": "viewer"})
    master.add("admin_account", "delete", "viewer", {})
    replication_pull(client=master)
    assert not PasswordChangeRequired.objects.exists()
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["admin"]


# --- Refusals and failures ----------------------------------------------------------


def test_another_database_uuid_applies_nothing_and_says_why_once(master):
    other = "99999999-8888-4777-8666-555555555555"
    master.database_uuid = other
    master.upsert(1)
    for _ in range(3):
        result = replication_pull(client=master)
        assert result.outcome == "refused"
    assert not DectUser.objects.exists()
    assert ReplicationState.load().position == 0
    events = list(Event.objects.filter(kind="replication"))
    assert len(events) == 1
    assert events[0].severity == "error"
    assert other in events[0].message and UUID in events[0].message
    assert "snapshot" not in "".join(master.requests)


def test_an_unreachable_master_is_remembered_not_raised(joined):
    joined.down = True
    result = replication_pull(client=joined)
    assert result.outcome == "unreachable"
    assert "unreachable" in replication_status()["last_error"]
    joined.down = False
    joined.upsert(1)
    assert replication_pull(client=joined).outcome == "applied"
    assert replication_status()["last_error"] == ""


def test_a_batch_that_fails_half_way_applies_nothing(joined):
    joined.upsert(1)
    joined.upsert(2)
    joined.add("licence", "upsert", "x", {})  # a newer master's entity
    result = replication_pull(client=joined)
    assert result.outcome == "error"
    assert "version does not know" in result.reason
    assert not DectUser.objects.exists()
    assert ReplicationState.load().position == 0
    assert Event.objects.filter(kind="replication", severity="error").count() == 1


def test_a_conflict_with_local_data_resyncs_from_a_snapshot(joined):
    joined.upsert(1, extension="2000")
    DectUser.objects.create(**user_row(50, extension="2000"))  # diverged somehow
    assert replication_pull(client=joined).outcome == "error"
    result = replication_pull(client=joined)
    assert result.snapshots == 1
    assert users() == joined.users


def test_a_concurrent_pull_that_moved_the_position_is_not_applied_twice(joined, monkeypatch):
    from redundancy import follower as replication

    joined.upsert(1)
    joined.upsert(2)
    real = replication._batch_apply

    def other_pull_first(expected, page):
        with transaction.atomic():
            ReplicationState.objects.filter(pk=1).update(position=2)
        monkeypatch.setattr(replication, "_batch_apply", real)
        return real(expected, page)

    monkeypatch.setattr(replication, "_batch_apply", other_pull_first)
    result = replication_pull(client=joined)
    assert result.applied == 0 and result.position == 2


# --- Status --------------------------------------------------------------------


def test_status_reports_position_head_and_lag(joined):
    for pk in range(1, 701):
        joined.upsert(pk)
    replication_pull(client=joined, max_batches=1)
    status = replication_status()
    assert (status["position"], status["master_head"], status["lag_entries"]) == (500, 700, 200)
    assert status["lag_seconds"] >= 0 and status["last_applied_at"]
    replication_pull(client=joined)
    status = replication_status()
    assert (status["lag_entries"], status["lag_seconds"]) == (0, 0.0)
