"""The application note's administration scenarios, in order, through the GUI only, in
Chromium against two real node processes (each on its own PostgreSQL and Redis, fast
heartbeats): upgrade a single server to a pair (order request, license codes, master,
backup), a temporary master failure, a backup failure and its automatic return, a
permanent master failure (promote the backup), and re-instating the original master
(it joins as backup, catches up, and the roles are swapped). At each step the Users list
and its NODE column are read on every GUI that answers; the forms' refusals (read-only
on the backup and during a failover, promotion while the master lives, a peer that does
not answer, a malformed CSV row) are checked on the way.

The vendor's side (issuing codes for the order) and starting or killing the servers'
processes are the only steps outside the GUI."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack

import pytest
from playwright.sync_api import Page, expect

from licensing.ari import ari_generate
from licensing.vendor import Vendor
from tests.system.infra import (
    ADMIN_PASSWORD,
    FAST,
    NEW_PASSWORD,
    SECRET,
    LineLog,
    Pair,
    node_stack,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.system]

USERS = 10


def log_in(page: Page, url: str, *, first: bool = False) -> None:
    """Log in; at the ``first`` login the initial password is changed (the same new one
    on both servers, as accounts replicate from the master)."""
    page.goto(f"{url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD if first else NEW_PASSWORD)
    page.click("main button[type=submit]")
    if first:
        expect(page.locator("h1")).to_have_text("Change password")
        page.fill("#id_old_password", ADMIN_PASSWORD)
        page.fill("#id_new_password1", NEW_PASSWORD)
        page.fill("#id_new_password2", NEW_PASSWORD)
        page.click("main button[type=submit]")
        # The header's poll can race the password change's new session key and land on
        # the login page: then the new password logs in.
        try:
            expect(page.locator("h1")).to_have_text(re.compile("^(Status|Log in)$"))
        except AssertionError:
            raise AssertionError(page.locator("main").inner_text()) from None
        if page.locator("h1").text_content() == "Log in":
            log_in(page, url)
    expect(page.locator("h1")).to_have_text("Status")


def node_counts(page: Page, url: str) -> tuple[int, int]:
    """The Users list's count of users with NODE M and with NODE S."""
    found = []
    for node in ("M", "S"):
        page.goto(f"{url}/users/?node={node}")
        text = page.locator("#user-table .count").text_content() or ""
        match = re.match(r"(\d+) of (\d+) users", text)
        assert match and int(match.group(2)) == USERS, text
        found.append(int(match.group(1)))
    return found[0], found[1]


def wait_nodes(page: Page, urls: list[str], want, what: str, timeout: float = 60) -> tuple:
    """Until every GUI in ``urls`` shows the same NODE counts and ``want(m, s)`` holds."""
    seen: list[tuple[int, int]] = []

    def check() -> bool:
        seen[:] = [node_counts(page, url) for url in urls]
        return len(set(seen)) == 1 and want(*seen[0])

    wait_until(check, timeout=timeout, what=f"{what} (NODE M/S seen: {seen})")
    return seen[0]


def settings_save(page: Page, url: str, **fields: str) -> None:
    page.goto(f"{url}/configuration/redundancy/")
    if "mode" in fields:
        page.select_option("#id_mode", fields.pop("mode"))
    for name, value in fields.items():
        page.fill(f"#id_{name}", value)
    page.click("main form.settings button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Redundancy settings saved.")


def license_install(page: Page, url: str, code: str) -> None:
    page.goto(f"{url}/licenses/")
    page.fill("#id_code", code)
    page.click("form.install button[type=submit]")
    expect(page.locator(".license-note")).to_contain_text("installed")


def scenario_form(page: Page, url: str, button: str, *, master_off: bool = False) -> None:
    page.goto(f"{url}/configuration/redundancy/")
    page.check('form.scenario input[name="confirm"]')
    if master_off:
        page.check('form.scenario input[name="master_off"]')
    page.fill('form.scenario input[name="password"]', NEW_PASSWORD)
    page.locator("form.scenario").get_by_role("button", name=button).click()


