"""The audit trail: every kind of change records who, from where, on which server, and
its values before and after; secrets only as "changed"; replicated as entries of its own."""

import json
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from accounts.services import (
    admin_account_active_set,
    admin_account_add,
    admin_account_create,
    admin_account_delete,
    admin_account_role_set,
    admin_password_accept,
    admin_password_reset,
    admin_password_set,
)
from basestations.services import (
    basestation_create,
    basestation_delete,
    basestation_update,
    media_resource_create,
    media_resource_update,
)
from core import audit
from core.audit import audit_record, audit_request
from core.backup import backup_build, backup_open, backup_restore
from core.changelog import ENTITIES, changelog_entries, snapshot_build
from core.models import AuditRecord, ChangeLogEntry, NodeState, Phase
from core.selectors import config_read
from core.services import config_update, database_uuid_reset
from licensing.config import SYSTEM_ARI_KEY
from licensing.products import MASTER_REDUNDANCY
from licensing.services import license_install, system_ari_change
from phonebook.services import phonebook_csv_replace
from redundancy import scenarios
from tests.redundancy.test_replication_fakes import FakeMaster, become_backup, become_master
from users.services import dect_user_create, dect_user_delete, dect_user_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

ADDRESS = "10.20.30.40"
SECRETS = ("sip-secret-one", "sip-secret-two", "a-pairing-secret-0123456789",
           "bind-secret-of-ldap", "pbkdf2", "argon2")  # fmt: skip


@pytest.fixture
def from_browser(admin_user):
    """The changes of a test are made by alice's request from ADDRESS."""
    request = RequestFactory().post("/", REMOTE_ADDR=ADDRESS)
    request.user = admin_user
    with audit_request(request):
        yield request


def last(kind: str, **filters) -> AuditRecord:
    return AuditRecord.objects.filter(kind=kind, **filters).first()


def changes(record: AuditRecord) -> dict[str, tuple[str, str]]:
    return {c["field"]: (c["before"], c["after"]) for c in record.changes}


def assert_from_alice(record: AuditRecord, settings) -> None:
    assert (record.account, record.address) == ("alice", ADDRESS)
    assert record.server == settings.NODE_NAME
    assert timezone.now() - record.created < timedelta(minutes=1)


def assert_no_secret_anywhere() -> None:
    """No record, and no change-log entry of a record, holds a secret's value."""
    records = json.dumps(list(AuditRecord.objects.values()), default=str)
    entries = json.dumps(list(ChangeLogEntry.objects.filter(entity="audit").values("data")))
    for secret in SECRETS:
        assert secret not in records and secret not in entries


def test_a_configuration_key_records_before_after_account_and_address(from_browser, settings):
    old = config_read()["sip.domain"]
    config_update(changes={"sip.domain": "pbx.example", "sip.rate": "50"}, actor="alice")
    record = last("config", object_id="sip.domain")
    assert_from_alice(record, settings)
    assert changes(record) == {"value": (old, "pbx.example")}
    assert record.action == "changed" and "sip.domain" in record.summary
    assert last("config", object_id="sip.rate") is not None


def test_secret_keys_are_recorded_as_changed_never_their_values(from_browser):
    config_update(changes={"redundancy.secret": "a-pairing-secret-0123456789",
                           "phonebook.bind_password": "bind-secret-of-ldap"},
                  actor="alice")  # fmt: skip
    for key in ("redundancy.secret", "phonebook.bind_password"):
        record = last("config", object_id=key)
        assert record.changes == [
            {"field": "value", "before": "", "after": "changed", "secret": True}
        ]
    assert_no_secret_anywhere()


def test_a_user_records_creation_change_and_deletion_without_its_sip_password(
    from_browser, settings
):
    user = dect_user_create(actor="alice", extension="2001", display_name="Anna",
                            sip_password="sip-secret-one")  # fmt: skip
    created = last("user", object_id=str(user.pk), action="created")
    assert_from_alice(created, settings)
    assert changes(created)["extension"] == ("", "2001")
    assert changes(created)["sip_password"] == ("", "changed")
    dect_user_update(user=user, actor="alice", display_name="Anna Berg",
                     sip_password="sip-secret-two")  # fmt: skip
    changed = last("user", object_id=str(user.pk), action="changed")
    assert changes(changed) == {"display_name": ("Anna", "Anna Berg"),
                                "sip_password": ("", "changed")}  # fmt: skip
    pk = user.pk
    dect_user_delete(user=user, actor="alice")
    deleted = last("user", object_id=str(pk), action="deleted")
    assert changes(deleted)["extension"] == ("2001", "")
    assert_no_secret_anywhere()


def test_a_refused_change_records_nothing(from_browser):
    with pytest.raises(Exception, match="1 to 32 digits"):
        dect_user_create(actor="alice", extension="20a1")
    assert not AuditRecord.objects.filter(kind="user").exists()


