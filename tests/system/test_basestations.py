"""Base stations and media resources with real nodes: refusals, attach, learn the peer, move."""

import re
import time

import pytest

from basestations import protocol
from basestations.sim import Simulation, keepalive_once
from tests.system.conftest import logged_in, pair_cluster, wait_until

pytestmark = pytest.mark.system

DEVICE_SECRET = "system-test-device-secret"
FRESH = "now() - interval '3 seconds'"
ATTACHED = f"""select count(*) from basestations_basestationlink
               where last_keepalive_at > {FRESH}"""
PEER_UNREACHABLE = f"""select count(*) from basestations_basestationlink
                       where last_contact_at > {FRESH} and peer_reachable = false"""
HANDSETS = "select count(*) from basestations_handsetsighting"


def provision(pair, *, basestations: int, media: int) -> None:
    """The device secret and the simulated devices, configured on the master and replicated."""
    pair.master.manage("kwsconfig", "set", f"system.device_secret={DEVICE_SECRET}")
    pair.master.manage("kwssim", "--provision", "--seconds=0", f"--basestations={basestations}",
                       f"--media={media}")  # fmt: skip
    pair.wait_paired()
    wait_until(lambda: pair.backup_db.value("select count(*) from basestations_basestation")
               == basestations, timeout=10, what="the backup has the base stations")  # fmt: skip


def report(index: int, **fields):
    return {"mac": protocol.sim_mac("rfp", index), "kind": "rfp", "firmware": "PCS06B",
            "state": "synced", "peer_reachable": True, **fields}  # fmt: skip


def address(node) -> str:
    return f"{node.host}:{node.port}"


def test_old_firmware_and_unsigned_devices_are_refused_and_the_event_names_them(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=4) as pair:
        pair.wait_paired()
        provision(pair, basestations=2, media=0)
        master, backup = address(pair.master), address(pair.backup)

        for _ in range(3):
            old = keepalive_once(server=master, secret=DEVICE_SECRET,
                                 report=report(1, firmware="PCS05B"))  # fmt: skip
            assert old.status == 403 and old.verified
            assert "firmware PCS05B is older than PCS06A" in old.body["error"]
        assert [m for _, m in pair.master_db.events("device_refused")] == [
            "Refused base station RFP 001 (02:4B:57:01:00:01): firmware PCS05B is older than "
            "PCS06A; update it to PCS06A or newer."
        ]  # once, not at every keep-alive

        unsigned = keepalive_once(server=master, secret=DEVICE_SECRET, report=report(2), sign=False)
        assert unsigned.status == 401 and "unsigned" in unsigned.body["error"]
        wrong = keepalive_once(server=master, secret="not-the-device-secret", report=report(2))
        assert wrong.status == 401 and "device secret" in wrong.body["error"]
        refused = [m for _, m in pair.master_db.events("device_refused")]
        assert len(refused) == 3 and all("02:4B:57:01:00:02" in m for m in refused[1:])

        accepted = keepalive_once(server=master, secret=DEVICE_SECRET, report=report(2))
        assert accepted.status == 200 and accepted.verified
        assert accepted.body["peer"] == backup and accepted.body["server"] == "master"
        # The backup knows the device (replicated with the secret) and sends it to the master.
        redirected = keepalive_once(server=backup, secret=DEVICE_SECRET, report=report(2))
        assert redirected.status == 409 and redirected.verified
        assert redirected.body["server"] == master


