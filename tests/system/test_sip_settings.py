"""Configuration > SIP on a real pair with two real Kamailio registrars: the registrar
set on the master's page makes both servers register their users with it; the backup
shows the replicated value read-only and refuses a POST with 423; a new registrar makes
both re-register with it, and the Status page shows the progress until each is done.
Kamailio's own location table is the judge."""

import re
import time

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from tests.system.test_sip import contacts_by_port
from users.pbx import Kamailio

pytestmark = pytest.mark.system

USERS = 20
HALF = USERS // 2


def sip_form(registrar: str) -> dict[str, str]:
    return {"registrar": registrar, "transport": "udp", "domain": "", "rate": "100",
            "rate_max": "10000", "expires": "300"}  # fmt: skip


def progress(page: str, node: str) -> str | None:
    """The 'registering now' line of one server's card on the Status page, if shown."""
    start = page.index(f'data-node="{node}"')
    end = page.find('class="card node-card', start + 1)
    match = re.search(r'data-field="sip-progress">([^<]*)<', page[start : end if end > 0 else None])
    return match.group(1) if match else None


def test_the_sip_page_sets_the_pbx_of_both_servers_and_a_new_one_re_registers_them(
    tmp_path, cluster_log
):
    with (
        Kamailio() as first,
        Kamailio() as second,
        pair_cluster(tmp_path, cluster_log, users=USERS) as pair,
    ):
        credentials = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
        for pbx in (first, second):
            pbx.add_subscribers([(name, "127.0.0.1", pw) for name, pw in credentials])
        pair.wait_paired()
        master = logged_in(pair.master)

        # The registrar set on the master's page: both servers register their halves.
        saved = master.post("/configuration/sip/", sip_form(f"127.0.0.1:{first.port}"))
        assert saved.status == 200 and "SIP settings saved." in saved.text, saved.text
        assert f"Both servers register their users again with 127.0.0.1:{first.port}" in saved.text
        wait_until(lambda: len(first.location()) == USERS, timeout=30,
                   what="every user in the first Kamailio")  # fmt: skip
        ports = {port for found in contacts_by_port(first).values() for port in found}
        assert len(ports) == 2  # from both servers

        # The backup shows the replicated value, read-only with the reason, and refuses.
        backup = logged_in(pair.backup)
        page = backup.get("/configuration/sip/").text
        assert "Read-only here: this server is the backup" in page
        assert (
            f'value="127.0.0.1:{first.port}"' in page
            and '<fieldset class="plain" disabled>' in page
        )
        refused = backup.post("/configuration/sip/", sip_form(f"127.0.0.1:{second.port}"))
        assert refused.status == 423 and "this server is the backup" in refused.text
        assert pair.backup_db.config("sip.registrar") == f"127.0.0.1:{first.port}"
        state = backup.get("/configuration/sip/", headers={"HX-Request": "true"}).text
        assert re.search(rf'data-field="registered">{HALF}<', state), state

        # A new registrar that does not answer yet: both servers leave the first one and
        # the Status page shows each one's progress with the new one.
        second.stop()
        master.post("/configuration/sip/", sip_form(f"127.0.0.1:{second.port}"))
        wait_until(lambda: not first.location(), timeout=30,
                   what="every user un-registered from the first Kamailio")  # fmt: skip
        line = f"Re-registering with 127.0.0.1:{second.port}: 0 of {HALF} registered"

        def both_shown() -> bool:
            page = master.get("/").text
            return progress(page, "master") == line and progress(page, "backup") == line

        wait_until(both_shown, timeout=20, what="both servers' progress on the Status page")
        assert progress(backup.get("/").text, "backup") == line
        changed = (
            f"PBX changed from 127.0.0.1:{first.port}: re-registering users with "
            f"127.0.0.1:{second.port}"
        )
        for db in (pair.master_db, pair.backup_db):
            assert [message for _, message in db.events("sip")] == [changed]

        # The new registrar answers: every user registers with it, and the line goes.
        second.start()
        answering_at = time.time()
        wait_until(lambda: len(second.location()) == USERS, timeout=60,
                   what="every user in the second Kamailio")  # fmt: skip
        print(
            f"{USERS} users with the new PBX {time.time() - answering_at:.2f} s after it answered"
        )
        ports = {port for found in contacts_by_port(second).values() for port in found}
        assert len(ports) == 2

        def done() -> bool:
            page = master.get("/").text
            return (
                progress(page, "master") is None
                and progress(page, "backup") is None
                and f'data-field="registered">{HALF} of {HALF}<' in page
            )

        wait_until(done, timeout=20, what="the progress to end on the Status page")
