"""The link between two real servers: nothing secret can be read on it, and requests
reflected back to their sender change nothing."""

import json
import time

import pytest

from tests.system.conftest import NEW_PASSWORD, SECRET, logged_in, pair_cluster, wait_until

pytestmark = pytest.mark.system

DEVICE_SECRET = "a-device-secret-for-capture"


def test_a_capture_of_the_peer_link_holds_no_secret(tmp_path, cluster_log):
    proxies: list = []
    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=30,
                      peer_proxies=proxies) as pair:  # fmt: skip
        pair.wait_paired()
        pair.master.manage("kwsconfig", "set", f"system.device_secret={DEVICE_SECRET}")
        logged_in(pair.master)  # the initial password changed: a new hash to replicate
        wait_until(lambda: pair.backup_db.config("system.device_secret"), timeout=20,
                   what="the device secret replicated")  # fmt: skip
        pair.wait_paired()
        time.sleep(2)  # heartbeats with registration states and health, both ways
        capture = bytes(proxies[0].recorded + proxies[1].recorded)
        assert len(capture) > 10_000 and b"/api/peer/" in capture
        secrets = [r[0] for r in pair.master_db.rows("select sip_password from users_dectuser")]
        secrets += [r[0] for r in pair.master_db.rows("select password from auth_user")]
        secrets += [DEVICE_SECRET, SECRET, NEW_PASSWORD]
        assert len(secrets) >= 13
        found = [s for s in secrets if s and s.encode() in capture]
        assert found == []
        # The backup has them all the same: sealed is not lost.
        assert pair.backup_db.config("system.device_secret") == DEVICE_SECRET


def test_requests_reflected_to_their_sender_for_10_s_change_nothing(tmp_path, cluster_log):
    proxies: list = []
    with pair_cluster(tmp_path, cluster_log, users=20, failover_time=30,
                      peer_proxies=proxies) as pair:  # fmt: skip
        pair.wait_paired()
        # The split as both servers know it (the backup applies it a moment after pairing).
        wait_until(lambda: pair.master_db.users_by_node() == pair.backup_db.users_by_node(),
                   timeout=20, what="the backup has the master's split")  # fmt: skip
        before = pair.master_db.users_by_node(), pair.backup_db.users_by_node()
        reflected_at = time.time()
        proxies[0].reflect_to = pair.master.port  # the master's requests come back to it
        proxies[1].reflect_to = pair.backup.port
        time.sleep(10)
        for db, name in ((pair.master_db, "master"), (pair.backup_db, "backup")):
            assert not db.event_since("rejected", reflected_at), name
            assert not db.event_since("failover_started", reflected_at), name
            peer = db.value("select peer_status from core_nodestate where id = 1")
            peer = json.loads(peer) if isinstance(peer, str) else peer
            assert peer["claims"]["node"] != name  # never itself as its peer
            refused = db.event_since("peer_refused", reflected_at)
            assert refused and "reflected" in refused[1], name
        proxies[0].reflect_to = proxies[1].reflect_to = None
        pair.wait_paired()
        assert (pair.master_db.users_by_node(), pair.backup_db.users_by_node()) == before