# A hundred simulated devices and forty handsets in this process: the machine to itself.
@pytest.mark.alone
def test_100_base_stations_attach_to_the_master_learn_the_backup_and_follow_the_failover(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=40, failover_time=0) as pair:
        pair.wait_paired()
        provision(pair, basestations=100, media=2)
        master, backup = address(pair.master), address(pair.backup)
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=100, media=2,
                        handsets=40, seed=6000) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 102}, timeout=60,
                       what="every device attached to the master")  # fmt: skip
            assert sim.peers() == {backup: 102}  # they learned the backup
            # The ARI swap: the backup acts under the master's ARI, on its page and later
            # in what its base stations broadcast.
            master_ari = pair.master_db.config("system.ari")
            backup_ari = pair.backup_db.config("system.ari")
            assert sim.aris() == {master_ari: 100} and master_ari != backup_ari
            page = logged_in(pair.backup).get("/licenses/").text
            assert re.search(rf'id="own-ari">{backup_ari}<', page), page
            assert re.search(rf'id="system-ari">{master_ari}<', page), page
            wait_until(lambda: pair.master_db.value(ATTACHED) == 100, timeout=10,
                       what="the master records them attached")  # fmt: skip
            assert pair.backup_db.value(ATTACHED) == 0
            wait_until(lambda: pair.master_db.value(HANDSETS) == 40, timeout=10,
                       what="the master knows where each handset is")  # fmt: skip

            killed = time.time()
            pair.master.kill()
            wait_until(lambda: pair.backup_db.phase() == "failover", timeout=20,
                       what="the backup takes over")  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {backup: 102}, timeout=20,
                       what="every device attached to the backup")  # fmt: skip
            moved_after = time.time() - killed
            print(f"102 devices attached to the backup {moved_after:.2f} s after kill -9")
            moved = wait_until(lambda: pair.backup_db.events("failover_devices"), timeout=40,
                               what="the takeover records the devices that moved")  # fmt: skip
            assert "100 base stations and 2 media resources moved" in moved[0][1]
            assert sim.aris() == {master_ari: 100}  # handsets keep their subscription
            # What the split-brain witness reads on the backup: they report the master lost.
            wait_until(lambda: pair.backup_db.value(PEER_UNREACHABLE) == 100, timeout=10,
                       what="the backup's base stations report the master unreachable")  # fmt: skip

            # The master returns: the pair re-forms and the devices go back to the master.
            pair.master.start()
            pair.master.wait_ready()
            pair.wait_paired(timeout=60)
            wait_until(lambda: sim.attached_counts() == {master: 102}, timeout=60,
                       what="every device back on the master")  # fmt: skip
            assert sim.peers() == {backup: 102}
        assert sim.error is None


@pytest.mark.alone
def test_1000_base_stations_keep_alive_in_datagrams_and_move_on_a_failover_and_back(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=40, failover_time=0) as pair:
        pair.wait_paired()
        provision(pair, basestations=1000, media=0)
        master, backup = address(pair.master), address(pair.backup)
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=1000, media=0,
                        seed=1000) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 1000}, timeout=120,
                       what="every base station attached to the master")  # fmt: skip
            wait_until(lambda: pair.master_db.value(ATTACHED) == 1000, timeout=20,
                       what="the master records them attached")  # fmt: skip
            # They keep alive in datagrams, which the master's web server answers.
            answered = sum(d.client.answered_in_datagrams for d in sim.devices)
            wait_until(lambda: sum(d.client.answered_in_datagrams for d in sim.devices)
                       >= answered + 1000, timeout=20, what="keep-alives in datagrams")  # fmt: skip

            pair.master.kill()
            wait_until(lambda: pair.backup_db.phase() == "failover", timeout=30,
                       what="the backup takes over")  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {backup: 1000}, timeout=60,
                       what="every base station attached to the backup")  # fmt: skip
            moved = wait_until(lambda: pair.backup_db.events("failover_devices"), timeout=60,
                               what="the takeover records the devices that moved")  # fmt: skip
            assert "1000 base stations" in moved[0][1]
            wait_until(lambda: pair.backup_db.value(ATTACHED) == 1000, timeout=20,
                       what="the backup records them attached")  # fmt: skip

            pair.master.start()
            pair.master.wait_ready()
            pair.wait_paired(timeout=90)
            wait_until(lambda: sim.attached_counts() == {master: 1000}, timeout=120,
                       what="every base station back on the master")  # fmt: skip
        assert sim.error is None
