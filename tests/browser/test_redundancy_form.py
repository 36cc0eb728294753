"""An administrator logs in and saves the Redundancy form in a real browser."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from accounts.models import PasswordChangeRequired
from core.selectors import config_read

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("licensed"),
]


def log_in(page: Page, base: str, password: str = "initial-Passw0rd") -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_first_login_changes_the_password_then_saves_the_redundancy_form(
    live_server, page, tmp_path
):
    user = get_user_model().objects.create_superuser("admin", password="initial-Passw0rd")
    PasswordChangeRequired.objects.create(user=user)

    log_in(page, live_server.url)
    expect(page.locator("h1")).to_have_text("Change password")
    page.fill("#id_old_password", "initial-Passw0rd")
    page.fill("#id_new_password1", "a-new-Passw0rd-9")
    page.fill("#id_new_password2", "a-new-Passw0rd-9")
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Status")

    page.click("nav >> text=Redundancy")
    page.select_option("#id_mode", "master")
    page.fill("#id_peer", "10.0.0.2")
    page.fill("#id_failover_time", "-5")
    page.click("main form.settings button[type=submit]")
    expect(page.locator('[data-error-for="failover_time"]')).to_contain_text(
        "Failover time (s): -5 is negative"
    )
    expect(page.locator('[data-error-for="secret"]')).to_contain_text(
        "required when the node type is master"
    )
    assert config_read()["redundancy.mode"] == "single"

    page.fill("#id_failover_time", "20")
    page.fill("#id_secret", "browser-pairing-secret")
    page.click("main form.settings button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Redundancy settings saved.")
    values = config_read()
    assert (values["redundancy.mode"], values["redundancy.peer"]) == ("master", "10.0.0.2")
    assert values["redundancy.failover_time"] == 20
    # The htmx-polled header picks up the new mode without a reload of the page.
    expect(page.locator('#node-header [data-field="mode"]')).to_have_text("master")
    page.screenshot(path=str(tmp_path / "redundancy.png"), full_page=True)


def test_the_header_refreshes_live(live_server, page):
    get_user_model().objects.create_superuser("admin", password="initial-Passw0rd")
    log_in(page, live_server.url)
    expect(page.locator('#node-header [data-field="mode"]')).to_have_text("single")
    from core.services import config_update

    config_update(
        changes={"redundancy.mode": "slave", "redundancy.peer": "10.0.0.1",
                 "redundancy.secret": "x" * 16},
        actor="test",
    )  # fmt: skip
    expect(page.locator('#node-header [data-field="mode"]')).to_have_text(
        "backup (slave)", timeout=6000
    )
    assert re.search("slave", page.content())
