"""The seed's administration scenarios with real nodes: promotion and switchover keep
every configuration change."""

import json
import re

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until

pytestmark = pytest.mark.system


def create_users(node, first: int, count: int) -> None:
    """Create users through the services, as the Users page does (one command)."""
    code = (
        "from users.services import dect_user_create\n"
        f"for n in range({first}, {first + count}):\n"
        "    dect_user_create(actor='test', extension=str(n), display_name=f'user {n}')\n"
    )
    node.manage("shell", "-c", code)


def extensions(db) -> set[str]:
    return {row[0] for row in db.rows("select extension from users_dectuser")}


def test_promotion_of_the_backup_keeps_every_acknowledged_change(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=1) as pair:
        pair.wait_paired()
        create_users(pair.master, 5000, 25)
        expected = extensions(pair.master_db)
        pair.master.kill()  # right after the last change was acknowledged

        assert extensions(pair.backup_db) == expected
        wait_until(lambda: pair.backup_db.phase() == "failover", timeout=15, what="failover")
        browser = logged_in(pair.backup)
        response = browser.post(
            "/configuration/redundancy/promote/",
            {"confirm": "yes", "master_off": "yes", "password": browser.password},
        )
        assert response.status == 200
        assert "This server is now the master" in response.text
        assert pair.backup_db.config("redundancy.mode") == "master"
        assert extensions(pair.backup_db) == expected
        assert pair.backup_db.users_by_node() == {"M": len(expected)}
        assert not pair.backup_db.locked()
        assert pair.backup_db.events("promotion")

        # The promoted server writes configuration now.
        create_users(pair.backup, 6000, 1)
        assert "6000" in extensions(pair.backup_db)


# On the embedded default too: there a database lock held across the servers' talk would
# lock the acting master's whole SQLite database while the backup pulls from it.
@pytest.mark.parametrize("embedded", [False, True], ids=["postgres", "embedded"])
def test_switchover_reinstates_the_original_master_without_losing_a_change(
    tmp_path, cluster_log, embedded
):
    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=1, embedded=embedded) as pair:
        a, b, a_db, b_db = pair.master, pair.backup, pair.master_db, pair.backup_db
        pair.wait_paired()
        a.kill()
        wait_until(lambda: b_db.phase() == "failover", timeout=15, what="failover on B")
        browser = logged_in(b)
        browser.post(
            "/configuration/redundancy/promote/",
            {"confirm": "yes", "master_off": "yes", "password": browser.password},
        )
        create_users(b, 7000, 5)

        # The repaired original master joins the acting master as its backup.
        a.manage("kwsconfig", "set", "redundancy.mode=slave", f"redundancy.peer=127.0.0.1:{b.port}")
        assert a_db.config("redundancy.database_uuid") == ""  # reset: fetched from B at join
        a.start()
        a.wait_ready()
        wait_until(lambda: a_db.phase() == "normal" and b_db.phase() == "normal", timeout=30,
                   what="A joined B as backup")  # fmt: skip
        wait_until(lambda: extensions(a_db) == extensions(b_db), timeout=20, what="A in sync")
        create_users(b, 7100, 5)  # acknowledged on B just before the swap

        browser = logged_in(b)
        response = browser.post(
            "/configuration/redundancy/switchover/",
            {"confirm": "yes", "password": browser.password},
        )
        assert response.status == 200, response.text
        assert "is now the master" in response.text
        assert a_db.config("redundancy.mode") == "master"
        assert b_db.config("redundancy.mode") == "slave"
        assert extensions(a_db) == extensions(b_db)
        assert {"7000", "7104"} <= extensions(a_db)
        assert a_db.config("redundancy.database_uuid") == b_db.config("redundancy.database_uuid")

        # The roles really swapped: A writes, B follows.
        pair.wait_paired()
        create_users(a, 7200, 1)
        wait_until(lambda: "7200" in extensions(b_db), timeout=20, what="B follows A")
        events = [m for _, m in b_db.events("switchover")]
        assert any("is now the backup" in m for m in events), json.dumps(events)


def test_promotion_is_refused_while_the_master_lives_and_an_old_master_steps_down(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=1) as pair:
        a, b, a_db, b_db = pair.master, pair.backup, pair.master_db, pair.backup_db
        pair.wait_paired()
        browser = logged_in(b)
        refused = browser.post(
            "/configuration/redundancy/promote/",
            {"confirm": "yes", "master_off": "yes", "password": browser.password},
        )
        assert "the master answered" in refused.text and b_db.config("redundancy.mode") == "slave"

        a.kill()
        wait_until(lambda: b_db.phase() == "failover", timeout=15, what="failover on B")
        browser = logged_in(b)
        browser.post("/configuration/redundancy/promote/",
                     {"confirm": "yes", "master_off": "yes", "password": browser.password})  # fmt: skip
        assert b_db.config("redundancy.mode") == "master"
        a.start()  # the old master returns, still configured as master
        a.wait_ready()
        wait_until(lambda: a_db.config("redundancy.mode") == "slave", timeout=30,
                   what="the old master steps down")  # fmt: skip
        assert a_db.events("step_down")
        wait_until(lambda: b_db.events("two_masters"), timeout=10, what="the event on B too")
        wait_until(lambda: a_db.phase() == "normal" and b_db.phase() == "normal", timeout=30,
                   what="A joined B as its backup")  # fmt: skip
        assert b_db.config("redundancy.mode") == "master"
        # Never two servers registering the same home: A registered nothing while it was a
        # master next to B, and takes its half only as B's backup.
        assert set(a_db.registering()) & set(b_db.registering()) == set()