def test_a_base_station_records_its_change(from_browser, settings):
    rfp = basestation_create(actor="alice", name="RFP 1", mac="00:13:D1:0A:0B:01")
    basestation_update(basestation=rfp, actor="alice", location="Hall")
    record = last("basestation", object_id=f"rfp:{rfp.pk}", action="changed")
    assert_from_alice(record, settings)
    assert changes(record) == {"location": ("", "Hall")}
    pk = rfp.pk
    basestation_delete(basestation=rfp, actor="alice")
    assert last("basestation", object_id=f"rfp:{pk}", action="deleted") is not None


def test_a_media_resource_records_its_change(from_browser, settings):
    media = media_resource_create(actor="alice", name="media-1", mac="00:30:42:00:00:99")
    media_resource_update(media_resource=media, actor="alice", name="media-2")
    record = last("media_resource", object_id=f"media:{media.pk}", action="changed")
    assert_from_alice(record, settings)
    assert changes(record) == {"name": ("media-1", "media-2")}


def test_a_license_records_what_was_installed(from_browser, settings, license_vendor):
    ari = config_read()["system.ari"]
    installed = license_install(
        text=license_vendor.issue(ari=ari, product=MASTER_REDUNDANCY, users=500), actor="alice"
    )
    record = last("license", object_id=installed.serial_text)
    assert_from_alice(record, settings)
    assert changes(record)["users"] == ("", "500") and changes(record)["ari"] == ("", ari)
    assert installed.code not in json.dumps(record.changes)  # the code itself is not kept


def test_an_account_records_its_password_change_only_as_changed(from_browser, settings):
    bob = admin_account_create(username="bob", password="pbkdf2 bob's first one", actor="alice")
    assert changes(last("account", object_id="bob", action="created"))["password"] == (
        "",
        "changed",
    )
    admin_password_set(user=bob, password="bob's second password", actor="alice")
    record = last("account", object_id="bob", action="password changed")
    assert_from_alice(record, settings)
    assert changes(record)["password"] == ("", "changed")
    assert changes(record)["password_change_required"] == ("yes", "no")
    assert_no_secret_anywhere()


def test_the_administrators_page_writes_record_their_before_and_after(from_browser, settings):
    admin_account_add(username="nina", password="nina's first password", role="operator",
                      actor="alice")  # fmt: skip
    assert changes(last("account", object_id="nina", action="created"))["is_superuser"] == (
        "",
        "no",
    )
    admin_account_role_set(username="nina", role="administrator", actor="alice")
    record = last("account", object_id="nina", action="role changed")
    assert_from_alice(record, settings)
    assert changes(record)["is_superuser"] == ("no", "yes")
    admin_account_active_set(username="nina", active=False, actor="alice")
    assert changes(last("account", object_id="nina", action="disabled"))["is_active"] == (
        "yes",
        "no",
    )
    admin_password_reset(username="nina", password="nina's reset password", actor="alice")
    assert changes(last("account", object_id="nina", action="password reset"))["password"] == (
        "",
        "changed",
    )
    admin_account_delete(username="nina", actor="alice")
    assert last("account", object_id="nina", action="deleted").summary == "Account nina deleted."
    assert_no_secret_anywhere()


def test_a_password_change_forwarded_by_the_backup_is_recorded_by_the_master():
    become_master()
    get_user_model().objects.create_superuser("carol", password="x" * 20)
    new_hash = make_password("carol's new one")
    request = RequestFactory().post("/api/peer/admin_account", REMOTE_ADDR="10.0.0.2")
    with audit_request(request):
        status, _ = admin_password_accept({"username": "carol", "password": new_hash})
    assert status == 200
    record = last("account", object_id="carol")
    assert (record.account, record.address) == ("carol", "10.0.0.2 (the backup)")
    assert changes(record)["password"] == ("", "changed")
    assert new_hash not in json.dumps(record.changes)


def test_the_uuid_reset_and_the_system_ari_change_are_recorded_as_scenarios(from_browser, settings):
    old_uuid = config_read()["redundancy.database_uuid"]
    database_uuid_reset(actor="alice")
    reset = last("scenario", object_id="database_uuid_reset")
    assert_from_alice(reset, settings)
    assert changes(reset)["redundancy.database_uuid"][0] == old_uuid
    system_ari_change(ari="1C0FFEE0", actor="alice")
    record = last("scenario", object_id="system_ari_change")
    assert_from_alice(record, settings)
    assert changes(record)[SYSTEM_ARI_KEY][1] == "1C0FFEE0"


def test_a_restore_is_recorded_and_backup_files_leave_the_trail_out(from_browser, settings):
    config_update(changes={"sip.domain": "one.example"}, actor="alice")
    data = backup_build(actor="alice")
    assert b"one.example" in data and b"sip.domain changed" not in data
    config_update(changes={"sip.domain": "two.example"}, actor="alice")
    before = AuditRecord.objects.count()
    backup_restore(backup=backup_open(data), actor="alice")
    record = last("scenario", object_id="restore")
    assert_from_alice(record, settings)
    assert "Configuration restored" in record.summary
    assert changes(record)["sip.domain"] == ("two.example", "one.example")
    # The restore keeps every earlier record: history is not rewritten.
    assert AuditRecord.objects.count() == before + 1


