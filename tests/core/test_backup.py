"""Backup files and their restore (core.backup, core.backupfile) on one database."""

import json

import pytest
from django.core.management import CommandError, call_command

from accounts.services import admin_account_create
from basestations.models import BaseStation
from basestations.services import basestation_create, basestation_update, media_resource_create
from core import backupfile
from core.backup import (
    CHANGED_SINCE_PREVIEW,
    RestoreError,
    backup_build,
    backup_open,
    backup_restore,
    restore_pending_load,
    restore_pending_save,
)
from core.changelog import changelog_head, snapshot_build
from core.config import ConfigError
from core.locks import Locked
from core.models import ConfigValue, Event, Phase
from core.selectors import config_read
from core.services import config_import, config_update
from tests.redundancy.test_replication_fakes import become_backup
from users import ipei
from users.models import DectUser
from users.services import dect_user_create, dect_user_delete, dect_user_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

PASSPHRASE = "correct battery staple"
DEVICE_SECRET = "device-secret-0123456789"


def user(extension, **fields):
    return dect_user_create(actor="test", extension=extension, **fields)


def state():
    """Everything a restore may change: the configuration and the replicated rows."""
    snapshot = snapshot_build()
    return config_read(), snapshot["entities"]


@pytest.fixture
def system():
    """A small single-server system with its administrator, its backup written (without
    secrets) at this point."""
    admin_account_create(username="root", password="the password of root")
    config_update(
        changes={"sip.domain": "pbx.example", "system.device_secret": DEVICE_SECRET},
        actor="test",
    )
    user("2001", display_name="Anna", ipei=ipei.make(3180, 1), sip_password="anna-sip-pw")
    user("2002", display_name="Bo", sip_password="bo-sip-pw")
    basestation_create(actor="test", name="rfp-hall", mac="00:30:42:00:00:01")
    return backup_build(actor="test")


def restore(data, *, passphrase="", dry_run=False, fingerprint=""):
    backup = backup_open(data, passphrase=passphrase)
    return backup_restore(backup=backup, actor="alice", dry_run=dry_run, fingerprint=fingerprint)


def change_everything():
    anna = DectUser.objects.get(extension="2001")
    dect_user_update(user=anna, actor="test", display_name="Anna Berg")
    dect_user_delete(user=DectUser.objects.get(extension="2002"), actor="test")
    user("2003", display_name="Cy")
    basestation_update(
        basestation=BaseStation.objects.get(name="rfp-hall"), actor="test", location="Hall 2"
    )
    media_resource_create(actor="test", name="media-1", mac="00:30:42:00:00:99")
    config_update(changes={"sip.domain": "other.example", "sip.rate": "50"}, actor="test")
    admin_account_create(username="bob", password="a password of bob's")


def test_the_preview_lists_every_kind_of_change_and_equals_what_is_applied(system):
    before_config, before_rows = state()
    change_everything()
    preview = restore(system, dry_run=True)
    assert {c.name: (c.old, c.new) for c in preview.config} == {
        "sip.domain": ("other.example", "pbx.example"),
        "sip.rate": ("50", "auto"),
    }
    users = next(e for e in preview.entities if e.name == "user")
    assert [r.label for r in users.added] == ["2002 Bo"]
    assert [r.label for r in users.removed] == ["2003 Cy"]
    assert [(r.label, r.fields) for r in users.changed] == [
        ("2001 Anna", ("display_name: 'Anna Berg' → 'Anna'",))
    ]
    devices = next(e for e in preview.entities if e.name == "device")
    assert [r.label for r in devices.removed] == ["media resource media-1 (00:30:42:00:00:99)"]
    assert devices.changed[0].fields == ("location: 'Hall 2' → ''",)
    accounts = next(e for e in preview.entities if e.name == "admin_account")
    assert [r.label for r in accounts.removed] == ["bob"] and not accounts.changed
    # The preview changed nothing.
    assert DectUser.objects.filter(extension="2003").exists()
    assert config_read()["sip.domain"] == "other.example"

    applied = restore(system, fingerprint=preview.fingerprint)
    assert applied.config == preview.config and applied.entities == preview.entities
    after_config, after_rows = state()
    assert after_config == before_config
    users_after = {r["extension"]: r for r in after_rows["user"]}
    assert set(users_after) == {"2001", "2002"}
    # The file has no secrets: Bo came back without his SIP password, Anna kept hers.
    assert users_after["2001"]["sip_password"] == "anna-sip-pw"
    assert users_after["2002"]["sip_password"] == ""
    assert after_rows["device"] == before_rows["device"]
    assert after_rows["admin_account"] == before_rows["admin_account"]
    assert not restore(system, dry_run=True).changes


def test_a_restore_starts_a_new_change_log_and_records_an_event(system):
    change_everything()
    old_log = changelog_head().log_id
    restore(system)
    head = changelog_head()
    assert head.log_id != old_log and head.seq == 0
    assert Event.objects.filter(kind="backup", message__contains="restored").exists()


