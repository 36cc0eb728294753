"""Split brain: the link between the servers is cut while the devices reach both.

Neither server may act as the whole system: without the base stations'
confirmation there is no takeover, each keeps serving its own users, and when
the link returns the pair re-forms with nothing lost on either side.
"""

import time

import pytest

from basestations.sim import Simulation
from tests.system.conftest import pair_cluster, wait_until
from tests.system.test_basestations import DEVICE_SECRET, provision

# Bounds on seconds: run while the machine has nothing else to do (the Makefile).
pytestmark = [pytest.mark.system, pytest.mark.alone]


def create_user(node, extension: str) -> None:
    node.manage("shell", "-c", "from users.services import dect_user_create\n"
                f"dect_user_create(actor='test', extension='{extension}')")  # fmt: skip


def extensions(db) -> set[str]:
    return {row[0] for row in db.rows("select extension from users_dectuser")}


def test_a_cut_link_causes_no_takeover_and_the_pair_rejoins_with_nothing_lost(
    tmp_path, cluster_log
):
    proxies: list = []
    with pair_cluster(
        tmp_path, cluster_log, users=20, failover_time=0, peer_proxies=proxies
    ) as pair:
        pair.wait_paired()
        provision(pair, basestations=10, media=0)
        master = f"127.0.0.1:{pair.master.port}"
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=10, media=0,
                        handsets=0, seed=7) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 10}, timeout=30,
                       what="the base stations on the master")  # fmt: skip
            before = {"M": pair.master_db.users_by_node(), "S": pair.backup_db.users_by_node()}

            cut_at = time.time()
            for proxy in proxies:
                proxy.cut = True
            for db in (pair.master_db, pair.backup_db):
                wait_until(lambda db=db: db.events("no_takeover"), timeout=20,
                           what="peer unreachable, no takeover")  # fmt: skip
            create_user(pair.master, "9100")  # acknowledged by the master alone
            time.sleep(6)  # several detection windows and keep-alive rounds
            for db in (pair.master_db, pair.backup_db):
                assert db.phase() == "peer_lost"
                assert not db.event_since("failover_started", cut_at)
                assert "peer unreachable, no takeover" in db.value(
                    "select reason from core_nodestate where id = 1"
                )
            # Each server keeps serving its own users; the devices stay on the master.
            assert pair.backup_db.users_by_node() == before["S"]
            assert sim.attached_counts() == {master: 10}
            assert "9100" not in extensions(pair.backup_db)
            message = pair.backup_db.events("no_takeover")[0][1]
            assert "base stations do not confirm" in message and "0 of 10" in message

            for proxy in proxies:
                proxy.cut = False
            pair.wait_paired(timeout=30)
            wait_until(lambda: extensions(pair.backup_db) == extensions(pair.master_db),
                       timeout=20, what="the backup catches up")  # fmt: skip
            assert "9100" in extensions(pair.backup_db)
            wait_until(lambda: pair.backup_db.users_by_node() == pair.master_db.users_by_node(),
                       timeout=20, what="both agree on the NODE of every user")  # fmt: skip
        assert sim.error is None
