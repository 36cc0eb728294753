"""The embedded default under a broker that tears messages: a torn message file is set
aside and no process of either node dies on it."""

import time

import pytest

from tests.system.conftest import FAST, pair_cluster, wait_until

pytestmark = pytest.mark.system


def test_torn_messages_are_set_aside_and_no_process_dies(tmp_path, cluster_log):
    torn = {"KWS_BROKER_TORN_EVERY": "5"}
    with pair_cluster(tmp_path, cluster_log, users=10, embedded=True,
                      master_env=torn, backup_env=torn) as pair:  # fmt: skip
        pair.wait_paired(timeout=60)
        time.sleep(20 * float(FAST["KWS_HEARTBEAT_INTERVAL"]))
        rejected = [
            path
            for node in (pair.master, pair.backup)
            for path in (node.data_dir / "broker" / "rejected").glob("*")
        ]
        assert rejected, "no torn message was set aside"
        exits = [line for line in cluster_log.lines if "/supervisor]" in line]
        assert not exits, exits
        assert not any("Unrecoverable error" in line for line in cluster_log.lines)
        wait_until(lambda: pair.master_db.phase() == pair.backup_db.phase() == "normal",
                   timeout=10, what="the pair still formed")  # fmt: skip
