"""The master's change log: numbering, refusals, serialization and the nudge after commit."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from core.changelog import changelog_append, changelog_retire, changelog_trim
from core.locks import Locked
from core.models import ChangeLogEntry, ChangeLogHead, NodeState, Phase
from core.peer import PeerError
from redundancy import durability
from redundancy.durability import replication_nudge
from redundancy.models import ReplicationState
from tests.redundancy.test_replication_fakes import become_backup, become_master, user_row

pytestmark = pytest.mark.django_db


def append(pk: int = 1) -> int:
    return changelog_append(entity="user", op="upsert", key=str(pk), data=user_row(pk))


def test_entries_are_numbered_one_after_another_with_their_data():
    with transaction.atomic():
        seqs = [append(1), append(2)]
        changelog_append(entity="user", op="delete", key="1", data={})
    assert seqs == [1, 2]
    assert list(ChangeLogEntry.objects.values_list("seq", "entity", "op", "key")) == [
        (1, "user", "upsert", "1"), (2, "user", "upsert", "2"), (3, "user", "delete", "1"),
    ]  # fmt: skip
    assert ChangeLogEntry.objects.get(seq=2).data["extension"] == "3002"
    assert ChangeLogHead.objects.get().seq == 3


def test_a_rolled_back_write_gives_its_number_back_so_the_log_has_no_holes():
    with transaction.atomic():
        append(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        append(2)
        raise RuntimeError("the write failed after its entry")
    with transaction.atomic():
        assert append(3) == 2
    assert list(ChangeLogEntry.objects.values_list("seq", flat=True)) == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused():
    with pytest.raises(TransactionManagementError):
        append(1)
    assert not ChangeLogEntry.objects.exists()


def test_an_unknown_entity_or_op_is_refused():
    with transaction.atomic(), pytest.raises(ValueError, match="no replicated entity"):
        changelog_append(entity="licence", op="upsert", key="x", data={})
    with transaction.atomic(), pytest.raises(ValueError, match="with op 'set'"):
        changelog_append(entity="user", op="set", key="x", data={})


def test_a_backup_refuses_every_replicated_write():
    become_backup()
    with pytest.raises(Locked, match="backup"), transaction.atomic():
        append(1)
    assert not ChangeLogEntry.objects.exists()


def test_a_locked_master_refuses_too():
    become_master()  # handing its role to the backup: a switchover in progress
    NodeState.objects.update_or_create(pk=1, defaults={"switchover_since": timezone.now()})
    with pytest.raises(Locked, match="switchover"), transaction.atomic():
        append(1)


def test_trim_keeps_the_newest_entries():
    with transaction.atomic():
        for pk in range(1, 11):
            append(pk)
    assert changelog_trim(keep=4) == 6
    assert list(ChangeLogEntry.objects.values_list("seq", flat=True)) == [7, 8, 9, 10]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_commit_in_seq_order():
    """The second writer waits for the first one's commit, so a reader that sees #n
    has seen every entry before it."""
    ChangeLogHead.objects.get_or_create(pk=1)
    first_has_appended = threading.Event()
    commits: list[tuple[str, int]] = []

    def writer(name: str, hold: float) -> None:
        try:
            with transaction.atomic():
                seq = append(1)
                first_has_appended.set()
                time.sleep(hold)
            commits.append((name, seq))
        finally:
            connection.close()

    slow = threading.Thread(target=writer, args=("slow", 0.5))
    slow.start()
    first_has_appended.wait(5)
    started = time.monotonic()
    writer("fast", 0)
    waited = time.monotonic() - started
    slow.join()
    assert commits == [("slow", 1), ("fast", 2)]
    assert waited >= 0.3


# --- The nudge after commit ---------------------------------------------------


class FakeBackup:
    def __init__(self, *, position=None, error=None):
        self.calls: list[tuple[str, str, object]] = []
        self.position = position
        self.error = error

    def call(self, method, path, payload=None):
        self.calls.append((method, path, payload))
        if self.error:
            raise PeerError(self.error)
        return {"position": self.position if self.position is not None else payload["head"],
                "outcome": "applied"}  # fmt: skip


@pytest.fixture
def in_sync_master(monkeypatch):
    become_master()
    NodeState.objects.update_or_create(pk=1, defaults={"phase": Phase.NORMAL})
    backup = FakeBackup()
    monkeypatch.setattr(durability, "_nudge_client", lambda: backup)
    durability._nudged.mark = None
    return backup


def test_one_nudge_after_commit_covers_a_whole_bulk_write(
    in_sync_master, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for pk in range(1, 51):
            append(pk)
    assert in_sync_master.calls == [("POST", "/api/peer/nudge", {"head": 50})]
    state = ReplicationState.load()
    assert state.peer_position == 50 and state.peer_acked_at


def test_every_separate_write_waits_for_its_own_acknowledgement(
    in_sync_master, django_capture_on_commit_callbacks
):
    for pk in (1, 2):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            append(pk)
    assert [payload["head"] for _, _, payload in in_sync_master.calls] == [1, 2]


def test_a_save_after_this_node_restarted_its_log_still_waits_for_the_backup(
    in_sync_master, django_capture_on_commit_callbacks
):
    """Master, then backup (a snapshot restarts this node's log at 0), then master again,
    all in one process: the numbers of the old log must not vouch for the new one's."""
    for pk in (1, 2, 3):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            append(pk)
    with transaction.atomic():
        changelog_retire()  # what applying a snapshot of another master does
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        assert append(4) == 1
    assert [payload["head"] for _, _, payload in in_sync_master.calls] == [1, 2, 3, 1]


def test_no_nudge_while_the_backup_is_not_in_sync(
    in_sync_master, django_capture_on_commit_callbacks
):
    NodeState.objects.filter(pk=1).update(phase=Phase.PEER_LOST)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        append(1)
    assert in_sync_master.calls == []
    assert replication_nudge().reason.startswith("the backup is not in sync")


def test_an_absent_backup_does_not_fail_the_write_and_is_logged_once_a_minute(
    in_sync_master, django_capture_on_commit_callbacks, caplog, monkeypatch
):
    in_sync_master.error = "peer 127.0.0.1:9 unreachable: connection refused"
    monkeypatch.setattr(durability, "_quiet_until", {})
    for pk in (1, 2, 3):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            append(pk)
    assert ChangeLogEntry.objects.count() == 3
    assert len(in_sync_master.calls) == 3
    warnings = [r for r in caplog.records if "did not acknowledge" in r.getMessage()]
    assert len(warnings) == 1
    assert "acknowledged on the master alone" in warnings[0].getMessage()


def test_a_backup_that_answers_an_older_position_has_not_acknowledged(in_sync_master):
    with transaction.atomic():
        append(1)
        append(2)
    in_sync_master.position = 1
    result = replication_nudge(seq=2)
    assert result.sent and not result.acknowledged and result.position == 1


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_reads_one_moment_without_blocking_writers():
    from core.changelog import snapshot_build

    become_master()
    with transaction.atomic():
        append(1)
    held = threading.Event()
    release = threading.Event()

    def writer_holding_the_head() -> None:
        try:
            with transaction.atomic():
                append(2)
                held.set()
                release.wait(5)
        finally:
            connection.close()

    thread = threading.Thread(target=writer_holding_the_head)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    snapshot = snapshot_build()  # REPEATABLE READ: does not wait for the open write
    release.set()
    thread.join()
    assert time.monotonic() - started < 1
    assert snapshot["head"] == 1
