"""Administration > Backup and restore: download, preview, confirm; read-only where locked."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.backup import backup_build
from core.models import ConfigValue, Phase
from core.rules import LOCK_BACKUP, LOCK_FAILOVER
from core.selectors import config_read
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_backup
from users.models import DectUser
from users.services import dect_user_create, dect_user_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

PASSWORD = "correct horse 42"  # the admin_user fixture's
PASSPHRASE = "correct battery staple"


@pytest.fixture
def system(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    config_update(changes={"sip.domain": "pbx.example"}, actor="test")
    dect_user_create(actor="test", extension="2001", display_name="Anna", sip_password="anna-pw")
    return backup_build(actor="test")


def upload(client, data, **fields):
    return client.post(
        reverse("backup_restore_preview"),
        {"file": SimpleUploadedFile("kws.json", data), **fields},
    )


def confirm(client, token, **fields):
    return client.post(reverse("backup_restore_confirm"), {"token": token, **fields})


def token_of(response):
    text = response.text
    start = text.index('name="token" value="') + len('name="token" value="')
    return text[start : text.index('"', start)]


def test_the_page_offers_download_and_restore(admin_client):
    page = admin_client.get(reverse("backup_restore")).text
    assert "Download backup" in page and "Preview the restore" in page


def test_download_without_secrets_leaves_them_out(admin_client, system):
    response = admin_client.post(reverse("backup_download"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="kws-backup-')
    assert b"anna-pw" not in response.content
    assert json.loads(response.content)["header"]["secrets"] is False


def test_download_with_secrets_needs_the_passphrase_twice(admin_client, system):
    url = reverse("backup_download")
    response = admin_client.post(url, {"include_secrets": "on", "passphrase": "short"})
    assert response.status_code == 400 and "at least 10 characters" in response.text
    response = admin_client.post(url, {"include_secrets": "on", "passphrase": PASSPHRASE,
                                       "passphrase_again": PASSPHRASE + "x"})  # fmt: skip
    assert response.status_code == 400 and "the two passphrases differ" in response.text
    response = admin_client.post(url, {"include_secrets": "on", "passphrase": PASSPHRASE,
                                       "passphrase_again": PASSPHRASE})  # fmt: skip
    assert response.status_code == 200 and b"anna-pw" not in response.content
    assert "ciphertext" in json.loads(response.content)


def test_preview_then_confirm_applies_what_was_shown(admin_client, system):
    config_update(changes={"sip.domain": "other.example"}, actor="test")
    dect_user_update(user=DectUser.objects.get(extension="2001"), actor="test",
                     display_name="Anna Berg")  # fmt: skip
    dect_user_create(actor="test", extension="2002", display_name="Bo")
    preview = upload(admin_client, system)
    assert preview.status_code == 200
    text = preview.text
    assert 'data-key="sip.domain"' in text and "other.example" in text
    assert "2002 Bo" in text and "display_name: &#x27;Anna Berg&#x27; → &#x27;Anna&#x27;" in text
    assert "anna-pw" not in text
    token = token_of(preview)
    # Without the tick or with a wrong password nothing changes, and the preview stays.
    again = confirm(admin_client, token, password=PASSWORD)
    assert "Tick the confirmation" in again.text
    again = confirm(admin_client, token_of(again), confirm="yes", password="wrong")
    assert "Your password was not right" in again.text
    assert config_read()["sip.domain"] == "other.example"
    done = confirm(admin_client, token_of(again), confirm="yes", password=PASSWORD)
    assert done.status_code == 302
    assert config_read()["sip.domain"] == "pbx.example"
    assert list(DectUser.objects.values_list("extension", "display_name")) == [("2001", "Anna")]
    # The previewed file is used once.
    assert (
        "expired"
        in admin_client.get(
            confirm(admin_client, token, confirm="yes", password=PASSWORD)["Location"]
        ).text
    )


def test_a_change_since_the_preview_is_refused_and_previewed_again(admin_client, system):
    config_update(changes={"sip.domain": "other.example"}, actor="test")
    token = token_of(upload(admin_client, system))
    config_update(changes={"sip.rate": "50"}, actor="test")
    refused = confirm(admin_client, token, confirm="yes", password=PASSWORD)
    assert "changed since the preview: preview again" in refused.text
    assert 'data-key="sip.rate"' in refused.text  # the new preview shows the new change
    assert config_read()["sip.domain"] == "other.example"


def test_a_protected_file_on_the_page(admin_client, system):
    data = backup_build(actor="test", include_secrets=True, passphrase=PASSPHRASE)
    dect_user_update(user=DectUser.objects.get(extension="2001"), actor="test",
                     sip_password="newer-pw")  # fmt: skip
    refused = upload(admin_client, data)
    assert refused.status_code == 400 and "protected by a passphrase" in refused.text
    refused = upload(admin_client, data, passphrase="not it at all")
    assert refused.status_code == 400 and "the passphrase is wrong" in refused.text
    preview = upload(admin_client, data, passphrase=PASSPHRASE)
    assert "sip_password changed" in preview.text
    assert "newer-pw" not in preview.text and "anna-pw" not in preview.text


def test_damaged_and_foreign_files_are_refused_on_the_page(admin_client, system):
    before = dict(ConfigValue.objects.values_list("key", "value"))
    refused = upload(admin_client, system[:-40])
    assert refused.status_code == 400 and "Refused, nothing changed" in refused.text
    document = json.loads(system)
    document["header"]["database_uuid"] = "99999999-2222-4333-8444-555555555555"
    refused = upload(admin_client, json.dumps(document).encode())
    assert "checksum" in refused.text  # the header is covered by the checksum
    assert dict(ConfigValue.objects.values_list("key", "value")) == before


@pytest.mark.parametrize(("phase", "reason"), [(Phase.NORMAL, LOCK_BACKUP),
                                               (Phase.FAILOVER, LOCK_FAILOVER)])  # fmt: skip
def test_on_a_backup_download_works_and_restore_is_refused_with_423(
    admin_client, system, phase, reason
):
    become_backup(phase=phase)
    data = backup_build(actor="test")
    page = admin_client.get(reverse("backup_restore")).text
    assert f"Read-only here: {reason}" in page and "Preview the restore" not in page
    assert admin_client.post(reverse("backup_download")).status_code == 200
    refused = upload(admin_client, data)
    assert refused.status_code == 423 and reason in refused.text
    refused = confirm(admin_client, "x" * 32, confirm="yes", password=PASSWORD)
    assert refused.status_code == 423
