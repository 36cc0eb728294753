"""The LDAP client of the phonebook (ldap3, pure Python): search and test a directory.

No Django here: ``services`` passes the settings in. Every failure comes back as a
``DirectoryError`` whose message says what the server answered (or that it did not),
in words for an administrator, never with the bind password. Connecting and every
answer are bounded by timeouts, so a server that is down or hangs never holds a page
or a handset's lookup for long.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

# Seconds: to open the connection, and for each answer of the server (bind, search).
CONNECT_TIMEOUT = 3
RESPONSE_TIMEOUT = 5  # whole seconds: ldap3 packs it into SO_RCVTIMEO
# A lookup shows at most this many entries; a connection test counts up to COUNT_LIMIT.
SEARCH_LIMIT = 50
COUNT_LIMIT = 10_000

# What the directory's result codes mean to an administrator.
RESULT_MESSAGES = {
    "invalidCredentials": "the LDAP server refused the bind DN or password (invalid credentials)",
    "noSuchObject": "the base DN {base_dn} does not exist on the LDAP server (no such object)",
    "invalidDNSyntax": "the LDAP server does not accept {base_dn} as a DN (invalid DN syntax)",
    "insufficientAccessRights": "the bind DN may not read {base_dn} (insufficient access rights)",
    "inappropriateAuthentication": "the LDAP server refuses an anonymous bind: enter a bind DN",
    "unwillingToPerform": "the LDAP server is unwilling to perform the search (check the bind DN)",
    "confidentialityRequired": "the LDAP server requires an encrypted connection: use ldaps://",
    "filterError": "the LDAP server refused the search filter {filter}",
    "undefinedAttributeType": "the LDAP server does not know an attribute of the search",
    "timeLimitExceeded": "the LDAP server did not finish the search in time",
}


class DirectoryError(Exception):
    """The directory could not be searched; the message says why, for an administrator."""


@dataclass(frozen=True)
class Directory:
    url: str
    base_dn: str
    bind_dn: str = ""
    bind_password: str = ""
    filter: str = "(objectClass=person)"
    name_attribute: str = "cn"
    number_attribute: str = "telephoneNumber"


@dataclass(frozen=True)
class Entry:
    name: str
    number: str


def _server(directory: Directory) -> Server:
    parts = urlsplit(directory.url)
    secure = parts.scheme == "ldaps"
    tls = Tls(validate=ssl.CERT_REQUIRED) if secure else None
    return Server(
        parts.hostname or "", port=parts.port, use_ssl=secure, tls=tls, get_info=NONE,
        connect_timeout=CONNECT_TIMEOUT,
    )  # fmt: skip


def _explain(result: dict, directory: Directory) -> str:
    description = str(result.get("description") or "")
    if description == "insufficientAccessRights" and not directory.bind_dn:
        return f"an anonymous bind may not read {directory.base_dn}: enter a bind DN and password"
    template = RESULT_MESSAGES.get(description)
    if template:
        return template.format(base_dn=directory.base_dn, filter=directory.filter)
    server_says = str(result.get("message") or "").strip()
    return f"the LDAP server answered {description or result.get('result')}" + (
        f": {server_says}" if server_says else ""
    )


def _unreachable(directory: Directory, exc: Exception) -> str:
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return (
            f"the LDAP server {directory.url} did not answer in time "
            f"({CONNECT_TIMEOUT:g} s to connect, {RESPONSE_TIMEOUT:g} s to answer)"
        )
    if "refused" in text:
        return f"cannot reach the LDAP server {directory.url}: connection refused (is it running?)"
    if "name or service not known" in text or "nodename nor servname" in text:
        return f"cannot reach the LDAP server {directory.url}: unknown host name"
    if isinstance(exc, ldap_errors.LDAPSocketOpenError) and "ssl" in text:
        return f"cannot open a TLS connection to {directory.url}: {exc}"
    return f"cannot reach the LDAP server {directory.url}: {exc}"


def _search(directory: Directory, search_filter: str, limit: int,
            attributes: list[str]) -> tuple[list[dict], bool]:  # fmt: skip
    """Bind and search; (entries as ldap3 dicts, whether the limit cut the result)."""
    try:
        connection = Connection(
            _server(directory),
            user=directory.bind_dn or None,
            password=directory.bind_password or None,
            receive_timeout=int(RESPONSE_TIMEOUT),
            raise_exceptions=False,
            auto_referrals=False,
            read_only=True,
        )
        try:
            if not connection.bind():
                raise DirectoryError(_explain(connection.result, directory))
            ok = connection.search(
                directory.base_dn, search_filter, search_scope=SUBTREE, attributes=attributes,
                size_limit=limit, time_limit=int(RESPONSE_TIMEOUT),
            )  # fmt: skip
            result = connection.result
            description = str(result.get("description") or "")
            if not ok and description not in ("sizeLimitExceeded", "success"):
                raise DirectoryError(_explain(result, directory))
            return list(connection.response or []), description == "sizeLimitExceeded"
        finally:
            try:
                connection.unbind()
            except ldap_errors.LDAPException:
                pass
    except ldap_errors.LDAPInvalidFilterError as exc:
        raise DirectoryError(f"the search filter {directory.filter} is not valid: {exc}") from None
    except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPSocketOpenError,
            ldap_errors.LDAPSessionTerminatedByServerError, OSError) as exc:  # fmt: skip
        raise DirectoryError(_unreachable(directory, exc)) from None
    except ldap_errors.LDAPException as exc:
        raise DirectoryError(f"the LDAP search failed: {exc}") from None


def _first(attributes: dict, name: str) -> str:
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else ""
            return str(value)
    return ""


def search(directory: Directory, text: str, *, limit: int = SEARCH_LIMIT) -> list[Entry]:
    """Entries of the phonebook whose name or number contains ``text``, by name."""
    query = escape_filter_chars(text.strip())
    name, number = directory.name_attribute, directory.number_attribute
    wanted = f"(|({name}=*{query}*)({number}=*{query}*))" if query else f"({name}=*)"
    rows, _ = _search(directory, f"(&{directory.filter}{wanted})", limit, [name, number])
    entries = []
    for row in rows:
        if row.get("type") != "searchResEntry":
            continue
        attributes = row.get("attributes") or {}
        entries.append(Entry(_first(attributes, name), _first(attributes, number)))
    return sorted(entries, key=lambda e: (e.name.lower(), e.number))


def count(directory: Directory) -> tuple[int, bool]:
    """How many entries the filter finds (at most COUNT_LIMIT; True when cut there)."""
    rows, cut = _search(directory, directory.filter, COUNT_LIMIT, ["1.1"])
    return sum(1 for row in rows if row.get("type") == "searchResEntry"), cut
