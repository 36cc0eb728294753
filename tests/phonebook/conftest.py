from collections.abc import Iterator

import pytest

from core.models import ConfigValue
from phonebook import ldapserver
from phonebook.ldapserver import Slapd, slapd_available


@pytest.fixture(scope="session")
def directory_server() -> Iterator[Slapd]:
    """One real slapd for the tests that only read it (session-wide: it starts in ~0.1 s,
    but slapadd and the config are the same for all)."""
    missing = slapd_available()
    if missing:
        pytest.fail(f"{missing}; `make services` installs it")
    with Slapd() as server:
        yield server


@pytest.fixture
def own_directory_server() -> Iterator[Slapd]:
    """A slapd of this test's own, which the test may stop."""
    with Slapd() as server:
        yield server


def ldap_settings(server: Slapd, **overrides: str) -> dict[str, str]:
    values = {
        "phonebook.source": "ldap",
        "phonebook.ldap_url": server.url,
        "phonebook.base_dn": ldapserver.BASE_DN,
        "phonebook.bind_dn": ldapserver.BIND_DN,
        "phonebook.bind_password": ldapserver.PHONEBOOK_PASSWORD,
        "phonebook.filter": "(objectClass=inetOrgPerson)",
        "phonebook.name_attribute": "cn",
        "phonebook.number_attribute": "telephoneNumber",
    }
    values.update(overrides)
    return values


def store(values: dict[str, str]) -> None:
    """Stored directly, as a replicated backup has them (no rules, no lock)."""
    for key, value in values.items():
        ConfigValue.objects.update_or_create(key=key, defaults={"value": value})