def test_a_restore_is_refused_when_the_server_changed_since_the_preview(system):
    change_everything()
    preview = restore(system, dry_run=True)
    user("2004")
    before = state()
    with pytest.raises(RestoreError) as refused:
        restore(system, fingerprint=preview.fingerprint)
    assert CHANGED_SINCE_PREVIEW in refused.value.message
    assert state() == before


def test_a_file_without_secrets_holds_none_and_a_restore_keeps_the_servers(system):
    text = system.decode()
    for secret in ("anna-sip-pw", "bo-sip-pw", DEVICE_SECRET, "pbkdf2", "argon2"):
        assert secret not in text
    assert "sip.domain = pbx.example" in text
    config_update(changes={"system.device_secret": "a-newer-device-secret-42"}, actor="test")
    dect_user_update(user=DectUser.objects.get(extension="2001"), actor="test",
                     sip_password="newer-pw")  # fmt: skip
    assert not restore(system, dry_run=True).changes
    restore(system)
    assert config_read()["system.device_secret"] == "a-newer-device-secret-42"
    assert DectUser.objects.get(extension="2001").sip_password == "newer-pw"


def test_a_file_with_secrets_is_sealed_and_restores_them(system, admin_user):
    data = backup_build(actor="test", include_secrets=True, passphrase=PASSPHRASE)
    for secret in ("anna-sip-pw", DEVICE_SECRET, admin_user.password):
        assert secret not in data.decode()
    header = json.loads(data)["header"]
    assert header["database_uuid"] == config_read()["redundancy.database_uuid"]
    assert header["secrets"] is True and header["created"]
    config_update(changes={"system.device_secret": "a-newer-device-secret-42"}, actor="test")
    dect_user_update(user=DectUser.objects.get(extension="2001"), actor="test",
                     sip_password="newer-pw")  # fmt: skip
    preview = restore(data, passphrase=PASSPHRASE, dry_run=True)
    assert [(c.name, c.old, c.new) for c in preview.config] == [
        ("system.device_secret", "", "changed")
    ]
    users = next(e for e in preview.entities if e.name == "user")
    assert users.changed[0].fields == ("sip_password changed",)
    assert "newer-pw" not in repr(preview) and "anna-sip-pw" not in repr(preview)
    restore(data, passphrase=PASSPHRASE)
    assert config_read()["system.device_secret"] == DEVICE_SECRET
    assert DectUser.objects.get(extension="2001").sip_password == "anna-sip-pw"


def test_a_protected_file_needs_its_passphrase(system):
    data = backup_build(actor="test", include_secrets=True, passphrase=PASSPHRASE)
    change_everything()
    before = state()
    with pytest.raises(RestoreError, match="protected by a passphrase: enter it"):
        restore(data)
    with pytest.raises(RestoreError, match="the passphrase is wrong"):
        restore(data, passphrase="not the passphrase")
    document = json.loads(data)
    document["header"]["node"] = "elsewhere"  # the header is sealed too
    with pytest.raises(RestoreError, match="the passphrase is wrong .*changed"):
        restore(json.dumps(document).encode(), passphrase=PASSPHRASE)
    assert state() == before


def _edited(data, edit):
    document = json.loads(data)
    edit(document)
    return json.dumps(document).encode()


def _set(document, path, value):
    *parents, last = path
    for name in parents:
        document = document[name]
    document[last] = value


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "not complete JSON"),
        (lambda data: data.replace(b'"2001"', b'"2009"', 1), "does not match its checksum"),
        (lambda data: b"redundancy.mode = single\n", "not complete JSON"),
        (lambda data: b"\xff\xfe\x00garbage", "not text"),
        (lambda data: b'{"some": "json"}', "does not say it is a KWS Admin backup"),
        (lambda data: _edited(data, lambda d: _set(d, ["version"], 2)), "unknown backup format"),
        (lambda data: _edited(data, lambda d: d.pop("header")), "header"),
        (lambda data: _edited(data, lambda d: _set(d, ["payload", "config"], 5)), "checksum"),
    ],
)
def test_a_damaged_file_is_refused_and_changes_nothing(system, damage, message):
    change_everything()
    before = state()
    with pytest.raises(RestoreError, match=message) as refused:
        restore(damage(system))
    assert refused.value.message.startswith("Refused, nothing changed")
    assert state() == before


def _rewritten(data, edit):
    """A file as this version writes it, with other content: valid checksum, other values."""
    backup = backupfile.decode(data)
    edit(backup.header, backup.payload)
    return backupfile.encode(backup)


def test_a_file_from_another_system_is_refused_naming_both_uuids(system):
    other = "99999999-2222-4333-8444-555555555555"
    data = _rewritten(system, lambda header, payload: header.update(database_uuid=other))
    change_everything()
    before = state()
    with pytest.raises(RestoreError) as refused:
        restore(data)
    ours = config_read()["redundancy.database_uuid"]
    assert "another system" in refused.value.message
    assert other in refused.value.message and ours in refused.value.message
    assert state() == before


