"""Configuration of this node: read, change, export and import by dotted key.

The GUI forms, the ``kwsconfig`` command and imports all come through
``config_update``, so every path validates the same way and a refused change
writes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from kws_admin import config
from kws_admin.models import ConfigValue
from redundancy.services import event_record

logger = logging.getLogger(__name__)


@dataclass
class ConfigChange:
    changed: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def config_read() -> dict[str, Any]:
    """The whole configuration: stored values over the defaults."""
    values = config.defaults()
    stored = dict(ConfigValue.objects.values_list("key", "value"))
    for name, text in stored.items():
        if name in config.KEYS:
            values[name] = config.KEYS[name].parse(text)
    return values


def config_get(name: str) -> Any:
    if name not in config.KEYS:
        raise config.ConfigError({name: config.unknown_key_message(name)})
    return config_read()[name]


def config_update(
    *, changes: Mapping[str, str], actor: str, during_failover: bool = False
) -> ConfigChange:
    """Validate and store text values by key, all or nothing.

    Raises ConfigError naming each refused key and its rule; nothing is written
    then. Records one event naming the changed keys (never secret values).
    During a failover on a backup nothing may be changed (redundancy.locks.Locked)
    unless ``during_failover`` says the caller is an administration scenario
    made for it (promotion) or the engine itself.
    """
    if not during_failover:
        from redundancy.locks import failover_check

        failover_check()
    with transaction.atomic():
        old = config_read()
        new, notes = config.apply_change(old, changes)
        if new["redundancy.mode"] != old["redundancy.mode"] and not during_failover:
            notes += _license_check(new["redundancy.mode"])
        result = ConfigChange(notes=notes)
        for name, value in new.items():
            if value != old[name]:
                text = config.format_value(name, value)
                ConfigValue.objects.update_or_create(key=name, defaults={"value": text})
                if not config.KEYS[name].local:
                    # Shared settings are the master's: replicated, refused on a backup.
                    from redundancy.replication import changelog_append

                    changelog_append(entity="config", op="set", key=name, data={"value": text})
                result.changed[name] = value
        if result.changed:
            described = ", ".join(
                name if config.KEYS[name].secret else f"{name}={config.format_value(name, value)}"
                for name, value in sorted(result.changed.items())
            )
            event_record(kind="config", message=f"Configuration changed: {described}", actor=actor)
    return result


def _license_check(mode: str) -> list[str]:
    """A master or backup needs a redundancy license (14075250 master, 14075260 backup).

    A server without any is refused, naming the product to order. A server that
    holds the other role's license may still take this role, as the note's
    administration scenarios need (the promoted backup leads; the repaired
    master rejoins as backup before the roles swap back): it gets a note saying
    which product to order to keep the role for good. Promotion and switchover
    (``during_failover``) keep the licenses the server has.
    """
    from licensing.models import License
    from licensing.products import REDUNDANCY_PRODUCTS
    from licensing.selectors import redundancy_license_missing

    missing = redundancy_license_missing(mode)
    if not missing:
        return []
    if not License.objects.filter(product__in=REDUNDANCY_PRODUCTS).exists():
        raise config.ConfigError({"redundancy.mode": missing})
    return [f"This server holds the other role's redundancy license: {missing}."]


def config_export(*, include_secrets: bool = False) -> str:
    return config.export_text(config_read(), include_secrets=include_secrets)


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
    return config_update(changes={"redundancy.database_uuid": new_uuid}, actor=actor)
