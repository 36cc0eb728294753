"""Administration > Audit: the trail with its filters and paging, the account and address a
page's change is recorded with, secrets never shown, and the objects' links to it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from basestations.services import basestation_create
from core.audit import audit_record
from core.models import AuditRecord
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_backup
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

URL = "/administration/audit/"


def page(client, **params):
    return client.get(reverse("audit_list"), params)


def test_the_audit_page_is_in_the_administration_menu(admin_client):
    response = page(admin_client)
    assert response.status_code == 200 and reverse("audit_list") == URL
    assert f'href="{URL}">Audit</a>' in response.text


def test_a_change_made_through_a_page_is_recorded_with_the_account_and_address(admin_client):
    response = admin_client.post(
        reverse("user_create"),
        {"extension": "2100", "display_name": "New", "sip_password": "pw-never-shown-2100",
         "subscription": "none"},
        REMOTE_ADDR="192.0.2.7",
    )  # fmt: skip
    assert response.status_code == 302
    record = AuditRecord.objects.get(kind="user")
    assert (record.account, record.address, record.action) == ("alice", "192.0.2.7", "created")
    text = page(admin_client, kind="user").text
    assert "User 2100 New created." in text and "192.0.2.7" in text and "alice" in text
    assert "pw-never-shown-2100" not in text and "<em>changed</em>" in text


def test_secrets_never_appear_on_the_page(admin_client):
    config_update(changes={"redundancy.secret": "pairing-secret-never-shown",
                           "phonebook.bind_password": "bind-password-never-shown"},
                  actor="alice")  # fmt: skip
    dect_user_create(actor="alice", extension="2001", sip_password="sip-pw-never-shown")
    text = page(admin_client).text + page(admin_client, text="never").text
    assert "redundancy.secret" in text and "phonebook.bind_password" in text
    for secret in ("pairing-secret-never-shown", "bind-password-never-shown",
                   "sip-pw-never-shown", "pbkdf2", "argon2"):  # fmt: skip
        assert secret not in text


def test_filters_by_account_kind_object_time_and_text(admin_client):
    AuditRecord.objects.all().delete()
    audit_record(kind="user", object_id="1", object_repr="2001 Anna", action="created",
                 actor="alice", summary="User 2001 Anna created.")  # fmt: skip
    audit_record(kind="user", object_id="2", object_repr="2002 Bo", action="created",
                 actor="bob", summary="User 2002 Bo created.")  # fmt: skip
    audit_record(kind="config", object_id="sip.domain", action="changed", actor="bob",
                 after={"value": "pbx.example"})  # fmt: skip
    audit_record(kind="config", object_id="redundancy.failover_time", action="changed",
                 actor="alice")  # fmt: skip
    old = audit_record(kind="license", object_id="1000", action="installed", actor="alice",
                       summary="License of last year.")  # fmt: skip
    AuditRecord.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=400))

    def shown(**params) -> set[str]:
        text = page(admin_client, **params).text
        return {r.summary for r in AuditRecord.objects.all() if r.summary in text}

    assert shown(account="bob") == {
        "User 2002 Bo created.",
        "Configuration key sip.domain changed.",
    }
    assert shown(kind="user", object="1") == {"User 2001 Anna created."}
    assert shown(kind="config", object="sip.") == {"Configuration key sip.domain changed."}
    assert shown(text="pbx.example") == {"Configuration key sip.domain changed."}
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "License of last year." not in shown(since=since) and len(shown(since=since)) == 4
    until = (timezone.now() - timedelta(days=300)).strftime("%Y-%m-%dT%H:%M")
    assert shown(until=until) == {"License of last year."}
    assert "No audit records match this filter." in page(admin_client, account="nobody").text


def test_a_bad_time_range_is_named_and_shows_nothing(admin_client):
    audit_record(kind="user", action="created", actor="alice", summary="Something recorded.")
    response = page(admin_client, since="tomorrow")
    assert response.status_code == 400 and 'data-error-for="since"' in response.text
    assert "Something recorded." not in response.text
    response = page(admin_client, since="2026-02-01T10:00", until="2026-01-01T10:00")
    assert response.status_code == 400
    assert "must be after the start of the time range" in response.text


def test_pages_of_fifty_keep_the_filter(admin_client):
    for n in range(120):
        audit_record(kind="user", action="created", actor="alice", summary=f"Record {n:03d}.")
    first = page(admin_client, kind="user").text
    assert "Record 119." in first and "Record 069." not in first  # newest first
    assert "page 1 of 3" in first and "?kind=user&amp;page=2" in first
    third = page(admin_client, kind="user", page=3).text
    assert "Record 000." in third and "Record 020." not in third


def test_an_htmx_filter_gets_the_table_only(admin_client):
    audit_record(kind="user", action="created", actor="alice", summary="Only the table.")
    response = admin_client.get(reverse("audit_list"), {"kind": "user"}, HTTP_HX_REQUEST="true")
    assert response.text.lstrip().startswith('<div id="audit-table">')
    assert "Only the table." in response.text


def test_a_backup_shows_the_trail_read_only(admin_client):
    audit_record(kind="user", action="created", actor="alice", summary="Seen on the backup.")
    become_backup()
    response = page(admin_client)
    assert response.status_code == 200 and "Seen on the backup." in response.text


def test_objects_link_to_their_history(admin_client):
    user = dect_user_create(actor="alice", extension="2001")
    rfp = basestation_create(actor="alice", name="RFP 1", mac="00:13:D1:0A:0B:01")
    links = {
        reverse("user_edit", args=[user.pk]): f"{URL}?kind=user&amp;object={user.pk}",
        reverse(
            "basestation_edit", args=[rfp.pk]
        ): f"{URL}?kind=basestation&amp;object=rfp%3A{rfp.pk}",
        reverse("sip_settings"): f"{URL}?kind=config&amp;object=sip.",
        reverse("redundancy_settings"): f"{URL}?kind=config&amp;object=redundancy.",
        reverse("phonebook_settings"): f"{URL}?kind=config&amp;object=phonebook.",
        reverse("license_list"): f"{URL}?kind=license",
    }
    for page_url, link in links.items():
        assert link in admin_client.get(page_url).text, page_url
    history = admin_client.get(f"{URL}?kind=basestation&object=rfp:{rfp.pk}").text
    assert "Base station RFP 1" in history and "created" in history


def test_a_kind_another_app_records_can_be_filtered_on(admin_client):
    audit_record(kind="role", object_id="operators", action="created", actor="alice",
                 summary="Role operators created.")  # fmt: skip
    audit_record(kind="user", action="created", actor="alice", summary="Not a role.")
    response = page(admin_client, kind="role")
    assert response.status_code == 200
    assert "Role operators created." in response.text and "Not a role." not in response.text
