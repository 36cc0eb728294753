"""Both nodes register their users with a real Kamailio; the survivor re-registers the lost
peer's users. Kamailio's own location table is the judge, not the client's view."""

import re
import time

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from users.pbx import Kamailio

pytestmark = pytest.mark.system


def contacts_by_port(pbx: Kamailio) -> dict[str, set[int]]:
    """AoR -> the source ports of its contacts (each node registers from its own socket)."""
    found: dict[str, set[int]] = {}
    for aor, contacts in pbx.location().items():
        ports = set()
        for contact in contacts:
            uri = contact.get("Contact") or contact.get("Address") or ""
            port = uri.rsplit(":", 1)[-1].split(";")[0].rstrip(">")
            if port.isdigit():
                ports.add(int(port))
        found[aor.split("@")[0]] = ports
    return found


def test_each_node_registers_its_half_and_the_backup_re_registers_the_masters(
    tmp_path, cluster_log
):
    users = 40
    with (
        Kamailio() as pbx,
        pair_cluster(tmp_path, cluster_log, users=users, failover_time=0) as pair,
    ):
        credentials = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
        pbx.add_subscribers([(name, "127.0.0.1", password) for name, password in credentials])
        pair.wait_paired()
        pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}")
        wait_until(lambda: pair.backup_db.config("sip.registrar"), timeout=10,
                   what="the PBX settings replicated")  # fmt: skip

        def registered(db):
            return db.value("select count(*) from users_sipregistration where state = 'registered'")

        wait_until(lambda: len(pbx.location()) == users, timeout=30, what="every user in Kamailio")
        wait_until(
            lambda: registered(pair.master_db) == registered(pair.backup_db) == users // 2,
            timeout=10,
            what="each node to record its half as registered",
        )
        sources = {frozenset(ports) for ports in contacts_by_port(pbx).values()}
        assert len({port for ports in sources for port in ports}) == 2  # one socket per node

        # Each node learns the other's registrations from the heartbeats: the master's
        # Users list shows the whole system.
        def peer_registered(db, letter):
            # NODE M is home A (the master's slot), S home B, while both serve.
            home = {"M": "A", "S": "B"}[letter]
            return db.value(
                "select count(*) from users_peerregistration r join users_dectuser u "
                f"on u.id = r.user_id where u.home = '{home}' and r.state = 'registered'"
            )

        wait_until(
            lambda: (
                peer_registered(pair.master_db, "S")
                == peer_registered(pair.backup_db, "M")
                == users // 2
            ),
            timeout=10,
            what="each node to know the other's registrations",
        )
        browser = logged_in(pair.master)
        # The page reads both records at once; a refresh of a registration in flight on a
        # loaded machine shows for a moment, so it is read until it settles.
        wait_until(
            lambda: (
                f"{users} of {users} users" in browser.get("/users/?registration=registered").text
            ),
            timeout=15,
            what="the master's Users list to show every user registered",
        )

        backup_users = {
            row[0]
            for row in pair.backup_db.rows(
                "select sip_username from users_dectuser where home = 'B'"
            )
        }
        backup_port = next(iter(next(iter(contacts_by_port(pbx)[u] for u in backup_users))))

        killed_at = time.time()
        pair.master.kill()
        wait_until(
            lambda: (
                all(backup_port in ports for ports in contacts_by_port(pbx).values())
                and len(contacts_by_port(pbx)) == users
            ),
            timeout=30,
            what="every user registered from the backup",
        )
        print(
            f"{users} users registered from the backup {time.time() - killed_at:.2f} s after kill"
        )
        wait_until(
            lambda: registered(pair.backup_db) == users, timeout=10, what="backup records all"
        )
        # The Status page shows the takeover's re-registration progress: n of N.
        status = logged_in(pair.backup).get("/").text
        assert re.search(rf'data-field="registered">{users} of {users}<', status), status
        # It shows the adaptive rate (the default sip.rate) and why it last changed (a REGISTER
        # lost on a loaded machine may have cut it), and the backup's event says how long the
        # takeover's re-registration took at what rate.
        assert re.search(
            r'data-field="sip-rate">\d+ REGISTERs per second \(adaptive, up to 10000\): '
            r"(raising|at the ceiling|backing off): [a-zA-Z0-9 ,:]+<",
            status,
        ), status
        event = wait_until(
            lambda: next(
                (m for _, m in pair.backup_db.events("sip") if m.startswith("Failover re-reg")),
                None,
            ),
            timeout=10,
            what="the backup's event of the re-registration",
        )
        assert re.fullmatch(
            rf"Failover re-registration: {users // 2} users registered with 127\.0\.0\.1:"
            rf"{pbx.port} in \d+\.\d\d s, \d+ REGISTERs per second \(adaptive rate \d+/s "
            r"now: .+\)",
            event,
        ), event


def test_a_wrong_password_shows_as_failed_with_the_pbx_reason(tmp_path, cluster_log):
    with Kamailio() as pbx, pair_cluster(tmp_path, cluster_log, users=4) as pair:
        credentials = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
        rows = [(name, "127.0.0.1", password) for name, password in credentials]
        rows[0] = (rows[0][0], "127.0.0.1", "not-the-password")
        pbx.add_subscribers(rows)
        pair.wait_paired()
        pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}")
        failed = wait_until(
            lambda: (
                pair.master_db.rows(
                    "select u.sip_username, r.reason from users_sipregistration r "
                    "join users_dectuser u on u.id = r.user_id where r.state = 'failed'"
                )
                or pair.backup_db.rows(
                    "select u.sip_username, r.reason from users_sipregistration r "
                    "join users_dectuser u on u.id = r.user_id where r.state = 'failed'"
                )
            ),
            timeout=30,
            what="a failed registration",
        )
        assert failed[0][0] == rows[0][0]
        assert "403" in failed[0][1]
