"""Configuration keys: their names, types, defaults and rules.

Every setting has a dotted key (``redundancy.mode``) that the GUI, the
``kwsconfig`` command and export/import files share. This module is pure: it
parses and validates text values and knows nothing of the database. Storage
lives in ``core.services`` and ``core.selectors``.

Core defines the keys of the node itself (``redundancy.*``: its role in the
pair, the peer, the database UUID and the pairing secret), which the lock rule
and the peer client need. Every other key belongs to an app, which registers
it with ``key_register`` from its ``AppConfig.ready``; so core knows the keys
of licensing, users and base stations only as registered ``Key`` values.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODES = ("single", "master", "slave")
MODE_LABELS = {"single": "Single", "master": "Master", "slave": "Backup (slave)"}
FAILOVER_TIME_MAX = 3600  # an hour: longer is no failover at all
SECRET_MIN_LENGTH = 16
DEFAULT_PEER_PORT = 80

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ConfigError(ValueError):
    """One or more keys were refused; ``errors`` maps each key to its message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class Key:
    name: str
    label: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    # Node-local keys belong to one server and are never replicated: a backup
    # keeps its own network and redundancy settings.
    local: bool = False
    format: Callable[[Any], str] = field(default=str)


def parse_mode(text: str) -> str:
    value = text.strip().lower()
    if value not in MODES:
        raise ValueError(f"{text!r} is not a mode; use single, master or slave")
    return value


def split_peer(text: str, default_port: int = DEFAULT_PEER_PORT) -> tuple[str, int]:
    """Split ``host``, ``host:port``, ``IPv6`` or ``[IPv6]:port`` into (host, port)."""
    text = text.strip()
    port_text = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not a valid [IPv6]:port address")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    else:
        port = default_port
    check_host(host)
    return host, port


def check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if host and re.fullmatch(r"[0-9.]+", host):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a host name or IP address")


def optional(check: Callable[[str], object]) -> Callable[[str], str]:
    """A parser for an optional address: empty, or text that ``check`` accepts."""

    def parse(text: str) -> str:
        text = text.strip()
        if text:
            check(text)
        return text

    return parse


def parse_failover_time(text: str) -> int:
    raw = text.strip()
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError(f"{text!r} is not a whole number of seconds")
    value = int(raw)
    if value < 0:
        raise ValueError(f"{value} is negative; use 0 to {FAILOVER_TIME_MAX} seconds")
    if value > FAILOVER_TIME_MAX:
        raise ValueError(
            f"{value} s is more than {FAILOVER_TIME_MAX} s; use 0 to {FAILOVER_TIME_MAX}"
        )
    return value


def parse_uuid(text: str) -> str:
    raw = text.strip()
    if not raw:
        return ""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a UUID (like 123e4567-e89b-12d3-a456-426614174000)"
        ) from None


def parse_secret(text: str) -> str:
    value = text.strip()
    if value and len(value) < SECRET_MIN_LENGTH:
        raise ValueError(f"must be at least {SECRET_MIN_LENGTH} characters long")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    return value


def int_between(low: int, high: int, unit: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        raw = text.strip()
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValueError(f"{text!r} is not a whole number of {unit}")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range; use {low} to {high} {unit}")
        return value

    return parse


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key(
            "redundancy.mode",
            "Node type",
            "single",
            parse_mode,
            "single, master or slave (backup).",
            local=True,
        ),
        Key(
            "redundancy.peer",
            "Peer node",
            "",
            optional(split_peer),
            "Host name or IP address of the other server, with :port if not 80.",
            local=True,
        ),
        Key(
            "redundancy.failover_time",
            "Failover time",
            15,
            parse_failover_time,
            "Seconds from detecting a failure of the peer until the failover starts.",
            local=True,
        ),
        Key(
            "redundancy.database_uuid",
            "Database UUID",
            "",
            parse_uuid,
            "Unique ID of the distributed database; must match on both servers.",
            local=True,
        ),
        Key(
            "redundancy.secret",
            "Pairing secret",
            "",
            parse_secret,
            f"Shared secret that signs the messages between the servers "
            f"(at least {SECRET_MIN_LENGTH} characters, the same on both).",
            secret=True,
            local=True,
        ),
    )
}


