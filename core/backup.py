"""Backup and restore of a system's configuration: the keys and the replicated data.

A backup file (format: ``core.backupfile``) holds the configuration as ``kwsconfig
export`` writes it and every replicated entity's snapshot rows (``core.changelog``'s
registry: users, base stations and media resources, administrator accounts, ...),
and names the system it came from (its database UUID), the server and the moment.
Without secrets the secret keys and each entity's ``secret_fields`` (SIP passwords,
password hashes) are left out, and a restore keeps this server's own values of them;
with secrets the file is sealed with a passphrase.

A restore is planned first (``backup_restore(..., dry_run=True)``: what would change,
key by key and row by row, tried in a transaction that is rolled back) and then
applied with the plan's ``fingerprint`` of this server's data: if anything changed in
between, the restore is refused, so what is applied is what the preview showed. It
replaces the data in one transaction and starts a new change log
(``changelog_retire``): a backup that follows this server sees a log that is new to
it and resyncs from a snapshot. Entries would replay a restore a row at a time, where
users or devices that swapped extensions or MACs collide half way; the snapshot
restore frees them first. Node-local keys (``redundancy.*``, the ARI) are this
server's own: shown, never restored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from core import config
from core.audit import audit_record
from core.backupfile import BackupFile, BackupFileError, decode, encode
from core.changelog import (
    ENTITIES,
    ApplyError,
    _one_moment,
    changelog_head_lock,
    changelog_retire,
    changelog_retired_notify,
    sequences_reset,
)
from core.locks import write_check
from core.models import ConfigValue
from core.selectors import config_read
from core.services import CHECKS, event_record

CONFIG_ENTITY = "config"  # the keys travel as export text, not as rows
CHANGED_SINCE_PREVIEW = (
    "this server's configuration changed since the preview: preview again, nothing changed"
)
PENDING_MAX_AGE = 30 * 60  # seconds a previewed file waits for its confirmation
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class RestoreError(Exception):
    """A restore refused, with the cause for the administrator; ``errors`` names refused
    configuration keys (key -> message, as ``kwsconfig import`` says them)."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        self.message = message
        self.errors = dict(errors or {})
        super().__init__(message)


@dataclass(frozen=True)
class KeyChange:
    name: str
    label: str
    old: str
    new: str
    secret: bool


@dataclass(frozen=True)
class RowChange:
    key: str
    label: str
    # What changes in the row: "field: old → new", secrets only "field changed".
    fields: tuple[str, ...] = ()


@dataclass
class EntityChanges:
    name: str
    title: str
    added: list[RowChange] = field(default_factory=list)
    changed: list[RowChange] = field(default_factory=list)
    removed: list[RowChange] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass
class RestorePlan:
    """What a restore of one file changes on this server, as the preview shows it."""

    header: dict[str, Any]
    config: list[KeyChange] = field(default_factory=list)
    # Node-local keys of the file, never restored: (name, label, this server's, the file's).
    local_keys: list[tuple[str, str, str, str]] = field(default_factory=list)
    entities: list[EntityChanges] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def changes(self) -> bool:
        return bool(self.config) or any(e.any for e in self.entities)

    def summary(self) -> str:
        parts = [f"{len(self.config)} configuration key(s)"] + [
            f"{e.title}: {len(e.added)} added, {len(e.changed)} changed, {len(e.removed)} removed"
            for e in self.entities
        ]
        return "; ".join(parts)


@dataclass
class _Writes:
    config: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _DryRun(Exception):
    """Rolls a tried restore back."""


# --- Writing a file ------------------------------------------------------------


def _shown(name: str, value: Any) -> str:
    return config.format_value(name, value)


def backup_build(*, actor: str, include_secrets: bool = False, passphrase: str = "") -> bytes:
    """This server's configuration and replicated data as a backup file, read at one
    moment. With ``include_secrets`` the file holds the secrets and is sealed with
    ``passphrase`` (ValueError when it is too short). Records an event."""
    with _one_moment():
        values = config_read()
        entities = {
            name: spec.snapshot()
            for name, spec in ENTITIES.items()
            if spec.snapshot is not None and spec.backed_up and name != CONFIG_ENTITY
        }
    if not include_secrets:
        for name, rows in entities.items():
            hidden = ENTITIES[name].secret_fields
            entities[name] = [{k: v for k, v in row.items() if k not in hidden} for row in rows]
    header = {
        "database_uuid": values["redundancy.database_uuid"],
        "node": settings.NODE_NAME,
        "mode": values["redundancy.mode"],
        "created": timezone.now().isoformat(timespec="seconds"),
        "secrets": include_secrets,
    }
    payload = {
        "config": config.export_text(values, include_secrets=include_secrets),
        "entities": entities,
    }
    data = encode(BackupFile(header=header, payload=payload), passphrase=passphrase)
    how = "with secrets, protected by a passphrase" if include_secrets else "without secrets"
    event_record(kind="backup", message=f"Configuration backup written ({how}).", actor=actor)
    return data


