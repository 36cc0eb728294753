"""The seed's failure scenarios with real node processes (PostgreSQL and Redis per node)."""

import time

import pytest

from tests.system.conftest import FAST, logged_in, pair_cluster, wait_until

pytestmark = pytest.mark.system

DETECTION_WINDOW = float(FAST["KWS_DETECTION_WINDOW"])
HEARTBEAT = float(FAST["KWS_HEARTBEAT_INTERVAL"])
# A beat may be late by one interval, and the task takes a moment to run.
SLACK = 2 * HEARTBEAT + 1.0
# The engine decides again at the detection deadline and at the end of the failover
# time, not at the next beat: what is left is the task's own latency.
PRECISE = 0.4


def test_the_pair_forms_and_splits_users_about_half_each(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=40) as pair:
        pair.wait_paired()
        assert wait_until(lambda: pair.master_db.events("assignment"), timeout=10,
                          what="users on both servers")  # fmt: skip
        split = wait_until(lambda: pair.master_db.users_by_node(), timeout=5)
        assert split == {"M": 20, "S": 20}
        assert pair.backup_db.events("join") and pair.master_db.events("join")
        assert pair.backup_db.locked() and not pair.master_db.locked()


@pytest.mark.parametrize(
    ("backup_env", "backup_init", "backup_users", "cause"),
    [
        ({"KWS_FIRMWARE": "PCS06A"}, (), None, "firmware differs: master PCS06B, backup PCS06A"),
        ({}, (), 100, "licensed features differ: users: master 500, backup 100"),
        ({}, ("--set=redundancy.database_uuid=0f0f0f0f-0000-4000-8000-000000000000",), None,
         "database UUID differs"),
    ],
    ids=["firmware", "licensed-features", "uuid"],
)  # fmt: skip
def test_a_mismatched_backup_is_rejected_and_both_event_logs_name_the_cause(
    tmp_path, cluster_log, backup_env, backup_init, backup_users, cause
):
    with pair_cluster(
        tmp_path, cluster_log, backup_env=backup_env, backup_init=backup_init,
        backup_licensed_users=backup_users,
    ) as pair:  # fmt: skip
        wait_until(lambda: pair.backup_db.phase() == "rejected", timeout=20, what="backup rejected")
        wait_until(lambda: pair.master_db.phase() == "rejected", timeout=10, what="master rejects")
        for db in (pair.master_db, pair.backup_db):
            messages = [m for _, m in wait_until(lambda db=db: db.events("rejected"), timeout=5)]
            assert any(cause in m for m in messages), messages
        time.sleep(3 * HEARTBEAT)
        assert len(pair.backup_db.events("rejected")) == 1  # logged once, not at every beat
        # A master with a rejected backup serves every user itself.
        wait_until(lambda: pair.master_db.users_by_node() == {"M": 40}, timeout=10, what="all on M")


# Bounds on seconds: run while the machine has nothing else to do (the Makefile).
@pytest.mark.alone
def test_master_killed_backup_detects_waits_failover_time_takes_over_and_locks(
    tmp_path, cluster_log
):
    failover_time = 2
    with pair_cluster(tmp_path, cluster_log, users=40, failover_time=failover_time) as pair:
        pair.wait_paired()
        wait_until(lambda: pair.backup_db.users_by_node() == {"M": 20, "S": 20}, timeout=20,
                   what="backup has the master's users and assignment")  # fmt: skip
        browser = logged_in(pair.backup)

        killed_at = time.time()
        pair.master.kill()

        lost = wait_until(lambda: pair.backup_db.event_since("peer_lost", killed_at),
                          timeout=DETECTION_WINDOW + SLACK + 5, what="peer lost")  # fmt: skip
        detection = lost[0] - killed_at
        # The window after the master's last heartbeat, which came before the kill.
        assert detection <= DETECTION_WINDOW + PRECISE, f"detected after {detection:.2f} s"

        started = wait_until(lambda: pair.backup_db.event_since("failover_started", killed_at),
                             timeout=failover_time + SLACK + 5, what="failover started")  # fmt: skip
        waited = started[0] - lost[0]
        assert failover_time - 0.05 <= waited <= failover_time + PRECISE, f"waited {waited:.2f} s"

        finished = wait_until(lambda: pair.backup_db.event_since("failover_finished", killed_at),
                              timeout=10, what="failover finished")  # fmt: skip
        assert "40 users" not in finished[1]  # only the master's 20 moved
        assert "20 users" in finished[1]
        assert pair.backup_db.users_by_node() == {"S": 40}
        assert pair.backup_db.phase() == "failover" and pair.backup_db.locked()

        response = browser.post(
            "/configuration/redundancy/",
            {"mode": "slave", "peer": f"127.0.0.1:{pair.master.port}", "failover_time": "9"},
        )
        assert response.status == 423
        assert "failover: the master is lost" in response.text
        assert pair.backup_db.config("redundancy.failover_time") == "2"

        # The master returns: the pair re-forms and its users go back to it.
        assignments = len(pair.master_db.events("assignment"))
        pair.master.start()
        pair.master.wait_ready()
        pair.wait_paired()
        wait_until(lambda: len(pair.master_db.events("assignment")) > assignments, timeout=20,
                   what="the users back on both servers after the master returned")  # fmt: skip
        wait_until(lambda: pair.backup_db.users_by_node() == {"M": 20, "S": 20}, timeout=20,
                   what="backup follows the new assignment")  # fmt: skip
        assert pair.master_db.users_by_node() == {"M": 20, "S": 20}
        assert pair.backup_db.events("peer_returned")


def test_backup_killed_master_runs_single_unlocked_and_the_backup_rejoins(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=40, failover_time=1) as pair:
        pair.wait_paired()
        killed_at = time.time()
        pair.backup.kill()
        wait_until(lambda: pair.master_db.event_since("failover_finished", killed_at),
                   timeout=15, what="master takes the backup's users")  # fmt: skip
        assert pair.master_db.users_by_node() == {"M": 40}
        assert not pair.master_db.locked()
        assert (
            logged_in(pair.master)
            .get("/partials/node-header/")
            .text.count("configuration unlocked")
        )

        pair.backup.start()
        pair.backup.wait_ready()
        pair.wait_paired()
        wait_until(lambda: pair.master_db.users_by_node() == {"M": 20, "S": 20}, timeout=20,
                   what="the backup's users back with it after it returned")  # fmt: skip