def key_register(*keys: Key) -> None:
    """Add an app's keys (from its ``AppConfig.ready``); a name is registered once."""
    for key in keys:
        if KEYS.get(key.name, key) is not key:
            raise ValueError(f"configuration key {key.name} is registered twice")
        KEYS[key.name] = key


def unknown_key_message(name: str) -> str:
    return f"unknown configuration key; known keys: {', '.join(sorted(KEYS))}"


def _parse_each(texts: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        key = KEYS.get(name)
        if key is None:
            errors[name] = unknown_key_message(name)
            continue
        try:
            values[name] = key.parse(str(text))
        except ValueError as exc:
            errors[name] = str(exc)
    return values, errors


def parse_values(texts: Mapping[str, str]) -> dict[str, Any]:
    """Parse text values by key; raise ConfigError naming every bad key."""
    values, errors = _parse_each(texts)
    if errors:
        raise ConfigError(errors)
    return values


def apply_change(
    old: Mapping[str, Any], texts: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The configuration after a change of text values, and notes for the admin.

    Raises ConfigError naming every refused key at once: values that do not
    parse and rules the resulting configuration would break.
    """
    values, errors = _parse_each(texts)
    new = {**old, **values}
    notes = normalize(old, new, set(values))
    for name, message in check_rules(new).items():
        errors.setdefault(name, message)
    if errors:
        raise ConfigError(errors)
    return new, notes


def check_rules(config: Mapping[str, Any]) -> dict[str, str]:
    """Rules that tie keys together, checked on the whole configuration after a change."""
    errors: dict[str, str] = {}
    mode = config["redundancy.mode"]
    if mode != "single":
        role = "backup (slave)" if mode == "slave" else "master"
        other = "master" if mode == "slave" else "backup"
        if not config["redundancy.peer"]:
            errors["redundancy.peer"] = (
                f"required when the node type is {role}: enter the address of the {other} server"
            )
        if not config["redundancy.secret"]:
            errors["redundancy.secret"] = (
                f"required when the node type is {role}: the same secret on both servers"
            )
    return errors


def format_value(name: str, value: Any) -> str:
    return KEYS[name].format(value)


def defaults() -> dict[str, Any]:
    return {name: key.default for name, key in KEYS.items()}


def export_text(config: Mapping[str, Any], *, include_secrets: bool = False) -> str:
    """The readable export format: ``key = value`` lines, comments with ``#``."""
    lines = ["# KWS Admin configuration", "# key = value; lines starting with # are ignored"]
    for name in sorted(config):
        key = KEYS[name]
        if key.secret and not include_secrets:
            lines.append(f"# {name} is secret and left out (export with --include-secrets)")
            continue
        lines.append(f"# {key.label}: {key.help}")
        lines.append(f"{name} = {format_value(name, config[name])}")
    return "\n".join(lines) + "\n"


def parse_export_text(text: str) -> dict[str, str]:
    """Read an export file into raw text values; raise ConfigError for malformed lines."""
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep or not name:
            errors[f"line {number}"] = f"{stripped!r} is not a 'key = value' line"
        elif name in texts:
            errors[f"line {number}"] = f"{name} is given twice"
        else:
            texts[name] = value.strip()
    if errors:
        raise ConfigError(errors)
    return texts


def normalize(old: Mapping[str, Any], new: dict[str, Any], changed: set[str]) -> list[str]:
    """Apply the seed's database UUID rules to a changed configuration, in place.

    A server that becomes a backup, or a backup given another master (moved to
    another pair), gets its UUID reset (emptied, so it is fetched from the master
    at join) unless the same change gives one; a master or single server always
    has a UUID, generated when missing. Returns notes for the admin.
    """
    notes: list[str] = []
    uuid_key = "redundancy.database_uuid"
    backup = new["redundancy.mode"] == "slave"
    became_backup = backup and old["redundancy.mode"] != "slave"
    moved = backup and not became_backup and new["redundancy.peer"] != old["redundancy.peer"]
    if (became_backup or moved) and uuid_key not in changed and new[uuid_key]:
        new[uuid_key] = ""
        why = "is now a backup" if became_backup else "follows another master"
        notes.append(
            f"Database UUID reset: this server {why} and fetches the master's UUID when it joins."
        )
    if new["redundancy.mode"] != "slave" and not new[uuid_key]:
        new[uuid_key] = str(uuid.uuid4())
        notes.append(f"Database UUID generated: {new[uuid_key]}.")
    return notes
