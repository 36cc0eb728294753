"""Configuration > SIP in a real browser: under the strict policy, the registration state
polls, and a refused value is shown beside its field with nothing saved."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from core.selectors import config_read
from tests.browser.test_redundancy_form import log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("licensed"),
]


def test_the_sip_page_polls_its_state_and_shows_a_refused_value_at_its_field(
    live_server, page: Page
):
    get_user_model().objects.create_superuser("admin", password="initial-Passw0rd")
    violations = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    log_in(page, live_server.url)
    page.click("nav >> text=SIP")
    expect(page.locator("h1")).to_have_text("Configuration ▸ SIP")
    expect(page.locator('[data-field="pbx"]')).to_contain_text("users are not registered")
    with page.expect_response(
        lambda r: r.url.endswith("/configuration/sip/") and r.request.headers.get("hx-request")
    ):
        pass  # the state fragment is polled

    page.fill("#id_registrar", "pbx.example.com")
    page.fill("#id_expires", "30")
    page.click("main form.settings button[type=submit]")
    expect(page.locator('[data-error-for="expires"]')).to_contain_text(
        "Registration expiry (s): 30 is out of range; use 60 to 86400 seconds"
    )
    assert config_read()["sip.registrar"] == ""  # the valid field is not saved either
    page.fill("#id_expires", "600")
    page.click("main form.settings button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("SIP settings saved.")
    assert (config_read()["sip.registrar"], config_read()["sip.expires"]) == (
        "pbx.example.com",
        600,
    )
    assert violations == []
