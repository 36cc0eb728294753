"""The phonebook's rules: its configuration check, the CSV phonebook, searches and tests.

The seed's rule has its one home here: a CSV phonebook is not compatible with
redundancy. ``phonebook_config_check`` refuses it both ways for every writer of the
configuration (the GUI, ``kwsconfig set``, ``kwsconfig import``), and
``phonebook_csv_replace`` refuses the upload itself with the same words.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from core import config as core_config
from core.audit import audit_record
from core.locks import write_check
from core.rules import Scope
from core.selectors import config_read
from core.services import event_record
from phonebook import config, csv_io, directory
from phonebook.models import PhonebookEntry

logger = logging.getLogger(__name__)

PHONEBOOK_CHECK = "phonebook"
REDUNDANT_MODES = ("master", "slave")
SEARCH_MIN = 1
SEARCH_MAX = 32  # characters of a search text (a handset's lookup too)


def phonebook_config_check(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """A configuration check: no CSV phonebook with redundancy, either way round, and an
    LDAP source names its server and base DN.

    Setting the source to CSV on a master or backup is refused on ``phonebook.source``;
    making a server with a CSV phonebook a master or backup is refused on
    ``redundancy.mode`` (the Redundancy page shows it beside the node type). A
    configuration that is already so (stored before this rule) is not touched by
    unrelated changes.
    """
    errors: dict[str, str] = {}
    mode, source = new["redundancy.mode"], new[config.SOURCE_KEY]
    if mode in REDUNDANT_MODES and source == "csv":
        if old[config.SOURCE_KEY] != "csv":
            errors[config.SOURCE_KEY] = config.CSV_CONFLICT
        elif old["redundancy.mode"] != mode:
            errors["redundancy.mode"] = (
                f"{config.CSV_CONFLICT} (this server's phonebook source is CSV: set "
                f"{config.SOURCE_KEY} to ldap or none first)"
            )
    ldap_keys = (config.SOURCE_KEY, config.LDAP_URL_KEY, config.BASE_DN_KEY)
    if source == "ldap" and any(old[k] != new[k] for k in ldap_keys):
        needed = {
            config.LDAP_URL_KEY: "the LDAP server's URL, like ldap://host:389",
            config.BASE_DN_KEY: "where the entries are, like ou=people,dc=example,dc=com",
        }
        for key, what in needed.items():
            if not new[key]:
                errors[key] = f"required when the phonebook source is LDAP: enter {what}"
    if errors:
        raise core_config.ConfigError(errors)
    return []


# --- Searching ------------------------------------------------------------------------


@dataclass
class SearchResult:
    source: str
    entries: list[directory.Entry] = field(default_factory=list)
    error: str = ""


def phonebook_directory(values: Mapping[str, Any] | None = None) -> directory.Directory:
    values = values or config_read()
    return directory.Directory(
        url=values[config.LDAP_URL_KEY],
        base_dn=values[config.BASE_DN_KEY],
        bind_dn=values[config.BIND_DN_KEY],
        bind_password=values[config.BIND_PASSWORD_KEY],
        filter=values[config.FILTER_KEY],
        name_attribute=values[config.NAME_ATTRIBUTE_KEY],
        number_attribute=values[config.NUMBER_ATTRIBUTE_KEY],
    )


def phonebook_search(*, text: str, limit: int = directory.SEARCH_LIMIT) -> SearchResult:
    """Entries whose name or number contains ``text``, from the configured source.

    Never raises for what the directory answers: the result's ``error`` says it (the
    server is down, the password is refused...), for the page and for a handset.
    """
    values = config_read()
    source = values[config.SOURCE_KEY]
    text = text.strip()[:SEARCH_MAX]
    if source == "none":
        return SearchResult(source, error="no corporate phonebook is configured")
    if source == "csv":
        rows = PhonebookEntry.objects.filter(Q(name__icontains=text) | Q(number__contains=text))
        found = [directory.Entry(r.name, r.number) for r in rows[:limit]]
        return SearchResult(source, found)
    try:
        return SearchResult(source, directory.search(phonebook_directory(values), text,
                                                     limit=limit))  # fmt: skip
    except directory.DirectoryError as exc:
        logger.warning("phonebook search refused: %s", exc)
        return SearchResult(source, error=str(exc))


def phonebook_test(*, changes: Mapping[str, str]) -> str:
    """Try the LDAP settings about to be saved (the saved ones where ``changes`` has no
    value; an empty bind password keeps the saved one). Returns what was found;
    ConfigError for values that do not parse, DirectoryError for what the server said."""
    values = dict(config_read())
    values.update(core_config.parse_values(changes))
    if not values[config.LDAP_URL_KEY] or not values[config.BASE_DN_KEY]:
        raise core_config.ConfigError({
            key: "required to test the connection" for key in (config.LDAP_URL_KEY,
            config.BASE_DN_KEY) if not values[key]
        })  # fmt: skip
    found, cut = directory.count(phonebook_directory(values))
    more = "more than " if cut else ""
    return (
        f"Connected to {values[config.LDAP_URL_KEY]}: {more}{found} "
        f"entr{'y' if found == 1 else 'ies'} found under {values[config.BASE_DN_KEY]}."
    )


# --- The CSV phonebook ------------------------------------------------------------------


class CsvUploadRefused(Exception):
    """The upload is not allowed here (redundancy is on); nothing was stored."""


def phonebook_csv_replace(*, data: bytes, actor: str) -> int:
    """Replace the CSV phonebook's entries with a file's, all or nothing, in one
    transaction. Refused on a server with redundancy (CsvUploadRefused, the seed's
    words) and where configuration is locked (Locked); csv_io.CsvRefused names each
    bad row and column. Returns how many entries are stored."""
    write_check(Scope.SHARED)
    if config_read()["redundancy.mode"] in REDUNDANT_MODES:
        raise CsvUploadRefused(config.CSV_CONFLICT)
    rows = csv_io.csv_parse(data)
    with transaction.atomic():
        before = PhonebookEntry.objects.count()
        PhonebookEntry.objects.all().delete()
        PhonebookEntry.objects.bulk_create(PhonebookEntry(name=n, number=m) for n, m in rows)
        event_record(
            kind="phonebook",
            message=f"CSV phonebook replaced: {len(rows)} entries",
            actor=actor,
        )
        audit_record(
            kind="config",
            object_id="phonebook.csv",
            object_repr="CSV phonebook",
            action="replaced",
            summary=f"CSV phonebook replaced: {len(rows)} entries.",
            before={"entries": before},
            after={"entries": len(rows)},
            actor=actor,
        )
    return len(rows)
