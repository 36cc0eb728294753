"""The seed's rule, both ways: no CSV phonebook with redundancy, and no redundancy with a
CSV phonebook, through the GUI, ``kwsconfig set`` and ``kwsconfig import`` alike."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.config import ConfigError
from core.models import ConfigValue
from core.selectors import config_read
from core.services import config_update
from phonebook.config import CSV_CONFLICT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

PAIRED = {"redundancy.mode": "master", "redundancy.peer": "127.0.0.1:9",
          "redundancy.secret": "a-pairing-secret-of-some-length"}  # fmt: skip


def kwsconfig(*args: str, stdin: str | None = None) -> str:
    import sys

    out, old = io.StringIO(), sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        call_command("kwsconfig", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def a_master() -> None:
    config_update(changes=PAIRED, actor="test")


def a_single_with_csv() -> None:
    config_update(changes={"phonebook.source": "csv"}, actor="test")


def test_a_master_refuses_a_csv_phonebook_and_changes_nothing():
    a_master()
    with pytest.raises(ConfigError) as refused:
        config_update(changes={"phonebook.source": "csv"}, actor="test")
    assert refused.value.errors == {"phonebook.source": CSV_CONFLICT}
    assert config_read()["phonebook.source"] == "none"


@pytest.mark.parametrize("mode", ["master", "slave"])
def test_a_server_with_a_csv_phonebook_cannot_become_master_or_backup(mode):
    a_single_with_csv()
    with pytest.raises(ConfigError) as refused:
        config_update(changes={**PAIRED, "redundancy.mode": mode}, actor="test")
    assert CSV_CONFLICT in refused.value.errors["redundancy.mode"]
    assert config_read()["redundancy.mode"] == "single"


def test_a_single_server_may_have_a_csv_phonebook_and_ldap_with_redundancy_is_fine():
    a_single_with_csv()
    config_update(changes={"phonebook.source": "ldap", "phonebook.ldap_url": "ldap://ldap:389",
                           "phonebook.base_dn": "dc=example"}, actor="test")  # fmt: skip
    a_master()
    assert config_read()["redundancy.mode"] == "master"


def test_an_ldap_source_needs_its_server_and_base_dn():
    with pytest.raises(ConfigError) as refused:
        config_update(changes={"phonebook.source": "ldap"}, actor="test")
    assert set(refused.value.errors) == {"phonebook.ldap_url", "phonebook.base_dn"}
    assert (
        "required when the phonebook source is LDAP" in refused.value.errors["phonebook.ldap_url"]
    )


def test_kwsconfig_set_refuses_both_ways():
    a_master()
    with pytest.raises(CommandError, match=f"phonebook.source: {CSV_CONFLICT}"):
        kwsconfig("set", "phonebook.source", "csv")
    config_update(changes={"redundancy.mode": "single"}, actor="test")
    kwsconfig("set", "phonebook.source=csv")
    with pytest.raises(CommandError, match=f"redundancy.mode: {CSV_CONFLICT}"):
        kwsconfig("set", "redundancy.mode=slave")
    assert config_read()["redundancy.mode"] == "single"


def test_kwsconfig_import_refuses_both_ways(tmp_path):
    a_master()
    with pytest.raises(CommandError, match=CSV_CONFLICT):
        kwsconfig("import", "-", stdin="phonebook.source = csv\n")
    assert config_read()["phonebook.source"] == "none"
    config_update(changes={"redundancy.mode": "single"}, actor="test")
    a_single_with_csv()
    exported = tmp_path / "settings.conf"
    kwsconfig("export", str(exported))
    text = exported.read_text().replace("redundancy.mode = single", "redundancy.mode = master")
    with pytest.raises(CommandError, match=CSV_CONFLICT):
        kwsconfig("import", "-", stdin=text)
    assert config_read()["redundancy.mode"] == "single"


def test_the_phonebook_page_shows_the_refusal_beside_the_source(admin_client):
    a_master()
    response = admin_client.post(reverse("phonebook_settings"), {
        "source": "csv", "name_attribute": "cn", "number_attribute": "telephoneNumber",
    })  # fmt: skip
    assert response.status_code == 200
    assert f'data-error-for="source">Source: {CSV_CONFLICT}' in response.text
    assert ConfigValue.objects.filter(key="phonebook.source").count() == 0


def test_the_redundancy_page_shows_the_refusal_beside_the_node_type(admin_client):
    a_single_with_csv()
    response = admin_client.post(reverse("redundancy_settings"), {
        "mode": "master", "peer": "127.0.0.1:9", "failover_time": "15",
        "secret": PAIRED["redundancy.secret"], "save_unreachable": "on",
    })  # fmt: skip
    assert response.status_code == 200
    assert (
        'data-error-for="mode">Node type: a CSV phonebook is not compatible with redundancy: use LDAP'
        in response.text
    )
    assert config_read()["redundancy.mode"] == "single"


def test_the_csv_upload_is_refused_with_the_same_words_when_redundancy_is_on(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from phonebook.models import PhonebookEntry

    a_master()
    upload = SimpleUploadedFile("book.csv", b"Alice,4711\n", content_type="text/csv")
    response = admin_client.post(reverse("phonebook_csv_upload"), {"file": upload})
    assert response.status_code == 400
    assert CSV_CONFLICT in response.text
    assert PhonebookEntry.objects.count() == 0
