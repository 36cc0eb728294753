"""The LDAP client against a real slapd: searches, counts and the server's exact errors."""

import dataclasses
import socket
import time

import pytest

from phonebook import directory, ldapserver
from phonebook.directory import Directory, DirectoryError, Entry


def people(server) -> Directory:
    return Directory(url=server.url, base_dn=ldapserver.BASE_DN, bind_dn=ldapserver.BIND_DN,
                     bind_password=ldapserver.PHONEBOOK_PASSWORD,
                     filter="(objectClass=inetOrgPerson)")  # fmt: skip


def test_search_by_name_finds_the_person_and_number(directory_server):
    assert directory.search(people(directory_server), "alice") == [Entry("Alice Andersen", "4711")]
    assert directory.search(people(directory_server), "Berg") == [Entry("Bob Berg", "4712")]


def test_search_by_number_and_part_of_a_number(directory_server):
    assert directory.search(people(directory_server), "4712") == [Entry("Bob Berg", "4712")]
    found = directory.search(people(directory_server), "471")
    assert [e.name for e in found] == ["Alice Andersen", "Bob Berg", "Dan Dahl"]
    assert directory.search(people(directory_server), "7012") == [
        Entry("Carla Christensen", "+45 7012 3003")]  # fmt: skip


def test_a_search_text_cannot_change_the_filter(directory_server):
    assert directory.search(people(directory_server), "*)(cn=*") == []
    assert directory.search(people(directory_server), "nobody by that name") == []


def test_the_count_is_the_number_of_entries_the_filter_finds(directory_server):
    assert directory.count(people(directory_server)) == (4, False)


def test_a_wrong_bind_password_is_named_as_such(directory_server):
    wrong = dataclasses.replace(people(directory_server), bind_password="not the password")
    with pytest.raises(DirectoryError) as refused:
        directory.search(wrong, "alice")
    assert str(refused.value) == (
        "the LDAP server refused the bind DN or password (invalid credentials)")  # fmt: skip
    assert "not the password" not in str(refused.value)


def test_a_base_dn_that_does_not_exist_is_named(directory_server):
    wrong = dataclasses.replace(people(directory_server), base_dn="ou=nobody,dc=kws,dc=example")
    with pytest.raises(DirectoryError, match=r"the base DN ou=nobody,dc=kws,dc=example does not "
                                             r"exist on the LDAP server \(no such object\)"):  # fmt: skip
        directory.count(wrong)


def test_an_anonymous_bind_may_not_read_the_people(directory_server):
    anonymous = dataclasses.replace(people(directory_server), bind_dn="", bind_password="")
    with pytest.raises(DirectoryError, match="an anonymous bind may not read"):
        directory.search(anonymous, "alice")


def test_a_filter_with_unbalanced_parentheses_is_refused_by_the_client(directory_server):
    broken = dataclasses.replace(people(directory_server), filter="(objectClass=person")
    with pytest.raises(
        DirectoryError, match=r"the search filter \(objectClass=person is not valid"
    ):
        directory.count(broken)


def test_a_stopped_server_is_reported_as_unreachable(own_directory_server):
    settings = people(own_directory_server)
    assert directory.count(settings)[0] == 4
    own_directory_server.stop()
    with pytest.raises(DirectoryError) as refused:
        directory.search(settings, "alice")
    assert str(refused.value) == (
        f"cannot reach the LDAP server {own_directory_server.url}: connection refused "
        "(is it running?)")  # fmt: skip


def test_a_server_that_accepts_but_never_answers_is_given_up(monkeypatch, directory_server):
    monkeypatch.setattr(directory, "RESPONSE_TIMEOUT", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the connection; nobody ever reads it
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(DirectoryError, match=f"the LDAP server {url} did not answer in time"):
            directory.search(dataclasses.replace(people(directory_server), url=url), "alice")
        assert time.monotonic() - started < 30  # bounded, not hanging
