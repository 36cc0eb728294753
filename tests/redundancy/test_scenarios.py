"""The switchover's two sides with a peer in memory: the backup catches up to the exact
head before it becomes master, and a lost answer never leaves two masters unnoticed."""

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.locks import Locked
from core.models import Event, NodeState, Phase
from core.peer import PeerError
from core.selectors import config_read
from redundancy import scenarios
from redundancy.follower import replication_pull
from redundancy.models import ReplicationState
from tests.redundancy.test_replication_fakes import FakeMaster, become_backup, become_master
from users.models import DectUser

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


@pytest.fixture
def backup_behind() -> FakeMaster:
    """A joined backup, 30 changes behind its master."""
    become_backup()
    master = FakeMaster()
    assert replication_pull(client=master).snapshots == 1
    for pk in range(1, 31):
        master.upsert(pk)
    return master


def test_the_backup_pulls_up_to_the_masters_head_before_it_becomes_master(backup_behind):
    status, answer = scenarios.switchover_accept({"head": 30, "actor": "alice"},
                                                 client=backup_behind)  # fmt: skip
    assert status == 200 and answer["position"] == 30
    assert ReplicationState.load().position == 30
    assert DectUser.objects.count() == 30
    assert config_read()["redundancy.mode"] == "master"
    assert Event.objects.filter(kind="switchover", message__contains="up to position 30").exists()


def test_a_backup_that_cannot_reach_the_head_in_time_stays_backup(backup_behind, monkeypatch):
    monkeypatch.setattr(scenarios, "SWITCHOVER_SYNC_TIMEOUT", 0.5)
    status, answer = scenarios.switchover_accept({"head": 40}, client=backup_behind)
    assert status == 409 and answer["error"] == "not in sync: applied 30 of 40"
    assert config_read()["redundancy.mode"] == "slave"
    assert not Event.objects.filter(kind="switchover").exists()


def test_a_backup_whose_master_does_not_answer_stays_backup(backup_behind, monkeypatch):
    monkeypatch.setattr(scenarios, "SWITCHOVER_SYNC_TIMEOUT", 0.5)
    backup_behind.down = True
    status, answer = scenarios.switchover_accept({"head": 30}, client=backup_behind)
    assert status == 409 and "applied 0 of 30" in answer["error"]
    assert config_read()["redundancy.mode"] == "slave"


@dataclass
class FakeBackup:
    """The backup's side as the master sees it: the switchover's answer is lost, then
    heartbeats report ``mode`` (None: no answer at all)."""

    mode: str | None
    calls: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        self.calls.append(path)
        if path == "/api/peer/switchover":
            raise PeerError("peer 127.0.0.1:9 did not answer: timed out")
        if self.mode is None:
            raise PeerError("peer 127.0.0.1:9 unreachable: connection refused")
        return {"claims": {"node": "kws-b", "mode": self.mode, "firmware": "PCS06B",
                           "database_uuid": "", "features": {}}}  # fmt: skip


@pytest.fixture
def paired_master() -> None:
    become_master()
    NodeState.objects.update_or_create(
        pk=1, defaults={"phase": Phase.NORMAL, "peer_status": {"claims": {"node": "kws-b"}}}
    )


def test_a_lost_answer_from_a_backup_that_became_master_completes_the_swap(paired_master):
    backup = FakeBackup(mode="master")
    result = scenarios.switchover_start(actor="alice", client=backup, confirm_client=backup)
    assert result["new_master"] == "kws-b"
    assert config_read()["redundancy.mode"] == "slave"
    assert NodeState.load().locked
    message = Event.objects.get(kind="switchover").message
    assert "its answer was lost" in message and "it reports master" in message


def test_a_lost_answer_from_a_backup_that_stayed_backup_changes_nothing(paired_master):
    backup = FakeBackup(mode="slave")
    with pytest.raises(scenarios.ScenarioError, match="did not take over the master role"):
        scenarios.switchover_start(actor="alice", client=backup, confirm_client=backup)
    assert config_read()["redundancy.mode"] == "master"
    assert not Event.objects.filter(kind="switchover").exists()


def test_a_backup_that_no_longer_answers_leaves_this_master_saying_it_is_in_doubt(
    paired_master, monkeypatch
):
    monkeypatch.setattr(scenarios, "SWITCHOVER_CONFIRM_TIMEOUT", 0.6)
    backup = FakeBackup(mode=None)
    with pytest.raises(scenarios.ScenarioError, match="outcome is in doubt") as info:
        scenarios.switchover_start(actor="alice", client=backup, confirm_client=backup)
    assert "check kws-b's node type" in str(info.value)
    assert config_read()["redundancy.mode"] == "master"
    assert backup.calls.count("/api/peer/heartbeat") >= 2  # asked again until the timeout


@dataclass
class WritingBackup:
    """A backup that, while the master waits for its answer, pulls from the master (which
    records the position it was asked from) while an administrator tries a write on the
    master: each from a connection of its own, as the web server's requests would."""

    seen: dict[str, Any] = field(default_factory=dict)

    def _meanwhile(self, name: str, work) -> None:
        from django.db import connection

        def run() -> None:
            try:
                self.seen[name] = work()
            except Exception as exc:  # noqa: BLE001 (recorded for the test to assert on)
                self.seen[name] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(3)
        if thread.is_alive():
            self.seen[name] = "still waiting after 3 s"
            thread.join()

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        from users.services import dect_user_create

        self._meanwhile(
            "pull",
            lambda: (
                ReplicationState.objects.update_or_create(
                    pk=1, defaults={"peer_position": payload["head"]}
                )
                and "recorded"
            ),
        )
        self._meanwhile("write", lambda: dect_user_create(actor="bob", extension="4711"))
        return {"position": payload["head"], "node": "kws-b"}


@pytest.mark.django_db(transaction=True)
def test_while_the_roles_swap_writes_are_refused_and_no_database_lock_is_held(paired_master):
    backup = WritingBackup()
    result = scenarios.switchover_start(actor="alice", client=backup)
    assert result["new_master"] == "kws-b"
    assert backup.seen["pull"] == "recorded"
    assert isinstance(backup.seen["write"], Locked) and "switchover" in backup.seen["write"].reason
    assert not DectUser.objects.filter(extension="4711").exists()
    assert config_read()["redundancy.mode"] == "slave"
    assert NodeState.load().switchover_since is None


def test_a_refused_switchover_leaves_the_master_writing(paired_master):
    from users.services import dect_user_create

    with pytest.raises(scenarios.ScenarioError):
        scenarios.switchover_start(actor="alice", client=FakeBackup(mode="slave"),
                                   confirm_client=FakeBackup(mode="slave"))  # fmt: skip
    assert NodeState.load().switchover_since is None
    dect_user_create(actor="bob", extension="4712")


@pytest.mark.parametrize(
    ("url", "setup", "asks"),
    [
        ("/configuration/redundancy/promote/", lambda: become_backup(phase=Phase.FAILOVER),
         "Tick the confirmation to promote this backup to master."),
        ("/configuration/redundancy/switchover/", lambda: None,
         "Tick the confirmation to swap the roles of master and backup."),
    ],
)  # fmt: skip
def test_a_scenario_without_its_confirmation_changes_nothing(
    paired_master, admin_client, url, setup, asks
):
    setup()
    before = config_read()
    response = admin_client.post(url, {}, follow=True)
    assert asks in response.text
    assert config_read() == before
    assert not Event.objects.filter(kind__in=["promotion", "switchover"]).exists()
