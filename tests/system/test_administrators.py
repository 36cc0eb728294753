"""Administration > Administrators on a real pair, through the pages: accounts added,
disabled, given a role, reset and deleted on the master reach the backup; a disabled
account logs in on neither server; an operator's writes are refused with 403 on both;
the backup's page is read-only and refuses account writes with 423."""

from __future__ import annotations

import xmlrpc.client

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from tests.system.http import Browser

pytestmark = pytest.mark.system

PAGE = "/administration/administrators/"
ADMIN_NEW = "a-changed-Passw0rd"  # the admin's password after logged_in()
INITIAL = "Ward-7-initial-pw"
NINA = "Nina-own-Passw0rd-2"


def account(db, username: str) -> tuple | None:
    """(is_active, is_superuser, password hash, must change) of an account in ``db``."""
    rows = db.rows(
        "select u.is_active, u.is_superuser, u.password, p.id is not null from auth_user u "
        "left join accounts_passwordchangerequired p on p.user_id = u.id where u.username = %s",
        username,
    )
    return rows[0] if rows else None


def change(browser: Browser, username: str, action: str, new: str = ""):
    return browser.post(PAGE + "change/", {
        "username": username, "action": action, "new_password": new,
        "new_password_again": new, "password": ADMIN_NEW,
    })  # fmt: skip


def logs_in(node, username: str, password: str) -> bool:
    browser = Browser(node.url)
    browser.get("/login/")
    response = browser.post("/login/", {"username": username, "password": password})
    return "/login/" not in response.url


def test_account_writes_on_the_master_reach_the_backup_and_an_operator_changes_nothing(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=4) as pair:
        pair.wait_paired()
        master = logged_in(pair.master)
        for name, role in (("nina", "operator"), ("root2", "administrator")):
            response = master.post(PAGE + "add/", {
                "username": name, "role": role, "new_password": INITIAL,
                "new_password_again": INITIAL, "password": ADMIN_NEW,
            })  # fmt: skip
            assert response.status == 200 and f'data-account="{name}"' in response.text, name
        wait_until(lambda: account(pair.backup_db, "root2") is not None, timeout=20,
                   what="the backup to apply the new accounts")  # fmt: skip
        assert account(pair.backup_db, "nina")[:2] == (True, False)
        assert account(pair.backup_db, "root2") == account(pair.master_db, "root2")

        # The operator changes his initial password on the backup (forwarded to the
        # master), then reads pages and is refused every write, on both servers.
        nina = Browser(pair.backup.url)
        nina.login("nina", INITIAL, new_password=NINA)
        assert account(pair.master_db, "nina")[3] is False
        for node in (pair.backup, pair.master):
            if node is pair.master:
                nina = Browser(node.url)
                nina.login("nina", NINA)
            page = nina.get(PAGE)
            assert page.status == 200 and "your account is an operator" in page.text
            refused = nina.post("/users/add/", {"extension": "7777", "display_name": "X"})
            assert refused.status == 403 and "your account is an operator" in refused.text
            refused = change(nina, "nina", "administrator")
            assert refused.status == 403
        assert account(pair.master_db, "nina")[1] is False

        # The backup's page is read-only; its account writes are refused with 423.
        on_backup = logged_in(pair.backup)
        page = on_backup.get(PAGE).text
        assert "Read-only here: this server is the backup" in page
        assert "Add account</button>" not in page
        assert change(on_backup, "nina", "disable").status == 423

        # Disable: the account logs in on neither server, and its XML-RPC session ends.
        rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{pair.master.port}")
        sid = rpc.session_login("GW-DECT/nina", NINA)
        assert sid > 0 and rpc.session_receive(sid, 0) != -1
        assert change(master, "nina", "disable").status == 200
        wait_until(lambda: rpc.session_receive(sid, 0) == -1, timeout=20,
                   what="nina's XML-RPC session to end")  # fmt: skip
        assert rpc.session_login("GW-DECT/nina", NINA) == -4
        wait_until(lambda: account(pair.backup_db, "nina")[0] is False, timeout=20,
                   what="the backup to disable nina")  # fmt: skip
        assert not logs_in(pair.master, "nina", NINA)
        assert not logs_in(pair.backup, "nina", NINA)
        # Enable and make administrator, reset and delete the other one.
        assert change(master, "nina", "enable").status == 200
        assert change(master, "nina", "administrator").status == 200
        assert change(master, "root2", "reset", new="Reset-by-admin-77").status == 200
        reset = account(pair.master_db, "root2")
        assert reset[3] is True
        wait_until(lambda: account(pair.backup_db, "root2") == reset, timeout=20,
                   what="the backup to apply the reset")  # fmt: skip
        assert change(master, "root2", "delete").status == 200
        wait_until(lambda: account(pair.backup_db, "root2") is None, timeout=20,
                   what="the backup to delete root2")  # fmt: skip
        assert account(pair.backup_db, "nina")[:2] == (True, True)
        assert logs_in(pair.backup, "nina", NINA)
        # The last administrator rule holds on the master's command line too.
        pair.master.manage("kwsadmin", "disable", "nina")
        refused = pair.master.manage("kwsadmin", "delete", "admin", check=False)
        assert refused.returncode != 0 and "admin is the last enabled administrator" in (
            refused.stderr
        )
        assert account(pair.master_db, "admin")[:2] == (True, True)
