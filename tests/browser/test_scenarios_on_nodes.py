"""The note's administration scenarios in Chromium, against a real pair of node processes:
locked forms shown read-only on the backup, the failover time that applies, the peer
checked before it is saved, the CSV quote, promotion refused while the master lives and
accepted once it is gone, the system ARI kept, and the old master stepping down."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.system.http import Browser
from tests.system.infra import ADMIN_PASSWORD, NEW_PASSWORD, LineLog, pair_cluster, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.system]


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", NEW_PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Status")


def test_the_administration_scenarios_in_a_browser(tmp_path, page: Page):
    log = LineLog()
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
    try:
        with pair_cluster(tmp_path, log, users=10, failover_time=3) as pair:
            a, b, a_db, b_db = pair.master, pair.backup, pair.master_db, pair.backup_db
            pair.wait_paired()
            # The first login's password change, on the master; it reaches the backup.
            Browser(a.url).login("admin", ADMIN_PASSWORD, new_password=NEW_PASSWORD)
            wait_until(pair.in_sync, timeout=20, what="the backup has the new password")
            a_ari = a_db.config("system.ari")

            # On the backup, forms are read-only with the reason, without Save or Delete.
            log_in(page, b.url)
            page.goto(f"{b.url}/users/add/")
            expect(page.locator('[data-field="read-only"]')).to_contain_text("Read-only here")
            expect(page.locator("#id_extension")).to_be_disabled()  # inside a disabled fieldset
            expect(page.get_by_role("button", name="Save")).to_have_count(0)
            page.goto(f"{b.url}/users/1/")
            expect(page.get_by_role("button", name="Delete")).to_have_count(0)

            # The failover time that applies is the master's, shown with its source.
            page.goto(f"{b.url}/configuration/redundancy/")
            expect(page.locator('[data-field="failover-applied"]')).to_contain_text("3 s")
            expect(page.locator('[data-field="failover-applied"]')).to_contain_text("set by")

            # Promotion is refused while the master answers: nothing changes.
            page.check('form.scenario input[name="confirm"]')
            page.check('form.scenario input[name="master_off"]')
            page.fill('form.scenario input[name="password"]', NEW_PASSWORD)
            page.click("form.scenario button.danger")
            expect(page.locator(".messages")).to_contain_text("the master answered")
            assert b_db.config("redundancy.mode") == "slave"

            # On the master, a peer address that does not answer is not saved unasked.
            log_in(page, a.url)
            page.goto(f"{a.url}/configuration/redundancy/")
            page.fill("#id_peer", "127.0.0.1:9")
            page.click("main form.settings button[type=submit]")
            expect(page.locator('[data-error-for="peer"]')).to_contain_text("Nothing was saved")
            assert a_db.config("redundancy.peer") == f"127.0.0.1:{b.port}"

            # A CSV row with an unterminated quote is refused with its line; nothing imported.
            csv = tmp_path / "users.csv"
            csv.write_text('extension,display_name\n4001,"unterminated quote\n4002,Next row\n')
            page.goto(f"{a.url}/users/import/")
            page.set_input_files("input[type=file]", str(csv))
            page.click("main form button[type=submit]")
            expect(page.locator("#import-report")).to_contain_text("Nothing was imported")
            expect(page.locator("#import-report")).to_contain_text("quote")
            assert not a_db.rows("select 1 from users_dectuser where extension in ('4001', '4002')")

            # The master is gone for good: the backup is promoted, under the same system ARI.
            a.kill()
            wait_until(lambda: b_db.phase() == "failover", timeout=20, what="failover on B")
            page.goto(f"{b.url}/configuration/redundancy/")
            page.check('form.scenario input[name="confirm"]')
            page.check('form.scenario input[name="master_off"]')
            page.fill('form.scenario input[name="password"]', NEW_PASSWORD)
            page.click("form.scenario button.danger")
            expect(page.locator(".messages")).to_contain_text("This server is now the master")
            page.goto(f"{b.url}/licenses/")
            expect(page.locator("#system-ari")).to_have_text(a_ari)
            expect(page.locator("#acting-ari")).to_have_text(a_ari)
            expect(page.locator('[data-field="missing"]')).to_contain_text("14075250")

            # The old master returns, still configured as master: it steps down, and both
            # event logs say so.
            a.start()
            a.wait_ready()
            wait_until(lambda: a_db.config("redundancy.mode") == "slave", timeout=40,
                       what="the old master steps down")  # fmt: skip
            page.goto(f"{b.url}/events/")
            expect(page.locator("main")).to_contain_text(re.compile("step(s|ped)? down"))
            assert b_db.config("redundancy.mode") == "master"
    except BaseException:
        print(log.dump())
        raise
