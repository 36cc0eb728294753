"""Writes of core: the configuration (change, import, reset the UUID) and the event log.

The GUI forms, the ``kwsconfig`` command and imports all come through
``config_update``, so every path validates the same way and a refused change
writes nothing. Apps add rules that need the database (a license for the node
type, an ARI bound to license codes) with ``config_check_register`` from their
``AppConfig.ready``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core import config
from core.audit import audit_record
from core.changelog import changelog_append
from core.locks import write_check
from core.models import ConfigValue, Event, Refusal
from core.rules import Scope
from core.selectors import config_get, config_read

logger = logging.getLogger(__name__)

# Refusals not repeated for this long are forgotten (and logged again if they return).
REFUSAL_FORGET = timedelta(days=1)

# A check sees the configuration before and after a change (by key, parsed values) and
# returns notes for the administrator, or raises config.ConfigError to refuse it.
ConfigCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
CHECKS: dict[str, ConfigCheck] = {}


def config_check_register(name: str, check: ConfigCheck) -> None:
    """Add a rule every configuration change must pass (from an app's ``ready``)."""
    CHECKS[name] = check


@dataclass
class ConfigChange:
    changed: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def config_update(
    *,
    changes: Mapping[str, str],
    actor: str,
    skip_write_check: bool = False,
    skip_checks: Collection[str] = (),
) -> ConfigChange:
    """Validate and store text values by key, all or nothing.

    Raises ConfigError naming each refused key and its rule; nothing is written
    then. Records one event naming the changed keys (never secret values).
    Raises core.locks.Locked where this node may not change even its own
    settings (a backup in failover) unless ``skip_write_check`` (an
    administration scenario made for that moment, or the engine itself).
    ``skip_checks`` names registered checks a scenario must not apply (a
    promotion keeps the licenses the server has). Shared keys are written with
    their change-log entry, which refuses them on a backup.
    """
    if not skip_write_check:
        write_check(Scope.LOCAL)
    with transaction.atomic():
        old = config_read()
        new, notes = config.apply_change(old, changes)
        for name, check in CHECKS.items():
            if name not in skip_checks:
                notes += check(old, new)
        result = ConfigChange(notes=notes)
        for name, value in new.items():
            if value != old[name]:
                text = config.format_value(name, value)
                ConfigValue.objects.update_or_create(key=name, defaults={"value": text})
                if not config.KEYS[name].local:
                    # Shared settings are the master's: replicated, refused on a backup.
                    changelog_append(entity="config", op="set", key=name, data={"value": text})
                result.changed[name] = value
                audit_record(
                    kind="config",
                    object_id=name,
                    action="changed",
                    summary=f"Configuration key {name} changed.",
                    before={"value": config.format_value(name, old[name])},
                    after={"value": text},
                    secret_fields={"value"} if config.KEYS[name].secret else (),
                    actor=actor,
                )
        if result.changed:
            described = ", ".join(
                name if config.KEYS[name].secret else f"{name}={config.format_value(name, value)}"
                for name, value in sorted(result.changed.items())
            )
            event_record(kind="config", message=f"Configuration changed: {described}", actor=actor)
    return result


def config_import(*, text: str, actor: str) -> ConfigChange:
    """Apply an export file; a file with any bad line or value changes nothing."""
    return config_update(changes=config.parse_export_text(text), actor=actor)


def database_uuid_reset(*, actor: str) -> ConfigChange:
    """The seed's reset: a new UUID on a master or single server; on a backup the
    UUID is emptied and fetched from the master when the backup joins."""
    if config_get("redundancy.mode") == "slave":
        new_uuid = ""
    else:
        new_uuid = str(uuid.uuid4())
    with transaction.atomic():
        old = config_get("redundancy.database_uuid")
        change = config_update(changes={"redundancy.database_uuid": new_uuid}, actor=actor)
        audit_record(
            kind="scenario",
            object_id="database_uuid_reset",
            object_repr="database UUID reset",
            action="UUID reset",
            summary="Database UUID reset"
            + (": emptied, fetched from the master at join." if not new_uuid else "."),
            before={"redundancy.database_uuid": old},
            after={"redundancy.database_uuid": new_uuid},
            actor=actor,
        )
    return change


# --- The event log -----------------------------------------------------------


def event_record(*, kind: str, message: str, severity: str = "info", actor: str = "") -> Event:
    """Write an event log entry (inside the caller's transaction) and log it."""
    logger.log(
        logging.WARNING if severity != "info" else logging.INFO, "event %s: %s", kind, message
    )
    return Event.objects.create(kind=kind, message=message, severity=severity, actor=actor)


def refusal_record(*, kind: str, key: str, message: str, now: datetime | None = None) -> bool:
    """Remember a refused contact; the first time per ``key`` also write a warning event
    of ``kind`` with ``message``. Return whether it was new. Safe across processes: the
    primary key decides who logs."""
    now = now or timezone.now()
    key = key[:200]
    if Refusal.objects.filter(key=key).update(last_at=now, count=F("count") + 1, message=message):
        return False
    try:
        with transaction.atomic():
            Refusal.objects.create(key=key, kind=kind, message=message, first_at=now, last_at=now)
    except IntegrityError:
        return False
    Refusal.objects.filter(last_at__lt=now - REFUSAL_FORGET).delete()
    event_record(kind=kind, message=message, severity="warning")
    return True


def refusals_forget(*, kind: str, who: str) -> int:
    """Forget the refusals of ``who`` (a part of their keys after the cause) once it is
    accepted, so a refusal that returns later is logged again. Return how many."""
    named = Refusal.objects.filter(
        Q(key__endswith=f"|{who}") | Q(key__contains=f"|{who}|"), kind=kind
    )
    # Called for every valid peer message: a read, and a write only when there is one.
    if not named.exists():
        return 0
    deleted, _ = named.delete()
    return deleted
