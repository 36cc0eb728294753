"""The audit trail on a real pair: a change made on the master's page is on the backup's
Audit page with who and from where, and stays there through the master's death and the
backup's promotion, which is recorded too."""

import html

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from tests.system.infra import SECRET

pytestmark = pytest.mark.system

SIP_PASSWORD = "a-sip-password-never-shown"


def audit_page(browser, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = browser.get(f"/administration/audit/?{query}")
    assert response.status == 200, response.text
    return html.unescape(response.text)


def test_a_change_on_the_master_is_in_the_backups_trail_and_survives_its_promotion(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=4, failover_time=1) as pair:
        master, backup, master_db, backup_db = (
            pair.master,
            pair.backup,
            pair.master_db,
            pair.backup_db,
        )
        pair.wait_paired()
        browser = logged_in(master)
        response = browser.post("/users/add/", {
            "extension": "8000", "display_name": "Audited", "sip_password": SIP_PASSWORD,
            "subscription": "none"})  # fmt: skip
        assert response.status == 200 and "/users/" in response.url, response.text

        # Acknowledged on the master: the backup holds the record, the master's.
        on_backup = logged_in(backup)
        wait_until(lambda: "User 8000 Audited created." in audit_page(on_backup, kind="user"),
                   timeout=20, what="the record on the backup")  # fmt: skip
        [(server, account, address, changes)] = backup_db.rows(
            "select server, account, address, changes::text from core_auditrecord "
            "where kind = 'user' and object_repr like '8000%%'"
        )
        assert (server, account, address) == ("master", "admin", "127.0.0.1")
        assert '"changed"' in changes
        # The administrator's first-login password change on the master is there too.
        assert "Administrator account admin password changed." in audit_page(
            on_backup, kind="account"
        )
        for db in (master_db, backup_db):
            text = str(db.rows("select * from core_auditrecord"))
            assert SIP_PASSWORD not in text and SECRET not in text
            assert "pbkdf2" not in text and "argon2" not in text

        master.kill()  # kill -9
        wait_until(lambda: backup_db.phase() == "failover", timeout=15, what="failover")
        on_backup = logged_in(backup)
        response = on_backup.post(
            "/configuration/redundancy/promote/",
            {"confirm": "yes", "master_off": "yes", "password": on_backup.password},
        )
        assert response.status == 200 and "This server is now the master" in response.text

        page = audit_page(on_backup)
        assert "User 8000 Audited created." in page
        assert "backup promoted from backup to master" in page
        assert SIP_PASSWORD not in page and SECRET not in page
        promoted = audit_page(on_backup, kind="scenario", object="promote")
        assert "admin" in promoted and "127.0.0.1" in promoted
        # The promoted server writes the log now: its record waits there for a new backup.
        assert (
            backup_db.value(
                "select count(*) from core_changelogentry where entity = 'audit' and "
                "data->>'object_id' = 'promote'"
            )
            == 1
        )
