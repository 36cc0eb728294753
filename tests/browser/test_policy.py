"""In a real browser, the strict Content-Security-Policy breaks nothing: no violation on
any page, the confirmations ask, htmx still polls, and a device name full of quotes and
script tags runs nothing."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from basestations.services import basestation_create

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("licensed"),
]

EVIL = "x'); alert('owned'); ('\"><script>alert(2)</script>"[:64]


def test_pages_run_under_the_policy_and_confirm_before_deleting(live_server, page: Page):
    get_user_model().objects.create_superuser("admin", password="a-Passw0rd-to-use")
    rfp = basestation_create(actor="test", name=EVIL, mac="00:13:D1:0A:0B:01")
    violations, dialogs = [], []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-Passw0rd-to-use")
    page.click("button[type=submit]")
    for path in ("/", "/users/", "/basestations/", "/configuration/redundancy/", "/licenses/",
                 "/events/", "/statistics/", "/administration/administrators/",
                 "/configuration/phonebook/", "/administration/backup/",
                 f"/basestations/{rfp.pk}/"):  # fmt: skip
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    # The delete form asks first (a data attribute and the vendored script, not inline
    # JavaScript); dismissed, nothing is deleted and no script of the name ran.
    page.click("button.danger")
    assert len(dialogs) == 1 and dialogs[0].startswith("Delete base station x');")
    assert "owned" not in " ".join(dialogs[1:])
    expect(page.locator("h1")).to_contain_text("Base station")
    assert violations == []
    # htmx still polls the header under the policy.
    with page.expect_response(lambda r: "/partials/node-header/" in r.url, timeout=5000):
        pass
