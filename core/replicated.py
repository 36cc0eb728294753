"""Shared (not node-local) configuration keys as a replicated entity."""

from __future__ import annotations

from typing import Any

from core import config
from core.changelog import ApplyError, Entity, entity_register
from core.models import ConfigValue


def _shared(name: str) -> bool:
    key = config.KEYS.get(name)
    return key is not None and not key.local


def _value(name: str, data: Any) -> str:
    if not _shared(name):
        raise ApplyError(f"{name!r} is not a shared configuration key of this server")
    if not isinstance(data, dict) or not isinstance(data.get("value"), str):
        raise ApplyError(f"configuration {name}: data needs a text 'value'")
    try:
        config.KEYS[name].parse(data["value"])
    except ValueError as exc:
        # A secret's value never reaches a message; the other keys' rules may quote theirs.
        detail = "not a valid value" if config.KEYS[name].secret else str(exc)
        raise ApplyError(f"configuration {name}: {detail}") from None
    return data["value"]


def _apply(op: str, key: str, data: Any) -> None:
    ConfigValue.objects.update_or_create(key=key, defaults={"value": _value(key, data)})


def _snapshot() -> list[dict[str, Any]]:
    return [
        {"key": key, "value": value}
        for key, value in ConfigValue.objects.values_list("key", "value")
        if _shared(key)
    ]


def _restore(rows: list[dict[str, Any]]) -> None:
    wanted = {row["key"]: _value(row["key"], {"value": row["value"]}) for row in rows}
    shared = [key for key in ConfigValue.objects.values_list("key", flat=True) if _shared(key)]
    ConfigValue.objects.filter(key__in=[k for k in shared if k not in wanted]).delete()
    for key, value in wanted.items():
        ConfigValue.objects.update_or_create(key=key, defaults={"value": value})


def register() -> None:
    entity_register(Entity("config", frozenset({"set"}), _apply, _snapshot, _restore))