# --- Reading a file ------------------------------------------------------------


def backup_open(data: bytes, *, passphrase: str = "") -> BackupFile:
    """Read an uploaded file and check that it is this system's; raise RestoreError with
    the cause (damaged, protected, wrong passphrase, another system)."""
    try:
        backup = decode(data, passphrase=passphrase)
    except BackupFileError as exc:
        raise RestoreError(f"Refused, nothing changed: {exc}.") from None
    ours = config_read()["redundancy.database_uuid"]
    if backup.database_uuid != ours:
        raise RestoreError(
            f"Refused, nothing changed: this file is from another system (database UUID "
            f"{backup.database_uuid or '(none)'}, written on {backup.header['node']}); this "
            f"system's is {ours or '(none)'}. Restore a backup of this system. To move that "
            f"system's configuration onto this server, first give this server that UUID "
            f"(kwsconfig set redundancy.database_uuid {backup.database_uuid}) and pair its "
            "backup again."
        )
    return backup


# --- Planning ------------------------------------------------------------------


def _normalized(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The file's rows went through JSON; compare this server's rows the same way.
    return json.loads(json.dumps(rows, default=str))


def _fingerprint(values: dict[str, Any], current: dict[str, list[dict[str, Any]]]) -> str:
    text = json.dumps(
        {"config": {k: _shown(k, v) for k, v in values.items()}, "entities": current},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _config_plan(backup: BackupFile, values: dict[str, Any], plan: RestorePlan, writes: _Writes):
    try:
        texts = config.parse_export_text(backup.payload["config"])
    except config.ConfigError as exc:
        raise RestoreError("Refused, nothing changed: the file's configuration is damaged.",
                           exc.errors) from None  # fmt: skip
    local = {n: t for n, t in texts.items() if n in config.KEYS and config.KEYS[n].local}
    shared = {n: t for n, t in texts.items() if n not in local}
    for name, text in sorted(local.items()):
        key = config.KEYS[name]
        mine = _shown(name, values[name])
        if key.secret:
            mine, text = ("(set)" if values[name] else "(not set)"), "(secret)"
        plan.local_keys.append((name, key.label, mine, text))
    try:
        new, notes = config.apply_change(values, shared)
        for check in CHECKS.values():
            notes += check(values, new)
    except config.ConfigError as exc:
        raise RestoreError(
            "Refused, nothing changed: the file's configuration breaks this server's rules.",
            exc.errors,
        ) from None
    plan.notes += notes
    for name in sorted(shared):
        key = config.KEYS[name]
        if new[name] != values[name] and not key.local:
            old_text, new_text = _shown(name, values[name]), _shown(name, new[name])
            writes.config[name] = new_text
            if key.secret:
                old_text, new_text = "", "changed"
            plan.config.append(KeyChange(name, key.label, old_text, new_text, key.secret))
    left_out = [n for n, k in config.KEYS.items() if k.secret and not k.local and n not in shared]
    if left_out and backup.secrets:
        plan.notes.append(
            f"Not in the file, kept as they are on this server: {', '.join(sorted(left_out))}."
        )


def _row_fields(old: dict[str, Any], new: dict[str, Any], hidden: frozenset[str]) -> tuple:
    out = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            if name in hidden:
                out.append(f"{name} changed")
            else:
                out.append(f"{name}: {old.get(name)!r} → {new.get(name)!r}")
    return tuple(out)


def _entity_plan(
    name: str,
    file_rows: list[dict[str, Any]],
    current_rows: list[dict[str, Any]],
    *,
    secrets_in_file: bool,
) -> tuple[EntityChanges, list[dict[str, Any]]]:
    spec = ENTITIES[name]
    changes = EntityChanges(name, spec.title or name)
    try:
        current = {spec.row_key(row): row for row in current_rows}
        wanted: dict[str, dict[str, Any]] = {}
        for row in file_rows:
            key = spec.row_key(row)
            if key in wanted:
                raise RestoreError(
                    f"Refused, nothing changed: the file's {changes.title} name {key} twice."
                )
            row = dict(row)
            if not secrets_in_file:
                for secret in spec.secret_fields:
                    row[secret] = current[key].get(secret, "") if key in current else ""
            wanted[key] = row
        for key, row in wanted.items():
            if key not in current:
                changes.added.append(RowChange(key, spec.row_label(row)))
            elif row != current[key]:
                fields = _row_fields(current[key], row, spec.secret_fields)
                changes.changed.append(RowChange(key, spec.row_label(row), fields))
        for key, row in current.items():
            if key not in wanted:
                changes.removed.append(RowChange(key, spec.row_label(row)))
    except (KeyError, TypeError, ValueError):
        raise RestoreError(
            f"Refused, nothing changed: the file's {changes.title} are damaged "
            "(a row without its key fields)."
        ) from None
    return changes, list(wanted.values())


def _plan(backup: BackupFile, *, actor: str) -> tuple[RestorePlan, _Writes]:
    plan, writes = RestorePlan(header=dict(backup.header)), _Writes()
    values = config_read()
    current = {
        name: _normalized(spec.snapshot())
        for name, spec in ENTITIES.items()
        if spec.snapshot is not None and spec.backed_up and name != CONFIG_ENTITY
    }
    plan.fingerprint = _fingerprint(values, current)
    _config_plan(backup, values, plan, writes)
    entities = backup.payload["entities"]
    unknown = sorted(set(entities) - set(current))
    if unknown:
        raise RestoreError(
            f"Refused, nothing changed: the file holds {', '.join(unknown)}, which this "
            "server's version does not know (a file of a newer version?)."
        )
    for name in current:
        if name not in entities:
            plan.notes.append(
                f"The file has no {ENTITIES[name].title or name}: this server's are kept."
            )
            continue
        changes, rows = _entity_plan(
            name, entities[name], current[name], secrets_in_file=backup.secrets
        )
        refusal = ENTITIES[name].restore_check(rows)
        if refusal:
            raise RestoreError(f"Refused, nothing changed: the file's {changes.title}: {refusal}.")
        plan.entities.append(changes)
        writes.rows[name] = rows
        if not backup.secrets and changes.added and ENTITIES[name].secret_fields:
            hidden = ", ".join(sorted(ENTITIES[name].secret_fields))
            plan.notes.append(
                f"{len(changes.added)} of the {changes.title} added come without their "
                f"{hidden} (the file has no secrets): set them after the restore."
            )
    if not backup.secrets:
        kept = sorted(n for n, k in config.KEYS.items() if k.secret and not k.local)
        kept += [
            f"the {field} of the {spec.title or name}"
            for name, spec in ENTITIES.items()
            if spec.backed_up
            for field in sorted(spec.secret_fields)
        ]
        plan.notes.append(
            f"This file holds no secrets: this server keeps its own ({', '.join(kept)})."
        )
    _own_account_notes(plan, actor)
    return plan, writes


def _own_account_notes(plan: RestorePlan, actor: str) -> None:
    for changes in plan.entities:
        if changes.name != "admin_account":
            continue
        if any(row.key == actor for row in changes.removed):
            plan.notes.append(
                f"Your own account {actor} is not in the file: the restore removes it and "
                "signs you out."
            )
        for row in changes.changed:
            if row.key == actor and "password changed" in row.fields:
                plan.notes.append(
                    "Your password becomes the one in the file: sign in with it after the restore."
                )


# --- Restoring -----------------------------------------------------------------


def _apply(writes: _Writes, *, dry_run: bool) -> None:
    for name, text in writes.config.items():
        ConfigValue.objects.update_or_create(key=name, defaults={"value": text})
    touched = []
    for name, spec in ENTITIES.items():  # registration order: parents first
        if name in writes.rows and spec.restore is not None:
            spec.restore(writes.rows[name])
            touched.extend(spec.sequence_models)
    if not dry_run:
        # Not in a dry run: PostgreSQL's sequences do not roll back, and the rows the
        # dry run removed come back with their ids.
        sequences_reset(touched)


def backup_restore(
    *, backup: BackupFile, actor: str, fingerprint: str = "", dry_run: bool = False
) -> RestorePlan:
    """Restore ``backup`` (from ``backup_open``) here, all or nothing; return the plan.

    ``dry_run``: try it in a transaction that is rolled back (the preview). With a
    ``fingerprint`` (the preview's plan), refuse with CHANGED_SINCE_PREVIEW when this
    server's data is not what it was then. Raises Locked on a backup or during a
    failover, RestoreError with the cause when the file's values break the rules or
    its rows cannot be stored; nothing is changed then. A restore that changes
    something starts a new change log, so the backup resyncs from a snapshot.
    """
    write_check()
    try:
        with transaction.atomic():
            changelog_head_lock()  # no replicated write in between plan and restore
            write_check()
            plan, writes = _plan(backup, actor=actor)
            if fingerprint and fingerprint != plan.fingerprint:
                raise RestoreError(f"Refused: {CHANGED_SINCE_PREVIEW}.")
            try:
                with transaction.atomic():
                    _apply(writes, dry_run=dry_run)
            except (ApplyError, IntegrityError, DataError, ValueError, TypeError) as exc:
                # The database's first line names the constraint, not the rows' values.
                cause = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise RestoreError(
                    f"Refused, nothing changed: the file's data cannot be stored: {cause}"
                ) from None
            if dry_run:
                raise _DryRun(plan)
            if plan.changes:
                # Before the new log starts at 0: the backup gets the record with the
                # snapshot the new log makes it take.
                audit_record(
                    kind="scenario",
                    object_id="restore",
                    object_repr="restore of a backup",
                    action="restore",
                    summary=f"Configuration restored from the backup of "
                    f"{backup.header['node']} written {backup.header['created']}: "
                    f"{plan.summary()}.",
                    before={change.name: change.old for change in plan.config},
                    after={change.name: change.new for change in plan.config},
                    secret_fields={change.name for change in plan.config if change.secret},
                    actor=actor,
                )
                changelog_retire()
                changelog_retired_notify()
                event_record(
                    kind="backup",
                    message=f"Configuration restored from the backup of "
                    f"{backup.header['node']} written {backup.header['created']}: "
                    f"{plan.summary()}.",
                    actor=actor,
                )
    except _DryRun:
        pass
    return plan


# --- The previewed file, kept until its confirmation ---------------------------


def _pending_dir() -> Path:
    return Path(settings.DATA_DIR) / "restore"


def _pending_path(token: str) -> Path:
    if not _TOKEN.match(token):
        raise RestoreError("The preview has expired: upload the file again.")
    return _pending_dir() / f"{token}.pending"


def restore_pending_save(backup: BackupFile, *, fingerprint: str) -> tuple[str, str]:
    """Keep a previewed file until it is confirmed; return (token, key). The file in the
    data folder is sealed with ``key``, which only the administrator's session holds,
    as it may hold secrets. Older previews are removed."""
    folder = _pending_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in folder.glob("*.pending"):
        if time.time() - old.stat().st_mtime > PENDING_MAX_AGE:
            old.unlink(missing_ok=True)
    token, nonce = secrets.token_urlsafe(24), os.urandom(12)
    key = AESGCM.generate_key(bit_length=256)
    plain = json.dumps(
        {"header": backup.header, "payload": backup.payload, "fingerprint": fingerprint}
    ).encode()
    path = _pending_path(token)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(nonce + AESGCM(key).encrypt(nonce, plain, token.encode()))
    return token, base64.urlsafe_b64encode(key).decode()


def restore_pending_load(token: str, key: str) -> tuple[BackupFile, str]:
    """The previewed file and its plan's fingerprint; RestoreError when it has expired."""
    path = _pending_path(token)
    expired = RestoreError("The preview has expired: upload the file again.")
    try:
        if time.time() - path.stat().st_mtime > PENDING_MAX_AGE:
            path.unlink(missing_ok=True)
            raise expired
        sealed = path.read_bytes()
        plain = AESGCM(base64.urlsafe_b64decode(key)).decrypt(
            sealed[:12], sealed[12:], token.encode()
        )
    except (OSError, InvalidTag, ValueError, binascii.Error):
        raise expired from None
    kept = json.loads(plain)
    return BackupFile(header=kept["header"], payload=kept["payload"]), kept["fingerprint"]


def restore_pending_discard(token: str) -> None:
    try:
        _pending_path(token).unlink(missing_ok=True)
    except RestoreError:
        pass