def test_values_that_break_the_rules_are_named_key_by_key_as_kwsconfig_import_says(system):
    bad = "sip.rate = fast\nsip.transport = carrier-pigeon\nsip.nonsense = 1\n"

    def edit(header, payload):
        kept = payload["config"].replace("sip.rate = auto\n", "")
        payload["config"] = kept.replace("sip.transport = udp\n", "") + bad

    data = _rewritten(system, edit)
    change_everything()
    before = state()
    with pytest.raises(RestoreError) as refused:
        restore(data)
    with pytest.raises(ConfigError) as imported:
        config_import(text=bad, actor="test")
    assert set(refused.value.errors) == {"sip.rate", "sip.transport", "sip.nonsense"}
    assert refused.value.errors == imported.value.errors
    assert state() == before


def test_rows_that_cannot_be_stored_are_refused_and_change_nothing(system):
    def edit(header, payload):
        # Two users with one extension: the rows parse, the database refuses them.
        payload["entities"]["user"][1]["extension"] = "2001"

    data = _rewritten(system, edit)
    change_everything()
    before = state()
    with pytest.raises(RestoreError, match="cannot be stored"):
        restore(data, dry_run=True)
    assert state() == before


def test_node_local_keys_are_shown_but_never_restored(system):
    config_update(changes={"redundancy.failover_time": "42"}, actor="test")
    preview = restore(system, dry_run=True)
    assert ("redundancy.failover_time", "Failover time", "42", "15") in preview.local_keys
    assert not preview.changes
    restore(system)
    assert config_read()["redundancy.failover_time"] == 42


def test_a_backup_downloads_but_refuses_a_restore(system):
    become_backup()
    data = backup_build(actor="test")
    assert b"KWS Admin backup" in data
    before = state()
    with pytest.raises(Locked):
        restore(data)
    become_backup(phase=Phase.FAILOVER)
    with pytest.raises(Locked):
        restore(data, dry_run=True)
    assert state() == before


def test_the_previewed_file_waits_sealed_for_its_confirmation(system, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    backup = backup_open(system)
    token, key = restore_pending_save(backup, fingerprint="f" * 64)
    stored = next((tmp_path / "restore").iterdir()).read_bytes()
    assert b"2001" not in stored
    assert restore_pending_load(token, key) == (backup, "f" * 64)
    with pytest.raises(RestoreError, match="expired"):
        restore_pending_load(token, key[:-4] + "AAAA")
    with pytest.raises(RestoreError, match="expired"):
        restore_pending_load("../../etc/passwd", key)


def test_kwsconfig_backup_and_restore_share_the_service(system, tmp_path):
    path = tmp_path / "kws.backup"
    call_command("kwsconfig", "backup", str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    change_everything()
    out = _run("restore", str(path), "--dry-run")
    assert "sip.domain: other.example -> pbx.example" in out and "dry run, nothing changed" in out
    assert config_read()["sip.domain"] == "other.example"
    assert "restored:" in _run("restore", str(path))
    assert config_read()["sip.domain"] == "pbx.example"
    passphrase = tmp_path / "pass"
    passphrase.write_text(PASSPHRASE + "\n")
    call_command("kwsconfig", "backup", str(path), "--include-secrets",
                 "--passphrase-file", str(passphrase))  # fmt: skip
    assert "anna-sip-pw" not in path.read_text()
    assert "nothing to restore" in _run("restore", str(path), "--passphrase-file", str(passphrase))
    path.write_text(path.read_text()[:100])
    with pytest.raises(CommandError, match="Refused, nothing changed"):
        _run("restore", str(path))
    assert ConfigValue.objects.get(key="sip.domain").value == "pbx.example"


def _run(*args):
    import io

    out = io.StringIO()
    call_command("kwsconfig", *args, stdout=out)
    return out.getvalue()


def test_more_users_than_the_licenses_allow_are_refused(system, licensed):
    from licensing.products import USER_LICENSE
    from licensing.services import license_install

    ari = config_read()["system.ari"]
    dect_user_delete(user=DectUser.objects.get(extension="2002"), actor="test")
    license_install(text=licensed.issue(ari=ari, product=USER_LICENSE, users=1), actor="test")
    before = state()
    with pytest.raises(RestoreError, match="allow 1 users and this would make 2"):
        restore(system, dry_run=True)
    assert state() == before


def test_the_preview_warns_an_administrator_whose_account_the_file_removes(system, admin_user):
    notes = restore(system, dry_run=True).notes
    assert any("Your own account alice is not in the file" in note for note in notes)


def test_a_file_without_an_enabled_administrator_is_refused_and_changes_nothing():
    user("2001", display_name="Anna")
    data = backup_build(actor="test")  # written before any account existed
    admin_account_create(username="root", password="the password of root")
    dect_user_delete(user=DectUser.objects.get(extension="2001"), actor="test")
    before = state()
    with pytest.raises(RestoreError) as refused:
        restore(data)
    assert "no enabled administrator account" in str(refused.value)
    assert state() == before
