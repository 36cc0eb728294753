"""Status > Statistics on a real pair with a real Kamailio: each server's page shows its
own figures and its peer's (from the heartbeat), and the two agree; a restarted server
keeps its counters; the survivor's page times the failover it carried out."""

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from users.pbx import Kamailio

pytestmark = pytest.mark.system

# A sample for the charts every second, not every 5 minutes.
SAMPLES = {"KWS_STATISTICS_SAMPLE_EVERY": "1"}
FIELDS = ("attempts", "failures", "failovers", "refused", "refused-authentication", "delivered")


def columns(page: str) -> dict[str, dict[str, str]]:
    """The page's columns: node name -> {data-field: text}."""
    found: dict[str, dict[str, str]] = {}
    for node, name, text in re.findall(r'data-node="([^"]+)" data-field="([^"]+)">([^<]*)<', page):
        found.setdefault(node, {})[name] = text
    return found


def unsigned_keepalive(url: str) -> int:
    body = json.dumps({"mac": "00:13:D1:0A:0B:99", "kind": "rfp", "firmware": "PCS06B"}).encode()
    request = urllib.request.Request(f"{url}/basestations/api/keepalive", data=body,
                                     method="POST", headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_each_server_shows_its_own_and_its_peers_statistics_and_keeps_them(tmp_path, cluster_log):
    users = 10
    with (
        Kamailio() as pbx,
        pair_cluster(
            tmp_path,
            cluster_log,
            users=users,
            failover_time=1,
            master_env=SAMPLES,
            backup_env=SAMPLES,
        ) as pair,  # fmt: skip
    ):
        credentials = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
        pbx.add_subscribers([(name, "127.0.0.1", password) for name, password in credentials])
        pair.wait_paired()
        pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}",
                           "system.device_secret=device-secret-of-the-test")  # fmt: skip
        wait_until(lambda: len(pbx.location()) == users, timeout=30, what="every user in Kamailio")
        wait_until(pair.in_sync, timeout=10, what="the device secret replicated")
        # Two refused devices on the master, one on the backup: each counts its own.
        assert unsigned_keepalive(pair.master.url) == 401
        assert unsigned_keepalive(pair.master.url) == 401
        assert unsigned_keepalive(pair.backup.url) == 401

        master = logged_in(pair.master)
        wait_until(pair.in_sync, timeout=10, what="the new password replicated")
        backup = logged_in(pair.backup)
        names = ("master", "backup")

        def pages() -> tuple[dict, dict]:
            return columns(master.get("/statistics/").text), columns(
                backup.get("/statistics/").text
            )

        def agree() -> tuple[dict, dict] | None:
            on_master, on_backup = pages()
            if set(on_master) != set(names) or set(on_backup) != set(names):
                return None
            for node in names:
                if any(on_master[node].get(f) != on_backup[node].get(f) for f in FIELDS):
                    return None
            own = on_master["master"], on_backup["backup"]
            # Every user of each server answered by the PBX, once the counts are written.
            if any(not c["attempts"].isdigit() or int(c["attempts"]) < users // 2 for c in own):
                return None
            # Counters are written every 2 s: wait for both refusals of the master, which
            # may be written in two flushes, rather than for the first of them.
            refused = (
                on_master["master"]["refused-authentication"],
                on_backup["backup"]["refused-authentication"],
            )
            if refused[0] == "0" or refused[1] == "0" or refused[0] == "1":
                return None
            return on_master, on_backup

        on_master, on_backup = wait_until(agree, timeout=20, what="both pages to agree")
        assert on_master["master"]["refused-authentication"] == "2"
        assert on_master["backup"]["refused-authentication"] == "1"  # the backup's, by heartbeat
        for page in (on_master, on_backup):
            assert (
                page["master"]["registered"]
                == page["backup"]["registered"]
                == (f"{users // 2} of {users // 2} handled")
            )
            assert int(page["master"]["attempts"]) >= users // 2
            assert page["master"]["failovers"] == page["backup"]["failovers"] == "0"
        before = int(on_backup["backup"]["attempts"])

        # Each page draws its own server's last 24 hours and asks the peer for its own.
        assert "<polyline" in master.get("/statistics/").text
        peer_chart = wait_until(
            lambda: (text := master.get("/statistics/peer-chart/").text).count("<polyline") == 4
            and text,
            timeout=10, what="the backup's chart on the master's page",
        )  # fmt: skip
        assert "<h2>backup: the last 24 hours</h2>" in peer_chart

        # The backup stops and starts again: the master takes its users over meanwhile,
        # and the backup's counters are still there when it is back.
        pair.backup.stop()
        wait_until(
            lambda: re.search(r"registered [\d.]+ s", columns(master.get("/statistics/").text)
                              ["master"].get("failover", "")),
            timeout=40, what="the master's failover timed up to its users registered",
        )  # fmt: skip
        failover = columns(master.get("/statistics/").text)["master"]
        assert failover["failovers"] == "1"
        times = re.fullmatch(
            rf"{users // 2} users of backup: taken over ([\d.]+) s after detection, "
            r"registered ([\d.]+) s, devices \(none\)",
            failover["failover"],
        )
        assert times, failover["failover"]
        # Taken over the failover time after the detection, registered after that.
        assert 1.0 <= float(times.group(1)) <= float(times.group(2)) < 30

        pair.backup.start()
        pair.backup.wait_ready()
        on_backup = columns(backup.get("/statistics/").text)
        assert int(on_backup["backup"]["attempts"]) >= before > 0
        assert on_backup["backup"]["refused-authentication"] == "1"
        pair.wait_paired()
        # The backup learns of the master's failover from the master's heartbeat.
        wait_until(
            lambda: columns(backup.get("/statistics/").text).get("master", {}).get("failovers")
            == "1",
            timeout=20, what="the backup to show the master's failover",
        )  # fmt: skip
