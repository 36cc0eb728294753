"""Reads of core: the configuration and what the peer said of itself."""

from __future__ import annotations

from typing import Any

from django.db.models import Subquery
from django.db.models.expressions import BaseExpression

from core import config
from core.models import ConfigValue, NodeState


def config_read() -> dict[str, Any]:
    """The whole configuration: stored values over the defaults."""
    values = config.defaults()
    stored = dict(ConfigValue.objects.values_list("key", "value"))
    for name, text in stored.items():
        if name in config.KEYS:
            values[name] = config.KEYS[name].parse(text)
    return values


def node_mode_and_state(**extra: BaseExpression) -> tuple[str, NodeState]:
    """``redundancy.mode`` (as ``config_read`` gives it) and this node's state, in one
    query: for the pages that annotate every row with them, such as the Users list.
    ``extra`` annotates the state with more values read in the same query (the Users
    list's count of users), as attributes of the returned state."""
    stored = ConfigValue.objects.filter(key="redundancy.mode").values("value")[:1]
    rows = NodeState.objects.filter(pk=1).annotate(stored_mode=Subquery(stored), **extra)
    state = rows.first()
    if state is None:  # before the node's first state: load() makes it
        NodeState.load()
        state = rows.first()
    key = config.KEYS["redundancy.mode"]
    return (key.default if state.stored_mode is None else key.parse(state.stored_mode)), state


def config_get(name: str) -> Any:
    if name not in config.KEYS:
        raise config.ConfigError({name: config.unknown_key_message(name)})
    return config_read()[name]


def config_export(*, include_secrets: bool = False) -> str:
    return config.export_text(config_read(), include_secrets=include_secrets)


def peer_claims() -> dict[str, Any]:
    """What the peer last said of itself in a heartbeat ({} when nothing is known)."""
    return dict((NodeState.load().peer_status or {}).get("claims") or {})


def peer_name(values: dict[str, Any] | None = None) -> str:
    """The peer's node name as it last said it, else its configured address."""
    return peer_claims().get("node") or (values or config_read())["redundancy.peer"]