def test_base_stations_follow_a_promotion_and_a_restart_of_the_promoted_server(
    tmp_path, cluster_log
):
    from basestations.sim import Simulation
    from tests.system.test_basestations import DEVICE_SECRET, provision

    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=1) as pair:
        a, b, b_db = pair.master, pair.backup, pair.backup_db
        pair.wait_paired()
        provision(pair, basestations=3, media=0)
        with Simulation(server=f"127.0.0.1:{a.port}", secret=DEVICE_SECRET, basestations=3,
                        media=0, handsets=0, seed=11) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {f"127.0.0.1:{a.port}": 3}, timeout=30,
                       what="the base stations on the master")  # fmt: skip
            a.kill()  # for good: it is replaced later
            wait_until(lambda: sim.attached_counts() == {f"127.0.0.1:{b.port}": 3}, timeout=30,
                       what="the base stations on the backup")  # fmt: skip
            browser = logged_in(b)
            browser.post("/configuration/redundancy/promote/",
                         {"confirm": "yes", "password": browser.password})  # fmt: skip
            assert b_db.config("redundancy.mode") == "master"
            b.stop()  # the promoted server restarts
            b.start()
            b.wait_ready()
            # The devices knew only the dead master's address at first; they found the
            # promoted server while it served them and come back to it, not to the dead one.
            wait_until(lambda: sim.attached_counts() == {f"127.0.0.1:{b.port}": 3}, timeout=40,
                       what="the base stations back on the promoted server")  # fmt: skip
        assert sim.error is None


def test_the_system_ari_stays_through_promotion_rejoining_and_role_swap(tmp_path, cluster_log):
    """Handsets are subscribed to the system ARI: it is the same on both Licenses pages and
    in what the base stations broadcast before and after each scenario, and the base
    stations are attached to a server that serves them after each."""
    from basestations.sim import Simulation
    from tests.system.test_basestations import DEVICE_SECRET, provision

    def licenses(node) -> dict[str, str]:
        page = logged_in(node).get("/licenses/").text
        return {field: re.search(rf'id="{field}">([0-9A-F]+)<', page).group(1)
                for field in ("own-ari", "system-ari", "acting-ari")}  # fmt: skip

    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=1) as pair:
        a, b, a_db, b_db = pair.master, pair.backup, pair.master_db, pair.backup_db
        pair.wait_paired()
        a_ari, b_ari = a_db.config("system.ari"), b_db.config("system.ari")
        assert a_ari != b_ari
        provision(pair, basestations=3, media=0)
        at_a, at_b = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
        with Simulation(server=at_a, secret=DEVICE_SECRET, basestations=3, media=0,
                        handsets=0, seed=15) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {at_a: 3}, timeout=30,
                       what="the base stations on the master")  # fmt: skip
            assert sim.aris() == {a_ari: 3}
            assert licenses(a) == {"own-ari": a_ari, "system-ari": a_ari, "acting-ari": a_ari}
            assert licenses(b) == {"own-ari": b_ari, "system-ari": a_ari, "acting-ari": a_ari}

            # Permanent failure of the master: the backup is promoted.
            a.kill()
            wait_until(lambda: b_db.phase() == "failover", timeout=15, what="failover on B")
            browser = logged_in(b)
            browser.post("/configuration/redundancy/promote/",
                         {"confirm": "yes", "master_off": "yes", "password": browser.password})  # fmt: skip
            assert b_db.config("redundancy.mode") == "master"
            wait_until(lambda: sim.attached_counts() == {at_b: 3}, timeout=30,
                       what="the base stations on the promoted server")  # fmt: skip
            assert sim.aris() == {a_ari: 3}  # no handset needs to re-subscribe
            assert licenses(b) == {"own-ari": b_ari, "system-ari": a_ari, "acting-ari": a_ari}
            page = logged_in(b).get("/licenses/").text
            assert f"14075250 (master redundancy) for this server&#x27;s ARI {b_ari}" in page
            order = logged_in(b).get("/licenses/order/").text
            assert f'name="master_ari" value="{b_ari}"' in order
            assert a_ari not in order  # the gone server is not proposed for an order

            # The repaired original master rejoins as backup of the acting master.
            a.manage(
                "kwsconfig", "set", "redundancy.mode=slave", f"redundancy.peer=127.0.0.1:{b.port}"
            )
            a.start()
            a.wait_ready()
            wait_until(lambda: a_db.phase() == "normal" and b_db.phase() == "normal", timeout=30,
                       what="A joined B as backup")  # fmt: skip
            assert licenses(a) == {"own-ari": a_ari, "system-ari": a_ari, "acting-ari": a_ari}
            assert sim.aris() == {a_ari: 3}

            # The roles swap back: A is master again, B its backup under the ARI swap.
            browser = logged_in(b)
            swapped = browser.post("/configuration/redundancy/switchover/",
                                   {"confirm": "yes", "password": browser.password})  # fmt: skip
            assert "is now the master" in swapped.text, swapped.text
            pair.wait_paired()
            wait_until(lambda: sim.attached_counts() == {at_a: 3}, timeout=40,
                       what="the base stations back on the re-instated master")  # fmt: skip
            assert sim.aris() == {a_ari: 3}
            assert licenses(a) == {"own-ari": a_ari, "system-ari": a_ari, "acting-ari": a_ari}
            assert licenses(b) == {"own-ari": b_ari, "system-ari": a_ari, "acting-ari": a_ari}
            assert (
                a_db.config("system.subscription_ari")
                == b_db.config("system.subscription_ari")
                == a_ari
            )
        assert sim.error is None