def test_the_administration_scenarios_one_after_the_other(tmp_path, page: Page):
    log = LineLog()
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
    vendor = Vendor.create()
    env = {**FAST, "KWS_LICENSE_PUBLIC_KEY": vendor.public_key}
    a_ari = ari_generate()
    b_ari = ari_generate(avoid={a_ari})
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            a, a_db = stack.enter_context(node_stack("master", log=log, tmp=tmp_path, env=env))
            b, b_db = stack.enter_context(node_stack("backup", log=log, tmp=tmp_path, env=env))
            pair = Pair(a, b, a_db, b_db, log)
            # The existing single server with its users, and a new server out of the box.
            for node, ari in ((a, a_ari), (b, b_ari)):
                node.manage("kwsinit", f"--set=system.ari={ari}", "--admin=admin",
                            f"--admin-password={ADMIN_PASSWORD}")  # fmt: skip
            a.manage("kwsdemo", f"--users={USERS}")
            for node in (a, b):
                node.start()
            for node in (a, b):
                node.wait_ready()

            # -- Upgrading a single server to a redundant pair ------------------------
            log_in(page, a.url, first=True)
            assert node_counts(page, a.url) == (USERS, 0)  # a single server handles all
            page.goto(f"{a.url}/licenses/")
            page.click("text=Order request ▸")
            expect(page.locator("#id_master_ari")).to_have_value(a_ari)
            page.fill("#id_backup_ari", b_ari)
            page.fill("#id_users", "500")
            page.click("form.order-form button[type=submit]")
            order = page.locator("#order-text")
            expect(order).to_contain_text(f"Master server (the existing server): ARI {a_ari}")
            expect(order).to_contain_text(f"Backup server (the NEW server): ARI {b_ari}")
            # The vendor answers the order: a master code for A, a backup code for B.
            a_codes = vendor.server_codes(ari=a_ari, mode="master", users=500)
            b_codes = vendor.server_codes(ari=b_ari, mode="slave", users=500)
            page.goto(f"{a.url}/licenses/")
            page.fill("#id_code", b_codes[0])  # the backup's code, on the master: refused
            page.click("form.install button[type=submit]")
            expect(page.locator('[data-error-for="code"]')).to_contain_text(
                f"this code is for the server with ARI {b_ari}"
            )
            for code in a_codes:
                license_install(page, a.url, code)
            settings_save(page, a.url, mode="master", peer=f"127.0.0.1:{b.port}",
                          secret=SECRET, failover_time="3")  # fmt: skip

            log_in(page, b.url, first=True)
            for code in b_codes:
                license_install(page, b.url, code)
            settings_save(page, b.url, mode="slave", peer=f"127.0.0.1:{a.port}", secret=SECRET)
            pair.wait_paired(timeout=60)
            log_in(page, b.url)  # the master's accounts replaced the new server's
            expect(page.locator('#node-header [data-field="mode"]')).to_have_text("backup (slave)")
            m, s = wait_nodes(page, [a.url, b.url], lambda m, s: m and s and m + s == USERS,
                              "the users split between both servers")  # fmt: skip
            print(f"paired: NODE M {m}, S {s} on both GUIs")
            page.goto(f"{b.url}/licenses/")
            expect(page.locator("#acting-ari")).to_have_text(a_ari)  # the ARI swap

            # On the backup, forms are read-only with the reason, without Save or Delete.
            page.goto(f"{b.url}/users/add/")
            expect(page.locator('[data-field="read-only"]')).to_contain_text("Read-only here")
            expect(page.locator("#id_extension")).to_be_disabled()
            expect(page.get_by_role("button", name="Save")).to_have_count(0)
            page.goto(f"{b.url}/users/1/")
            expect(page.get_by_role("button", name="Delete")).to_have_count(0)
            # The failover time that applies is the master's, shown with its source.
            page.goto(f"{b.url}/configuration/redundancy/")
            expect(page.locator('[data-field="failover-applied"]')).to_contain_text("3 s")
            expect(page.locator('[data-field="failover-applied"]')).to_contain_text("set by")
            # Promotion is refused while the master answers: nothing changes.
            scenario_form(page, b.url, "Promote to master", master_off=True)
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

            # -- Temporary failure of the master ---------------------------------------
            a.kill()
            wait_until(lambda: b_db.phase() == "failover", timeout=30, what="failover on B")
            log_in(page, b.url)
            wait_nodes(page, [b.url], lambda m, s: s == USERS, "the backup serves every user")
            page.goto(f"{b.url}/users/add/")  # during a failover nothing can be changed
            expect(page.locator('[data-field="read-only"]')).to_contain_text("Read-only here")
            a.start()
            a.wait_ready()
            pair.wait_paired(timeout=60)
            log_in(page, a.url)
            wait_nodes(page, [a.url, b.url], lambda m2, s2: (m2, s2) == (m, s),
                       "the master takes its users back")  # fmt: skip

            # -- Failure of the backup, and its automatic return -------------------------
            b.kill()
            wait_until(lambda: a_db.phase() == "failover", timeout=30, what="failover on A")
            wait_nodes(page, [a.url], lambda m2, s2: m2 == USERS, "the master serves every user")
            # The master goes on as a single server would: its configuration stays open.
            page.goto(f"{a.url}/users/add/")
            expect(page.get_by_role("button", name="Save")).to_have_count(1)
            b.start()
            b.wait_ready()
            pair.wait_paired(timeout=60)
            wait_nodes(page, [a.url, b.url], lambda m2, s2: (m2, s2) == (m, s),
                       "the backup returns by itself and takes its users back")  # fmt: skip

            # -- Permanent failure of the master: promote the backup -------------------
            a.kill()
            wait_until(lambda: b_db.phase() == "failover", timeout=30, what="failover on B")
            log_in(page, b.url)
            scenario_form(page, b.url, "Promote to master", master_off=True)
            expect(page.locator(".messages")).to_contain_text("This server is now the master")
            expect(page.locator('#node-header [data-field="mode"]')).to_have_text("master")
            wait_nodes(page, [b.url], lambda m2, s2: m2 == USERS, "the new master serves all")
            page.goto(f"{b.url}/licenses/")
            expect(page.locator("#system-ari")).to_have_text(a_ari)
            expect(page.locator("#acting-ari")).to_have_text(a_ari)
            expect(page.locator('[data-field="missing"]')).to_contain_text("14075250")

            # -- Re-instating the original master --------------------------------------
            # It returns still configured as master, steps down and joins as backup.
            a.start()
            a.wait_ready()
            wait_until(lambda: a_db.config("redundancy.mode") == "slave", timeout=40,
                       what="the old master steps down")  # fmt: skip
            page.goto(f"{b.url}/events/")
            expect(page.locator("main")).to_contain_text(re.compile("step(s|ped)? down"))
            wait_until(lambda: a_db.phase() == "normal" and b_db.phase() == "normal",
                       timeout=60, what="the original master joined as backup")  # fmt: skip
            wait_until(lambda: b_db.value("select seq from core_changeloghead where id = 1")
                       <= (a_db.value("select position from redundancy_replicationstate "
                                      "where id = 1") or 0),
                       timeout=30, what="the original master has every change")  # fmt: skip
            log_in(page, a.url)
            expect(page.locator('#node-header [data-field="mode"]')).to_have_text("backup (slave)")
            wait_nodes(page, [a.url, b.url], lambda m2, s2: m2 and s2 and m2 + s2 == USERS,
                       "the users split with the original master as backup")  # fmt: skip
            # Swap the roles on the acting master: the original master is master again.
            log_in(page, b.url)
            scenario_form(page, b.url, "Swap roles with the backup")
            expect(page.locator(".messages")).to_contain_text(
                "this server is now the backup", timeout=30_000
            )
            wait_until(lambda: (a_db.config("redundancy.mode"), b_db.config("redundancy.mode"))
                       == ("master", "slave"), timeout=40, what="the roles swapped")  # fmt: skip
            wait_until(lambda: a_db.phase() == "normal" and b_db.phase() == "normal",
                       timeout=60, what="the pair normal again")  # fmt: skip
            log_in(page, a.url)
            expect(page.locator('#node-header [data-field="mode"]')).to_have_text("master")
            m, s = wait_nodes(page, [a.url, b.url], lambda m2, s2: m2 and s2,
                              "the users split with the original roles")  # fmt: skip
            print(f"re-instated: NODE M {m}, S {s} on both GUIs")
    except BaseException:
        print(log.dump())
        raise
    print(f"the administration scenarios took {time.monotonic() - started:.0f} s")