def test_a_promotion_is_recorded_on_the_promoted_server_and_replicated(from_browser, settings):
    become_backup(phase=Phase.FAILOVER)
    NodeState.objects.filter(pk=1).update(peer_seen_at=timezone.now() - timedelta(seconds=30))
    scenarios.backup_promote(actor="alice", master_off=True)
    record = last("scenario", object_id="promote")
    assert_from_alice(record, settings)
    assert changes(record)["redundancy.mode"] == ("slave", "master")
    # Now the master: the record is an entry of its log, which the old master follows.
    assert ChangeLogEntry.objects.filter(entity="audit", key=record.uid).exists()


def test_a_switchover_is_recorded_by_the_new_master_with_who_asked_from_where(settings):
    become_backup()
    master = FakeMaster()
    status, _ = scenarios.switchover_accept(
        {"head": master.head, "actor": "alice", "address": ADDRESS}, client=master
    )
    assert status == 200
    record = last("scenario", object_id="switchover")
    assert_from_alice(record, settings)


def test_on_a_backup_a_record_stays_local_and_the_masters_are_applied_once():
    become_backup()
    logged = ChangeLogEntry.objects.count()
    config_update(changes={"redundancy.failover_time": "20"}, actor="alice")
    local = last("config", object_id="redundancy.failover_time")
    assert local is not None and ChangeLogEntry.objects.count() == logged
    data = {**audit._data(local), "uid": "a-record-of-the-master", "server": "kws-a"}
    ENTITIES["audit"].apply("add", data["uid"], data)
    ENTITIES["audit"].apply("add", data["uid"], data)  # idempotent
    assert AuditRecord.objects.filter(uid="a-record-of-the-master", server="kws-a").count() == 1


def test_a_snapshot_carries_the_trail_and_its_restore_only_adds():
    record = audit_record(kind="scenario", action="test", summary="kept", actor="alice")
    have = AuditRecord.objects.count()
    rows = snapshot_build()["entities"]["audit"]
    assert len(rows) == have and record.uid in {row["uid"] for row in rows}
    theirs = {**rows[0], "uid": "from-the-master", "summary": "theirs"}
    ENTITIES["audit"].restore([theirs])
    assert AuditRecord.objects.count() == have + 1
    assert {"kept", "theirs"} <= set(AuditRecord.objects.values_list("summary", flat=True))


def test_each_record_is_its_own_change_log_entry_in_the_same_transaction():
    dect_user_create(actor="alice", extension="2001")
    entries = changelog_entries(after=0, limit=100)
    kinds = [(e["entity"], e["op"]) for e in entries]
    assert ("user", "upsert") in kinds and ("audit", "add") in kinds
    record = AuditRecord.objects.get(kind="user")
    audit_entry = next(e for e in entries if e["entity"] == "audit" and e["key"] == record.uid)
    assert audit_entry["data"]["summary"] == record.summary == "User 2001 created."


def test_a_command_is_recorded_with_its_name_and_the_os_user(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["manage.py", "kwsconfig", "set", "sip.domain=c.example"])
    monkeypatch.setattr(audit, "_os_user", lambda: "operator")
    call_command("kwsconfig", "set", "sip.domain=c.example")
    record = last("config", object_id="sip.domain")
    assert (record.account, record.address) == ("operator", "command line: kwsconfig")


def test_a_csv_phonebook_upload_records_how_many_entries_it_replaced(from_browser, settings):
    phonebook_csv_replace(data=b"name,number\nAnna,2001\nBo,2002\n", actor="alice")
    record = last("config", object_id="phonebook.csv")
    assert_from_alice(record, settings)
    assert changes(record) == {"entries": ("0", "2")}


def test_kwsaudit_prints_the_filtered_trail_without_secrets(capsys):
    config_update(changes={"sip.domain": "pbx.example", "redundancy.secret": SECRETS[2]},
                  actor="alice")  # fmt: skip
    call_command("kwsaudit", "--kind=config", "--object=sip.")
    out = capsys.readouterr().out
    assert "alice: Configuration key sip.domain changed." in out
    assert "value: - -> pbx.example" in out and "redundancy.secret" not in out
    call_command("kwsaudit", "--text=redundancy.secret")
    out = capsys.readouterr().out
    assert "value: changed" in out and SECRETS[2] not in out
    call_command("kwsaudit", "--kind=config", "--since=2000-01-01", "--until=2000-01-02")
    assert capsys.readouterr().out == ""  # nothing that long ago
    with pytest.raises(CommandError, match="is not a time"):
        call_command("kwsaudit", "--since=yesterday")
