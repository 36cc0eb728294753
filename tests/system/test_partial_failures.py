"""Partial failures with real processes: one process of a node killed, a node paused, its
database or its broker lost, a short cut of the link, restarts. The pair must notice,
say so, take over where it must, converge on one owner per user, and never let two
servers register the same user once it has converged.

The judge of "registered" is each node's own record of its registrations with a real
Kamailio, and who should hold a user is what both nodes agree on (the assignment).
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack

import pytest

from basestations.sim import Simulation
from tests.system.conftest import FAST, pair_cluster, wait_until
from tests.system.test_basestations import DEVICE_SECRET, provision
from users.pbx import Kamailio

# Bounds on seconds: run while the machine has nothing else to do (the Makefile).
pytestmark = [pytest.mark.system, pytest.mark.alone]

WINDOW = float(FAST["KWS_DETECTION_WINDOW"])
BEAT = float(FAST["KWS_HEARTBEAT_INTERVAL"])
USERS = 20
# The line each process prints once it is ready to work.
READY = {"worker": "ready.", "beat": "beat: Starting", "web": "Application startup complete",
         "sip": "SIP registration started"}  # fmt: skip


def with_pbx(pair, pbx: Kamailio) -> None:
    """Both nodes register their users with ``pbx``; wait until the pair has converged."""
    credentials = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
    pbx.add_subscribers([(name, "127.0.0.1", password) for name, password in credentials])
    pair.wait_paired()
    pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}",
                       "sip.rate=1000")  # fmt: skip
    wait_until(pair.registered_by_owner, timeout=30, what="every user registered by its owner")


def served(pair) -> bool:
    """Every user is registered by the node that should hold it (both may not agree yet:
    then by whichever says it holds it)."""
    try:
        owners, homes = pair.owners(), pair.homes()
    except Exception:  # noqa: BLE001 (a database that is down: not served, as far as we know)
        return False
    registered = owners["master"]["registered"] | owners["backup"]["registered"]
    return set(homes) <= registered


def watch(pair, *, seconds: float, since: float) -> dict:
    """Sample for ``seconds``: when every user was served again after ``since``, the
    users both nodes recorded as registered at once, and whether it ended converged."""
    gaps, twice, back_at, was = [], set(), None, True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.time()
        ok = served(pair)
        if not ok and was:
            gaps.append(now - since)
        if ok and not was:
            back_at = now - since
        was = ok
        try:
            twice |= pair.registered_twice() if pair.registered_by_owner() else set()
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.2)
    return {"gaps": gaps, "back_after": back_at, "twice": twice,
            "converged": pair.registered_by_owner()}  # fmt: skip


def moved_users(before: dict, after: dict) -> int:
    """Users whose holder differs between two readings of both nodes."""

    def holder(owners):
        return {pk: side for side in ("master", "backup") for pk in owners[side]["registered"]}

    a, b = holder(before), holder(after)
    return sum(1 for pk in a if b.get(pk) != a[pk])


def test_each_process_killed_inside_the_master_is_restarted_and_its_users_served_again(
    tmp_path, cluster_log
):
    """kill -9 of the worker, beat, the SIP process and the web server of the master in
    turn (one cluster, the others keep running): each is restarted, an event says so,
    and every user is registered again by its owner."""
    with (
        Kamailio() as pbx,
        pair_cluster(tmp_path, cluster_log, users=USERS, failover_time=0) as pair,
    ):
        with_pbx(pair, pbx)
        for role in ("worker", "beat", "sip", "web"):
            killed_at = time.time()
            pair.master.kill_process(role)
            event = wait_until(lambda at=killed_at: pair.master_db.event_since("process", at),
                               timeout=30, what=f"the event of the {role}'s restart")  # fmt: skip
            assert f"The {role} process of master was killed by signal 9" in event[1]
            assert "restarted it" in event[1]
            report = watch(pair, seconds=8, since=killed_at)
            # How long the new process took to be ready is the machine's, not the pair's:
            # the users must be back within a detection window of it.
            ready_at = cluster_log.first_since(killed_at, f"[master/{role}", READY[role])
            restart = (ready_at or killed_at + 2) - killed_at
            print(f"{role}: ready {restart:.1f} s after the kill; {report}")
            assert report["converged"], (role, report)
            if report["gaps"]:
                assert report["back_after"] is not None, (role, report)
                assert report["back_after"] <= restart + WINDOW + 2 * BEAT + 1, (role, report)
            assert not report["twice"], (role, report)
            wait_until(lambda: both_serve(pair), timeout=20, what="each user on its home")


def both_serve(pair) -> bool:
    """Converged with each user on its home server again."""
    return pair.registered_by_owner() and pair.owners()["master"]["assignment"]["serving"] == "AB"


def test_a_hung_worker_is_noticed_taken_over_and_given_back(tmp_path, cluster_log):
    """The worker (which runs the engine) hangs for three detection windows: the
    master's web server answers no heartbeat for an engine that stopped, its SIP
    process lets its users go, the backup takes them over; then the worker goes on."""
    with (
        Kamailio() as pbx,
        pair_cluster(tmp_path, cluster_log, users=USERS, failover_time=0) as pair,
    ):
        with_pbx(pair, pbx)
        hung_at = time.time()
        pair.master.kill_process("worker", signal.SIGSTOP)
        try:
            lost = wait_until(lambda: pair.backup_db.event_since("peer_lost", hung_at),
                              timeout=WINDOW * 3 + 5, what="the backup notices")  # fmt: skip
            assert lost[0] - hung_at <= 2 * WINDOW + 2 * BEAT + 1
            wait_until(lambda: pair.backup_db.event_since("failover_started", hung_at),
                       timeout=10, what="the backup takes over")  # fmt: skip
            report = watch(pair, seconds=max(1.0, hung_at + 3 * WINDOW - time.time()),
                           since=hung_at)  # fmt: skip
        finally:
            pair.master.kill_process("worker", signal.SIGCONT)
        assert not report["twice"], report
        wait_until(lambda: both_serve(pair), timeout=20, what="the users back on the master")
        assert pair.master_db.event_since("assignment", hung_at)


@pytest.mark.parametrize("devices", [0, 4], ids=["without-base-stations", "with-base-stations"])
def test_a_paused_master_is_taken_over_and_converges_after_it_resumes(
    tmp_path, cluster_log, devices
):
    with ExitStack() as stack:
        pbx = stack.enter_context(Kamailio())
        pair = stack.enter_context(
            pair_cluster(tmp_path, cluster_log, users=USERS, failover_time=1)
        )
        with_pbx(pair, pbx)
        if devices:  # the base stations witness the pause: they move to the backup
            provision(pair, basestations=devices, media=0)
            sim = stack.enter_context(Simulation(
                server=f"127.0.0.1:{pair.master.port}", secret=DEVICE_SECRET,
                basestations=devices, media=0, handsets=0, seed=5,
            ))  # fmt: skip
            wait_until(lambda: sum(sim.attached_counts().values()) == devices, timeout=30,
                       what="the base stations attached")  # fmt: skip
        pair.master.pause()
        paused_at = time.time()
        try:
            wait_until(lambda: pair.backup_db.event_since("failover_started", paused_at),
                       timeout=3 * WINDOW + 5, what="the backup takes over")  # fmt: skip
            time.sleep(max(0.0, paused_at + 3 * WINDOW - time.time()))
        finally:
            pair.master.resume()
        resumed_at = time.time()
        wait_until(lambda: both_serve(pair), timeout=10, what="converged within 10 s of SIGCONT")
        print(f"paused master: converged {time.time() - resumed_at:.2f} s after SIGCONT")
        report = watch(pair, seconds=5, since=resumed_at)
        assert report["converged"] and not report["twice"], report
        assert pair.master_db.event_since("assignment", resumed_at)  # its half back


def test_a_master_whose_database_is_lost_for_15_s_converges_when_it_returns(tmp_path, cluster_log):
    with (
        Kamailio() as pbx,
        pair_cluster(
            tmp_path, cluster_log, users=USERS, failover_time=1, own_servers=True
        ) as pair,  # fmt: skip
    ):
        with_pbx(pair, pbx)
        extensions = {r[0] for r in pair.master_db.rows("select extension from users_dectuser")}
        pair.master_db.postgres.stop()
        lost_at = time.time()
        try:
            wait_until(lambda: pair.backup_db.event_since("failover_started", lost_at),
                       timeout=3 * WINDOW + 10, what="the backup takes over")  # fmt: skip
            wait_until(
                lambda: len(pair.backup_db.rows(
                    "select user_id from users_sipregistration where state = 'registered'"
                )) == USERS,
                timeout=15, what="the backup serves every user",
            )  # fmt: skip
            time.sleep(max(0.0, lost_at + 15 - time.time()))
        finally:
            pair.master_db.postgres.start()
        back_at = time.time()
        wait_until(lambda: both_serve(pair), timeout=30, what="converged after the database")
        print(f"database back: converged {time.time() - back_at:.2f} s later")
        assert {r[0] for r in pair.backup_db.rows("select extension from users_dectuser")} == (
            extensions
        )
        report = watch(pair, seconds=4, since=back_at)
        assert report["converged"] and not report["twice"], report


def test_a_master_whose_broker_is_lost_for_15_s_is_taken_over_and_converges(tmp_path, cluster_log):
    with (
        Kamailio() as pbx,
        pair_cluster(
            tmp_path, cluster_log, users=USERS, failover_time=1, own_servers=True
        ) as pair,  # fmt: skip
    ):
        with_pbx(pair, pbx)
        pair.master_db.redis.kill()
        lost_at = time.time()
        try:
            wait_until(lambda: pair.backup_db.event_since("failover_started", lost_at),
                       timeout=3 * WINDOW + 10, what="the backup takes over")  # fmt: skip
            time.sleep(max(0.0, lost_at + 15 - time.time()))
        finally:
            pair.master_db.redis.start()
        back_at = time.time()
        wait_until(lambda: both_serve(pair), timeout=40, what="converged after the broker")
        print(f"broker back: converged {time.time() - back_at:.2f} s later")
        assert not any("exited" in m for _, m in pair.master_db.events("process"))


def test_a_short_cut_of_the_link_moves_nobody(tmp_path, cluster_log):
    proxies: list = []
    with (
        Kamailio() as pbx,
        pair_cluster(
            tmp_path, cluster_log, users=USERS, failover_time=30, peer_proxies=proxies
        ) as pair,  # fmt: skip
    ):
        with_pbx(pair, pbx)
        before = pair.owners()
        for proxy in proxies:
            proxy.cut = True
        time.sleep(3)
        for proxy in proxies:
            proxy.cut = False
        pair.wait_paired()
        wait_until(pair.registered_by_owner, timeout=20, what="converged")
        after = pair.owners()
        assert moved_users(before, after) == 0
        assert after["master"]["assignment"] == before["master"]["assignment"]


def test_both_servers_restarted_together_move_nobody(tmp_path, cluster_log):
    with (
        Kamailio() as pbx,
        pair_cluster(tmp_path, cluster_log, users=USERS, failover_time=2) as pair,
    ):
        with_pbx(pair, pbx)
        before = pair.owners()
        pair.master.stop()
        pair.backup.stop()
        pair.master.start()
        pair.backup.start()
        pair.master.wait_ready()
        pair.backup.wait_ready()
        pair.wait_paired()
        wait_until(pair.registered_by_owner, timeout=30, what="converged after the restart")
        after = pair.owners()
        assert moved_users(before, after) == 0
        assert after["master"]["assignment"] == before["master"]["assignment"]


@pytest.mark.parametrize("failed", ["master", "backup"])
def test_only_the_users_of_a_killed_server_move_out_and_back(tmp_path, cluster_log, failed):
    with (
        Kamailio() as pbx,
        pair_cluster(tmp_path, cluster_log, users=USERS, failover_time=0) as pair,
    ):
        with_pbx(pair, pbx)
        before = pair.owners()
        node = pair.master if failed == "master" else pair.backup
        survivor_db = pair.backup_db if failed == "master" else pair.master_db
        killed_at = time.time()
        node.kill()
        wait_until(lambda: survivor_db.event_since("failover_finished", killed_at),
                   timeout=15, what="the takeover")  # fmt: skip
        survivor = "backup" if failed == "master" else "master"
        wait_until(
            lambda: set(pair.homes()) <= pair.owners()[survivor]["registered"],
            timeout=15,
            what="the survivor registers every user",
        )
        moved_out = len(before[failed]["registered"])
        assert moved_out == USERS // 2
        node.start()
        node.wait_ready()
        wait_until(lambda: both_serve(pair), timeout=30, what="converged after the return")
        after = pair.owners()
        assert moved_users(before, after) == 0  # exactly its users came back
