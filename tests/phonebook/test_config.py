"""The phonebook's keys: what they accept and what they refuse, in the admin's words."""

import pytest

from phonebook import config


@pytest.mark.parametrize(("text", "value"), [
    ("ldap://ldap.example.com", "ldap://ldap.example.com"),
    ("LDAPS://10.0.0.5:636/", "ldaps://10.0.0.5:636"),
    ("ldap://[::1]:3389", "ldap://[::1]:3389"),
    ("  ", ""),
])  # fmt: skip
def test_ldap_urls_that_are_accepted(text, value):
    assert config.parse_ldap_url(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("http://ldap.example.com", "is not an LDAP URL: use ldap://host[:port] or ldaps://host[:port]"),
    ("ldap.example.com", "is not an LDAP URL"),
    ("ldap://", "names no server"),
    ("ldap://host:99999", "the port is not a number from 1 to 65535"),
    ("ldap://host/dc=x?cn", "give only the server"),
    ("ldap://bad_host!", "is not a host name or IP address"),
])  # fmt: skip
def test_ldap_urls_that_are_refused(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.parse_ldap_url(text)


@pytest.mark.parametrize(("text", "message"), [
    ("(objectClass=person", "unbalanced parentheses: 1 '(' left open"),
    ("(&(objectClass=person)(cn=a*)", "unbalanced parentheses: 1 '(' left open"),
    ("(objectClass=person))", "unbalanced parentheses: the ')' at character 21 closes nothing"),
    ("(a=b)(c=d)", "character 6 is outside the filter"),
    ("objectClass=person", "a search filter is enclosed in parentheses"),
    ("(&()(cn=a))", "empty parentheses at character 3"),
])  # fmt: skip
def test_filters_that_are_refused_say_where(text, message):
    with pytest.raises(ValueError) as refused:
        config.parse_filter(text)
    assert message in str(refused.value)


def test_filters_that_are_accepted():
    assert config.parse_filter("(&(objectClass=person)(cn=a\\29*))") == (
        "(&(objectClass=person)(cn=a\\29*))")  # fmt: skip
    assert config.parse_filter("") == config.DEFAULT_FILTER


def test_distinguished_names():
    assert config.parse_dn("ou=people, dc=example,dc=com") == "ou=people, dc=example,dc=com"
    assert config.parse_dn("cn=Smith\\, John,dc=example") == "cn=Smith\\, John,dc=example"
    with pytest.raises(ValueError, match="is not a distinguished name"):
        config.parse_dn("people.example.com")
    with pytest.raises(ValueError, match="is not a distinguished name"):
        config.parse_dn("ou=people,,dc=com")


def test_sources_and_attributes():
    assert config.parse_source(" LDAP ") == "ldap"
    with pytest.raises(ValueError, match="use none, ldap or csv"):
        config.parse_source("xml")
    with pytest.raises(ValueError, match="is not an LDAP attribute name"):
        config.parse_attribute("tele phone")
