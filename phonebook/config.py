"""The phonebook's configuration keys and their pure checks (no Django, no I/O).

Registered with core from ``PhonebookConfig.ready``. Every key is the master's and
replicates to the backup; the bind password is a secret (never shown back, left out of
exports without ``--include-secrets``, never named with its value in events).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from core.config import Key, check_host

SOURCES = ("none", "ldap", "csv")
SOURCE_LABELS = {"none": "None", "ldap": "LDAP directory", "csv": "CSV file (single server only)"}
DEFAULT_FILTER = "(objectClass=person)"

# The seed: "If the internal corporate phone book is configured to use a comma separated
# file, it will not be compatible with the redundancy feature."
CSV_CONFLICT = "a CSV phonebook is not compatible with redundancy: use LDAP"

_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_RDN = re.compile(r"^\s*[A-Za-z][A-Za-z0-9-]*\s*=\s*\S.*$")


def parse_source(text: str) -> str:
    value = text.strip().lower()
    if value not in SOURCES:
        raise ValueError(f"{text!r} is not a phonebook source; use none, ldap or csv")
    return value


def parse_ldap_url(text: str) -> str:
    """Empty, or ``ldap://host[:port]`` / ``ldaps://host[:port]`` (no path or query)."""
    raw = text.strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("ldap", "ldaps"):
        raise ValueError(
            f"{raw!r} is not an LDAP URL: use ldap://host[:port] or ldaps://host[:port]"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{raw!r}: give only the server, like ldap://ldap.example.com:389")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{raw!r}: the port is not a number from 1 to 65535") from None
    if not host:
        raise ValueError(f"{raw!r} names no server: use ldap://host[:port]")
    check_host(host)
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{raw!r}: the port is not a number from 1 to 65535")
    return f"{parts.scheme.lower()}://{parts.netloc}"


def _split_dn(text: str) -> list[str]:
    """The RDNs of a DN, split at commas that are not escaped with a backslash."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            current, escaped = current + char, True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_dn(text: str) -> str:
    """Empty, or a distinguished name like ``ou=people,dc=example,dc=com``."""
    raw = text.strip()
    if not raw:
        return ""
    for rdn in _split_dn(raw):
        if not all(_RDN.match(part) for part in rdn.split("+")):
            raise ValueError(
                f"{raw!r} is not a distinguished name: each part is attribute=value, "
                "like ou=people,dc=example,dc=com"
            )
    return raw


def filter_problem(text: str) -> str:
    """Why ``text`` is not an LDAP search filter (RFC 4515's parentheses), or ''."""
    if not text.startswith("("):
        return "a search filter is enclosed in parentheses, like (objectClass=person)"
    depth, escaped = 0, False
    for position, char in enumerate(text, start=1):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif depth == 0 and position > 1 and char == ")":
            return f"unbalanced parentheses: the ')' at character {position} closes nothing"
        elif depth == 0 and position > 1:
            return (
                f"unbalanced parentheses: character {position} is outside the filter "
                "(combine filters with (&...) or (|...))"
            )
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if text[position - 2] == "(":
                return f"empty parentheses at character {position - 1}"
    if depth > 0:
        return (
            f"unbalanced parentheses: {depth} '(' left open (add {depth} ')' or remove "
            f"{'it' if depth == 1 else 'them'})"
        )
    return ""


def parse_filter(text: str) -> str:
    raw = text.strip()
    if not raw:
        return DEFAULT_FILTER
    problem = filter_problem(raw)
    if problem:
        raise ValueError(problem)
    return raw


def parse_attribute(text: str) -> str:
    raw = text.strip()
    if not _ATTRIBUTE.match(raw):
        raise ValueError(f"{raw!r} is not an LDAP attribute name (like cn or telephoneNumber)")
    return raw


def parse_password(text: str) -> str:
    # Kept as typed: a directory password may begin or end with a space.
    return str(text)


SOURCE_KEY = "phonebook.source"
LDAP_URL_KEY = "phonebook.ldap_url"
BASE_DN_KEY = "phonebook.base_dn"
BIND_DN_KEY = "phonebook.bind_dn"
BIND_PASSWORD_KEY = "phonebook.bind_password"
FILTER_KEY = "phonebook.filter"
NAME_ATTRIBUTE_KEY = "phonebook.name_attribute"
NUMBER_ATTRIBUTE_KEY = "phonebook.number_attribute"

KEYS = (
    Key(
        SOURCE_KEY,
        "Phonebook source",
        "none",
        parse_source,
        "none, ldap or csv. With redundancy (node type master or backup) only LDAP: "
        "a CSV phonebook is not compatible with redundancy.",
    ),
    Key(
        LDAP_URL_KEY,
        "LDAP server",
        "",
        parse_ldap_url,
        "ldap://host[:port] (389) or ldaps://host[:port] (636).",
    ),
    Key(
        BASE_DN_KEY,
        "Base DN",
        "",
        parse_dn,
        "Where the entries are searched, like ou=people,dc=example,dc=com.",
    ),
    Key(
        BIND_DN_KEY,
        "Bind DN",
        "",
        parse_dn,
        "The account the servers log in to the directory with; empty: anonymous.",
    ),
    Key(
        BIND_PASSWORD_KEY,
        "Bind password",
        "",
        parse_password,
        "The bind DN's password.",
        secret=True,
    ),
    Key(
        FILTER_KEY,
        "Search filter",
        DEFAULT_FILTER,
        parse_filter,
        "The entries that belong to the phonebook, like (objectClass=person).",
    ),
    Key(
        NAME_ATTRIBUTE_KEY,
        "Name attribute",
        "cn",
        parse_attribute,
        "The attribute that holds an entry's name.",
    ),
    Key(
        NUMBER_ATTRIBUTE_KEY,
        "Number attribute",
        "telephoneNumber",
        parse_attribute,
        "The attribute that holds an entry's phone number.",
    ),
)
