"""Configuration > Corporate phonebook against a real slapd: save, test the connection,
search, the CSV upload; the bind password never shown; locked on a backup and in failover."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from core.models import Event, Phase
from core.selectors import config_read
from phonebook import ldapserver
from phonebook.models import PhonebookEntry
from tests.phonebook.conftest import ldap_settings, store
from tests.redundancy.test_replication_fakes import become_backup

pytestmark = pytest.mark.django_db

FIELDS = {"source": "phonebook.source", "ldap_url": "phonebook.ldap_url",
          "base_dn": "phonebook.base_dn", "bind_dn": "phonebook.bind_dn",
          "bind_password": "phonebook.bind_password", "filter": "phonebook.filter",
          "name_attribute": "phonebook.name_attribute",
          "number_attribute": "phonebook.number_attribute"}  # fmt: skip
SECRET = ldapserver.PHONEBOOK_PASSWORD


def form_of(server, **overrides) -> dict[str, str]:
    values = ldap_settings(server)
    data = {name: values[key] for name, key in FIELDS.items()}
    data.update(overrides)
    return data


def csv_file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("book.csv", text.encode(), content_type="text/csv")


def test_saving_ldap_settings_keeps_the_password_secret(admin_client, directory_server, tmp_path):
    url = reverse("phonebook_settings")
    assert 'data-field="password-state">not set' in admin_client.get(url).text
    response = admin_client.post(url, form_of(directory_server), follow=True)
    assert "Corporate phonebook settings saved." in response.text
    assert config_read()["phonebook.bind_password"] == SECRET
    page = admin_client.get(url).text
    assert 'data-field="password-state">set' in page and SECRET not in page
    # Left empty: the password is kept.
    admin_client.post(url, form_of(directory_server, bind_password="", filter="(cn=*)"))
    assert config_read()["phonebook.bind_password"] == SECRET
    assert config_read()["phonebook.filter"] == "(cn=*)"
    # Never in events, nor in an export without --include-secrets.
    assert not Event.objects.filter(message__contains=SECRET).exists()
    assert Event.objects.filter(message__contains="phonebook.bind_password").exists()
    call_command("kwsconfig", "export", str(tmp_path / "plain.conf"))
    assert SECRET not in (tmp_path / "plain.conf").read_text()
    call_command("kwsconfig", "export", "--include-secrets", str(tmp_path / "all.conf"))
    assert f"phonebook.bind_password = {SECRET}" in (tmp_path / "all.conf").read_text()


def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_saved(admin_client, directory_server):
    response = admin_client.post(reverse("phonebook_settings"), form_of(
        directory_server, filter="(&(objectClass=person)(cn=a*)", ldap_url="http://x"))  # fmt: skip
    assert response.status_code == 200
    assert ('data-error-for="filter">Search filter: unbalanced parentheses: 1 \'(\' left open'
            in response.text.replace("&#x27;", "'"))  # fmt: skip
    assert 'data-error-for="ldap_url">LDAP server: ' in response.text
    assert config_read()["phonebook.source"] == "none"


def test_the_connection_test_counts_the_entries(admin_client, directory_server):
    response = admin_client.post(reverse("phonebook_test"), form_of(directory_server))
    assert response.status_code == 200
    assert (f"Connected to {directory_server.url}: 4 entries found under "
            f"{ldapserver.BASE_DN}.") in response.text  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), [
    ({"bind_password": "wrong password"},
     "Connection test failed: the LDAP server refused the bind DN or password (invalid credentials)."),
    ({"base_dn": "ou=nobody,dc=kws,dc=example"},
     "Connection test failed: the base DN ou=nobody,dc=kws,dc=example does not exist on the LDAP server (no such object)."),
    ({"filter": "(objectClass=person"},
     "Not tested: Search filter: unbalanced parentheses: 1 '(' left open"),
    ({"ldap_url": "ldap//nowhere"}, "Not tested: LDAP server: "),
])  # fmt: skip
def test_the_connection_test_names_what_is_wrong(
    admin_client, directory_server, overrides, message
):
    response = admin_client.post(reverse("phonebook_test"), form_of(directory_server, **overrides))
    assert response.status_code == 200
    assert message in response.text.replace("&#x27;", "'")
    assert "wrong password" not in response.text


def test_the_connection_test_says_when_the_server_is_down(admin_client, own_directory_server):
    data = form_of(own_directory_server)
    own_directory_server.stop()
    response = admin_client.post(reverse("phonebook_test"), data)
    assert response.status_code == 200
    assert (f"Connection test failed: cannot reach the LDAP server {own_directory_server.url}: "
            "connection refused") in response.text  # fmt: skip


def test_an_empty_password_tests_with_the_saved_one(admin_client, directory_server):
    store({"phonebook.bind_password": SECRET})
    response = admin_client.post(reverse("phonebook_test"),
                                 form_of(directory_server, bind_password=""))  # fmt: skip
    assert "4 entries found" in response.text


def test_search_by_name_and_by_number_from_ldap(admin_client, directory_server):
    store(ldap_settings(directory_server))
    url = reverse("phonebook_search")
    by_name = admin_client.get(url, {"q": "carla"}, HTTP_HX_REQUEST="true").text
    assert "<td>Carla Christensen</td><td>+45 7012 3003</td>" in by_name
    by_number = admin_client.get(url, {"q": "4714"}, HTTP_HX_REQUEST="true").text
    assert "<td>Dan Dahl</td><td>4714</td>" in by_number and "Alice" not in by_number
    assert "No entry matches" in admin_client.get(url, {"q": "zz"}).text


def test_search_when_the_directory_is_down_says_so(admin_client, own_directory_server):
    store(ldap_settings(own_directory_server))
    own_directory_server.stop()
    response = admin_client.get(reverse("phonebook_search"), {"q": "alice"})
    assert response.status_code == 200
    assert "The phonebook cannot be searched: cannot reach the LDAP server" in response.text


def test_a_csv_upload_replaces_the_entries_and_is_searched(admin_client):
    PhonebookEntry.objects.create(name="Old Entry", number="1")
    response = admin_client.post(reverse("phonebook_csv_upload"),
                                 {"file": csv_file("name,number\nEva Eriksen,5501\nFrank Friis,+45 5502\n")},
                                 follow=True)  # fmt: skip
    assert "CSV phonebook stored: 2 entries" in response.text
    assert list(PhonebookEntry.objects.values_list("name", "number")) == [
        ("Eva Eriksen", "5501"), ("Frank Friis", "+45 5502")]  # fmt: skip
    store({"phonebook.source": "csv"})
    found = admin_client.get(reverse("phonebook_search"), {"q": "5502"}).text
    assert "<td>Frank Friis</td><td>+45 5502</td>" in found


def test_a_csv_with_bad_rows_names_row_and_column_and_stores_nothing(admin_client):
    PhonebookEntry.objects.create(name="Kept", number="1")
    text = "Eva,5501\n,5502\nGus,not a number\nHal,1,extra\n"
    response = admin_client.post(reverse("phonebook_csv_upload"), {"file": csv_file(text)})
    assert response.status_code == 400
    page = response.text.replace("&#x27;", "'")
    assert "Nothing was stored:" in page and "3 problems" in page
    assert "row 2, column 1 (name): the name is empty" in page
    assert "row 3, column 2 (number): 'not a number' is not a phone number" in page
    assert "row 4, column 3: 3 values; a row is name,number" in page
    assert list(PhonebookEntry.objects.values_list("name", flat=True)) == ["Kept"]


@pytest.mark.parametrize("phase", [Phase.NORMAL, Phase.FAILOVER])
def test_a_backup_shows_the_page_read_only_and_refuses_writes_with_423(
    admin_client, directory_server, phase
):
    become_backup(phase=phase)
    store(ldap_settings(directory_server))
    page = admin_client.get(reverse("phonebook_settings")).text
    assert 'data-field="read-only">Read-only here:' in page
    assert '<fieldset class="plain" disabled>' in page and SECRET not in page
    assert '<button type="submit">Save</button>' not in page
    refused = admin_client.post(
        reverse("phonebook_settings"), form_of(directory_server, filter="(cn=*)")
    )
    assert refused.status_code == 423
    assert config_read()["phonebook.filter"] == "(objectClass=inetOrgPerson)"
    upload = admin_client.post(reverse("phonebook_csv_upload"), {"file": csv_file("A,1\n")})
    assert upload.status_code == 423 and PhonebookEntry.objects.count() == 0
    # Reading still works: the replicated settings are tested and searched.
    tested = admin_client.post(reverse("phonebook_test"), {})
    assert "4 entries found" in tested.text
    assert "Alice Andersen" in admin_client.get(reverse("phonebook_search"), {"q": "ali"}).text


def test_the_bind_password_never_reaches_the_logs(admin_client, directory_server, caplog):
    caplog.set_level("DEBUG")
    admin_client.post(reverse("phonebook_settings"), form_of(directory_server))
    admin_client.post(
        reverse("phonebook_test"), form_of(directory_server, bind_password="Wr0ng-pw")
    )
    store({"phonebook.bind_password": "Wr0ng-pw"})
    searched = admin_client.get(reverse("phonebook_search"), {"q": "alice"}).text
    assert "refused the bind DN or password" in searched
    assert "Configuration changed" in caplog.text and "refused the bind DN" in caplog.text
    assert SECRET not in caplog.text and "Wr0ng-pw" not in caplog.text
