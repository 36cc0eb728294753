"""Backup and restore on a real pair, through the web pages: a restore on the master
reaches the backup; a damaged file changes neither server; the backup downloads but
refuses a restore."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until
from tests.system.http import Browser, Response
from tests.system.test_replication import export, run

pytestmark = pytest.mark.system

PAGE = "/administration/backup/"


def post_file(browser: Browser, path: str, data: bytes, fields: dict[str, str]) -> Response:
    """POST a multipart form with the backup file, as the page's upload does."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="kws.json"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        browser.base_url + path, data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "X-CSRFToken": browser.csrf_token(), "Referer": browser.base_url + path},
    )  # fmt: skip
    try:
        with browser.opener.open(request, timeout=30) as resp:
            return Response(resp.status, resp.url, resp.read().decode())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.url, exc.read().decode())


def token_of(text: str) -> str:
    start = text.index('name="token" value="') + len('name="token" value="')
    return text[start : text.index('"', start)]


def test_a_restore_on_the_master_reaches_the_backup_and_a_damaged_file_changes_nothing(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=20) as pair:
        pair.wait_paired()
        in_step = lambda: export(pair.backup_db) == export(pair.master_db)  # noqa: E731
        wait_until(in_step, timeout=20, what="the backup to hold the master's data")
        run(
            pair.master,
            "from core.services import config_update as c; "
            "print(c(changes={'sip.domain': 'before.example'}, actor='t').changed)",
        )
        wait_until(lambda: pair.backup_db.config("sip.domain") == "before.example",
                   timeout=20, what="the backup to apply the setting")  # fmt: skip
        master = logged_in(pair.master)
        saved = master.post(PAGE + "download/", {})
        assert saved.status == 200
        backup_file = saved.text.encode()
        assert json.loads(backup_file)["header"]["database_uuid"] == pair.master_db.config(
            "redundancy.database_uuid"
        )
        original = export(pair.master_db)

        # Changes after the backup: a setting, a user added, a user removed.
        run(pair.master, "from core.services import config_update as c; "
                         "from users.models import DectUser; from users.services import "
                         "dect_user_create, dect_user_delete; "
                         "c(changes={'sip.domain': 'after.example'}, actor='t'); "
                         "dect_user_create(actor='t', extension='7777', display_name='Later'); "
                         "u = DectUser.objects.order_by('id').first(); "
                         "print(dect_user_delete(user=u, actor='t'))")  # fmt: skip
        wait_until(
            lambda: pair.backup_db.config("sip.domain") == "after.example" and in_step(),
            timeout=20, what="the backup to apply the changes",
        )  # fmt: skip
        changed = export(pair.master_db)
        assert changed != original

        # The backup downloads, and refuses a restore with the reason.
        backup = logged_in(pair.backup)
        assert "Read-only here: this server is the backup" in backup.get(PAGE).text
        assert json.loads(backup.post(PAGE + "download/", {}).text)["format"] == "KWS Admin backup"
        refused = post_file(backup, PAGE + "restore/", backup_file, {"passphrase": ""})
        assert refused.status == 423 and "configuration is done on the master" in refused.text

        # A damaged file: refused on the master, neither server changed.
        damaged = backup_file.replace(b"sip.domain = before.example", b"sip.domain = x.example")
        assert damaged != backup_file
        refused = post_file(master, PAGE + "restore/", damaged, {"passphrase": ""})
        assert refused.status == 400 and "Refused, nothing changed" in refused.text
        refused = post_file(master, PAGE + "restore/", backup_file[:500], {"passphrase": ""})
        assert refused.status == 400 and "Refused, nothing changed" in refused.text
        assert export(pair.master_db) == changed and export(pair.backup_db) == changed

        # The restore: preview, confirm with the password; the backup resyncs.
        preview = post_file(master, PAGE + "restore/", backup_file, {"passphrase": ""})
        assert preview.status == 200 and "7777 Later" in preview.text
        assert 'data-key="sip.domain"' in preview.text
        done = master.post(PAGE + "restore/confirm/", {"token": token_of(preview.text),
                                                       "confirm": "yes",
                                                       "password": master.password})  # fmt: skip
        assert done.status == 200 and "Restored from the backup" in done.text, done.text[-2000:]
        assert pair.master_db.config("sip.domain") == "before.example"
        wait_until(in_step, timeout=30, what="the backup to resync the restored data")
        restored = export(pair.backup_db)
        assert {u[1] for u in restored["users"]} == {u[1] for u in original["users"]}
        assert restored["settings"] == original["settings"]
        assert pair.backup_db.config("sip.domain") == "before.example"
