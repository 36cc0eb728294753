"""An administrator enters license codes and builds the order request in a real browser."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from licensing.models import License
from tests.licensing.factories import OTHER_ARI, OWN_ARI, Vendor, node_setup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "initial-Passw0rd"


def log_in(page: Page, base: str) -> None:
    get_user_model().objects.create_superuser("admin", password=PASSWORD)
    page.goto(f"{base}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


@pytest.fixture
def vendor(settings) -> Vendor:
    vendor = Vendor()
    settings.LICENSE_PUBLIC_KEY = vendor.public_text
    return vendor


def test_a_code_is_entered_and_listed_and_a_wrong_ari_code_is_refused(
    live_server, page, vendor, tmp_path
):
    node_setup()
    log_in(page, live_server.url)
    page.click("nav >> text=Licenses")
    expect(page.locator("h1")).to_have_text("Configuration ▸ Licenses")
    expect(page.locator("#own-ari")).to_have_text(OWN_ARI)
    expect(page.locator("#system-ari")).to_have_text(OWN_ARI)

    page.fill("#id_code", vendor.issue(ari=OTHER_ARI))
    page.click("form.install button[type=submit]")
    expect(page.locator('[data-error-for="code"]')).to_contain_text(
        f"Refused, nothing changed: this code is for the server with ARI {OTHER_ARI}, "
        f"not for this server (ARI {OWN_ARI})"
    )
    assert not License.objects.exists()

    page.fill("#id_code", vendor.issue(users=500, features=("messaging",), serial=0xC0DE))
    page.click("form.install button[type=submit]")
    expect(page.locator(".license-note")).to_have_text(
        "License 14075250 (master redundancy) installed (serial 0000C0DE)."
    )
    row = page.locator('tr[data-product="14075250"]')
    expect(row).to_contain_text("Software license for master KIRK Wireless Server 6000 redundancy")
    expect(row).to_contain_text("500")
    expect(row).to_contain_text("messaging")
    expect(page.locator('[data-error-for="code"]')).to_have_count(0)
    expect(page.locator("#id_code")).to_have_value("")
    page.screenshot(path=str(tmp_path / "licenses.png"), full_page=True)

    page.reload()
    expect(page.locator('tr[data-product="14075250"]')).to_contain_text("500")


def test_the_order_request_is_built_copied_and_downloaded(live_server, page, vendor, tmp_path):
    node_setup()
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/licenses/")
    page.click("text=Order request ▸")
    expect(page.locator("#id_master_ari")).to_have_value(OWN_ARI)
    expect(page.locator("#id_situation_1")).to_be_checked()  # a single server: the upgrade
    page.fill("#id_backup_ari", OTHER_ARI.lower())
    page.fill("#id_users", "500")
    page.click("form.order-form button[type=submit]")

    text = page.locator("#order-text")
    expect(text).to_contain_text(f"Master server (the existing server): ARI {OWN_ARI}")
    expect(text).to_contain_text(f"Backup server (the NEW server): ARI {OTHER_ARI}")
    expect(page.locator('[data-field="upgrade-warning"]')).to_contain_text(
        "all handsets must be subscribed again"
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-order")
    expect(page.locator("#copy-order")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == text.input_value()
    with page.expect_download() as download:
        page.click("#download-order")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"kws-license-order-{OWN_ARI}-{OTHER_ARI}.txt"
    body = saved.read_text()
    assert f"ARI {OWN_ARI}\n  14075250" in body and f"ARI {OTHER_ARI}\n  14075260" in body
    page.screenshot(path=str(tmp_path / "order.png"), full_page=True)
