"""The Users list: search, filters, sorting, pagination, add/edit/delete and CSV."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.services import config_update
from tests.redundancy.test_replication_fakes import become_master
from users import ipei
from users.models import DectUser, SipRegistration
from users.services import dect_user_create, dect_user_seed_demo

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def make(extension, **fields):
    return dect_user_create(actor="test", extension=extension, **fields)


def list_page(client, **params):
    return client.get(reverse("user_list"), params)


def test_the_list_shows_every_column_but_never_the_sip_password(admin_client):
    make("2001", display_name="Anna Berg", ipei=ipei.make(3180, 1), sip_username="anna",
         sip_password="s3cret-pw")  # fmt: skip
    page = list_page(admin_client).text
    for text in ("2001", "Anna Berg", ipei.display(ipei.make(3180, 1)), "anna", "NODE",
                 "not registered"):  # fmt: skip
        assert text in page
    assert "s3cret-pw" not in page


def test_search_matches_extension_name_and_ipei(admin_client):
    make("2001", display_name="Anna Berg")
    make("3001", display_name="Bo Holm", ipei=ipei.make(3180, 42))
    assert "Bo Holm" not in list_page(admin_client, q="Anna").text
    assert "Anna Berg" not in list_page(admin_client, q="300").text
    found = list_page(admin_client, q=ipei.display(ipei.make(3180, 42))).text
    assert "Bo Holm" in found and "Anna Berg" not in found


def test_filters_by_node_subscription_and_registration(admin_client):
    a = make("2001", display_name="on master")
    b = make("2002", display_name="on backup")
    become_master()  # the pair serves each user on its home: A on the master, B the backup
    DectUser.objects.filter(pk=a.pk).update(home="A")
    DectUser.objects.filter(pk=b.pk).update(home="B", subscription="subscribed")
    SipRegistration.objects.create(user=a, state="failed", reason="403 Forbidden",
                                   changed_at="2026-01-01T00:00:00Z")  # fmt: skip
    assert "on master" not in list_page(admin_client, node="S").text
    assert "on backup" not in list_page(admin_client, subscription="none").text
    failed = list_page(admin_client, registration="failed").text
    assert "on master" in failed and "403 Forbidden" in failed and "on backup" not in failed
    assert "on backup" in list_page(admin_client, registration="unregistered").text


def test_sorting_by_display_name(admin_client):
    make("1", display_name="Zed")
    make("2", display_name="Adam")
    page = list_page(admin_client, sort="display_name").text
    assert page.index("Adam") < page.index("Zed")
    page = list_page(admin_client, sort="-display_name").text
    assert page.index("Zed") < page.index("Adam")


def test_htmx_requests_get_only_the_table(admin_client):
    make("2001")
    response = admin_client.get(reverse("user_list"), {"q": "2001"}, HTTP_HX_REQUEST="true")
    assert '<div id="user-table">' in response.text and "<nav" not in response.text


def test_a_page_costs_the_same_number_of_queries_at_10_and_at_400_users(admin_client):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert list_page(admin_client, sort="-extension").status_code == 200
        return len(ctx)

    dect_user_seed_demo(count=10)
    queries()  # the session's first request also stamps its activity (a session write)
    few = queries()
    DectUser.objects.all().delete()
    dect_user_seed_demo(count=400)
    for user in DectUser.objects.all()[:100]:
        SipRegistration.objects.create(
            user=user, state="registered", changed_at="2026-01-01T00:00Z"
        )
    assert queries() == few


def test_pagination_shows_50_per_page(admin_client):
    dect_user_seed_demo(count=120)
    page = list_page(admin_client).text
    assert "page 1 of 3" in page
    assert page.count('<td class="node">') == 50


def test_add_user_through_the_form(admin_client):
    response = admin_client.post(reverse("user_create"), {
        "extension": "2100", "display_name": "New", "ipei": ipei.display(ipei.make(3180, 7)),
        "access_code": "1234", "sip_username": "2100", "sip_password": "pw-2100",
        "subscription": "none"})  # fmt: skip
    assert response.status_code == 302
    user = DectUser.objects.get(extension="2100")
    assert user.ipei == ipei.make(3180, 7) and user.sip_password == "pw-2100"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"extension": "2001"}, "extension", "2001"),
        ({"ipei": "03180 0000001 0"}, "ipei", "check digit"),
        ({"ipei": "1234"}, "ipei", "is not an IPEI"),
        ({"extension": "12ab"}, "extension", "is not an extension"),
    ],
)
def test_bad_values_and_duplicates_are_refused_with_a_clear_message(
    admin_client, fields, field, message
):
    make("2001", ipei=ipei.make(3180, 1))
    data = {"extension": "2200", "subscription": "none", **fields}
    before = DectUser.objects.count()
    response = admin_client.post(reverse("user_create"), data)
    assert response.status_code == 200
    assert f'data-error-for="{field}"' in response.text
    assert message in response.text
    assert DectUser.objects.count() == before


def test_a_duplicate_ipei_names_the_user_that_has_it(admin_client):
    make("2001", ipei=ipei.make(3180, 1))
    response = admin_client.post(reverse("user_create"), {"extension": "2300", "subscription": "none",
                                                           "ipei": ipei.make(3180, 1)})  # fmt: skip
    assert '<p class="error" data-error-for="ipei">' in response.text


def test_edit_keeps_an_empty_password_and_delete_removes(admin_client):
    user = make("2001", sip_password="keep-me")
    response = admin_client.post(reverse("user_edit", args=[user.pk]), {
        "extension": "2001", "display_name": "Renamed", "subscription": "enabled", "sip_password": ""})  # fmt: skip
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.sip_password) == ("Renamed", "keep-me")
    assert "keep-me" not in admin_client.get(reverse("user_edit", args=[user.pk])).text
    assert admin_client.post(reverse("user_delete", args=[user.pk])).status_code == 302
    assert not DectUser.objects.filter(pk=user.pk).exists()


def test_a_backup_refuses_user_changes_with_423(admin_client):
    user = make("2001")
    config_update(changes={"redundancy.mode": "slave", "redundancy.peer": "10.0.0.1",
                           "redundancy.secret": "x" * 16}, actor="test")  # fmt: skip
    response = admin_client.post(
        reverse("user_create"), {"extension": "2002", "subscription": "none"}
    )
    assert response.status_code == 423
    assert "this server is the backup" in response.text
    assert admin_client.post(reverse("user_delete", args=[user.pk])).status_code == 423
    assert DectUser.objects.count() == 1


# --- CSV -----------------------------------------------------------------------------


def upload(client, text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("user_import"), {"file": SimpleUploadedFile("u.csv", text.encode())})


def test_export_then_import_round_trips(admin_client):
    dect_user_seed_demo(count=30)
    exported = admin_client.get(reverse("user_export"), {"passwords": "yes"}).content.decode()
    before = {u.extension: (u.display_name, u.ipei, u.sip_password) for u in DectUser.objects.all()}
    DectUser.objects.all().delete()
    assert upload(admin_client, exported).status_code == 302
    after = {u.extension: (u.display_name, u.ipei, u.sip_password) for u in DectUser.objects.all()}
    assert after == before


def test_export_leaves_passwords_out_unless_asked(admin_client):
    make("2001", sip_password="hidden-pw")
    assert "hidden-pw" not in admin_client.get(reverse("user_export")).content.decode()


def test_a_file_with_a_bad_row_imports_nothing_and_reports_each_rejected_row(admin_client):
    make("2001", display_name="Existing")
    text = ("extension,display_name,ipei\n"
            "2002,Fine,\n"
            "2003,Bad IPEI,1234\n"
            "2002,Twice,\n"
            "2001,Renamed,\n")  # fmt: skip
    response = upload(admin_client, text)
    assert response.status_code == 200
    report = response.text
    assert "Nothing was imported" in report and "2 rows refused" in report
    assert "is not an IPEI" in report and "also on line 2" in report
    assert set(DectUser.objects.values_list("extension", flat=True)) == {"2001"}
    assert DectUser.objects.get(extension="2001").display_name == "Existing"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,ipei\nx,\n", "missing column extension"),
        (b"extension,colour\n1,red\n", "unknown column colour"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_a_malformed_file_is_refused_with_the_reason(admin_client, data, message):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin_client.post(
        reverse("user_import"), {"file": SimpleUploadedFile("u.csv", data)}
    )
    assert message in response.text
    assert DectUser.objects.count() == 0


def test_the_list_shows_where_a_handset_was_last_seen(admin_client):
    from django.utils import timezone

    from basestations.models import BaseStation, HandsetSighting

    make("2001", display_name="Roaming")
    station = BaseStation.objects.create(name="RFP Ward 3", mac="02:4B:57:01:00:09")
    HandsetSighting.objects.create(extension="2001", basestation=station, seen_at=timezone.now())
    page = list_page(admin_client).text
    assert "RFP Ward 3" in page and "Last seen" in page
