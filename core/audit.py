"""The audit trail: who changed what, when, from where and on which server.

Every service that changes configuration, users, base stations, media resources,
licenses, accounts, or runs an administration scenario calls ``audit_record`` once,
in the transaction of the change::

    audit_record(kind="user", object_id=str(user.pk), object_repr=str(user),
                 action="changed", before=old, after=new, secret_fields={"sip_password"},
                 actor=actor)

The record is a row of ``core.models.AuditRecord`` and, where this server writes the
change log, an entry of its own (entity ``audit``), so the backup holds the pair's
trail and it survives a failover. Where the change log is closed to this server (a
backup, a backup in failover, a switchover in progress) the record stays on this
server only. Records are only added: a snapshot or a resync adds the records a
server lacks and removes none, and backup files leave the trail out (a restore does
not rewrite history).

Why not a library that records model saves (django-auditlog, django-simple-history):
it would also record the follower applying replicated rows on the backup (twice the
trail, attributed to nobody), it knows neither the account's address nor a scenario
that changes no single row, and it would have to learn which fields are secret.
Every write here already goes through one service with an ``actor``.

Who and from where: ``kws_admin.middleware.AuditContextMiddleware`` puts the request
in a context variable (the signed-in account, the client's address); a management
command is recorded as ``command line: <command>`` with the OS user; otherwise the
``actor`` the service was given.
"""

from __future__ import annotations

import getpass
import os
import sys
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.changelog import Entity, changelog_append, entity_register
from core.locks import Locked, write_permission
from core.models import AuditRecord
from core.rules import Scope

ENTITY = "audit"

# The object kinds of the product (an app may record others: the page lists what it finds).
KINDS: dict[str, str] = {
    "config": "configuration key",
    "user": "user",
    "basestation": "base station",
    "media_resource": "media resource",
    "license": "license",
    "account": "administrator account",
    "scenario": "administration scenario",
}

# What a secret's before and after are shown as.
SECRET_SHOWN = "changed"

# The request being served (set by the middleware), if any.
_request: ContextVar[Any] = ContextVar("kws_audit_request", default=None)


@contextmanager
def audit_request(request: Any) -> Iterator[None]:
    """Records made inside are attributed to ``request``'s account and client address."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _command() -> str:
    """The management command this process runs (its name only: the arguments may hold
    a secret), or ''."""
    argv = sys.argv
    if len(argv) >= 2 and os.path.basename(argv[0]) in ("manage.py", "django-admin"):
        return argv[1]
    return ""


def audit_origin(*, actor: str = "") -> tuple[str, str]:
    """(account, address) of the change being made now."""
    request = _request.get()
    if request is not None:
        user = getattr(request, "user", None)
        account = user.get_username() if user is not None and user.is_authenticated else ""
        return account or actor, str(request.META.get("REMOTE_ADDR", ""))
    command = _command()
    if command:
        return _os_user(), f"command line: {command}"
    return actor, ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def audit_changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    secret_fields: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The fields that differ between ``before`` and ``after`` (None: the object did not
    exist), as ``{"field", "before", "after"}`` texts; a secret's are "" and "changed"."""
    before, after = before or {}, after or {}
    changes = []
    for name in list(before) + [n for n in after if n not in before]:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret_fields:
            changes.append({"field": name, "before": "", "after": SECRET_SHOWN, "secret": True})
        else:
            changes.append({"field": name, "before": _text(old), "after": _text(new)})
    return changes


def audit_record(
    *,
    kind: str,
    action: str,
    object_id: str = "",
    object_repr: str = "",
    summary: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    secret_fields: Collection[str] = (),
    actor: str = "",
    account: str | None = None,
    address: str | None = None,
) -> AuditRecord:
    """Record one change in the caller's transaction (its own if there is none): the
    object (``kind``, ``object_id`` as links filter on it, ``object_repr`` as shown),
    the ``action`` (created, changed, deleted, or a scenario's name), a one-line
    ``summary``, and the fields that differ between ``before`` and ``after`` (values of
    ``secret_fields`` are never stored). Who and from where come from the request or
    the command line (``audit_origin``) unless ``account`` / ``address`` are given.
    Replicated where this server writes the change log, kept here otherwise."""
    who, where = audit_origin(actor=actor)
    record = AuditRecord(
        uid=str(uuid.uuid4()),
        created=timezone.now(),
        server=settings.NODE_NAME,
        account=(who if account is None else account)[:150],
        address=(where if address is None else address)[:200],
        kind=kind[:40],
        object_id=object_id[:200],
        object_repr=(object_repr or object_id)[:200],
        action=action[:40],
        summary=summary
        or f"{KINDS.get(kind, kind).capitalize()} {object_repr or object_id} {action}.",
        changes=audit_changes(before, after, secret_fields=secret_fields),
    )
    with transaction.atomic():
        record.save()
        # Asked first, so a backup's local record does not wait for the log's head lock.
        if write_permission(Scope.SHARED).allowed:
            try:
                with transaction.atomic():
                    changelog_append(entity=ENTITY, op="add", key=record.uid, data=_data(record))
            except Locked:
                pass  # closed meanwhile (a switchover began): the record stays here
    return record


# --- Replication ---------------------------------------------------------------

_FIELDS = (
    "uid", "server", "account", "address", "kind", "object_id", "object_repr", "action",
    "summary", "changes",
)  # fmt: skip


def _data(record: AuditRecord) -> dict[str, Any]:
    return {
        **{name: getattr(record, name) for name in _FIELDS},
        "created": record.created.isoformat(),
    }


def _add(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("uid"), str):
        return
    created = parse_datetime(str(data.get("created", ""))) or timezone.now()
    fields = {name: data.get(name) for name in _FIELDS if name in data}
    fields["changes"] = fields.get("changes") or []
    for name in _FIELDS:
        if name != "changes" and not isinstance(fields.get(name, ""), str):
            fields[name] = str(fields[name])
    try:
        with transaction.atomic():
            AuditRecord.objects.get_or_create(
                uid=data["uid"], defaults={**fields, "created": created}
            )
    except IntegrityError:
        pass  # added meanwhile: records are only ever added


def _apply(op: str, key: str, data: Any) -> None:
    _add(data)


def _snapshot() -> list[dict[str, Any]]:
    return [_data(record) for record in AuditRecord.objects.order_by("id").iterator()]


def _restore(rows: list[dict[str, Any]]) -> None:
    # The trail only grows: the records this server lacks are added, none is removed.
    have = set(AuditRecord.objects.values_list("uid", flat=True))
    for row in rows:
        if row.get("uid") not in have:
            _add(row)


def register() -> None:
    entity_register(
        Entity(
            ENTITY,
            frozenset({"add"}),
            _apply,
            _snapshot,
            _restore,
            title="audit records",
            row_key=lambda row: str(row["uid"]),
            row_label=lambda row: str(row.get("summary", "")),
            backed_up=False,
        )
    )


# --- Reading the trail -----------------------------------------------------------


def audit_records(
    *,
    account: str = "",
    kind: str = "",
    object_id: str = "",
    since: Any = None,
    until: Any = None,
    text: str = "",
) -> Any:
    """The records that match every filter given, newest first: ``object_id`` exact, or
    every key under it when it ends with a dot (``sip.``); ``since`` inclusive, ``until``
    exclusive; ``text`` anywhere in the summary, the object, the account, the address or
    the changes."""
    records = AuditRecord.objects.all()
    if account:
        records = records.filter(account=account)
    if kind:
        records = records.filter(kind=kind)
    if object_id.endswith("."):
        records = records.filter(object_id__startswith=object_id)
    elif object_id:
        records = records.filter(object_id=object_id)
    if since is not None:
        records = records.filter(created__gte=since)
    if until is not None:
        records = records.filter(created__lt=until)
    if text:
        records = records.filter(
            Q(summary__icontains=text)
            | Q(object_repr__icontains=text)
            | Q(object_id__icontains=text)
            | Q(account__icontains=text)
            | Q(address__icontains=text)
            | Q(server__icontains=text)
            | Q(changes__icontains=text)
        )
    return records


def audit_kinds() -> dict[str, str]:
    """The product's object kinds and any other an app recorded, with their labels."""
    kinds = dict(KINDS)
    for kind in AuditRecord.objects.order_by("kind").values_list("kind", flat=True).distinct():
        kinds.setdefault(kind, kind.replace("_", " "))
    return kinds


def audit_accounts() -> list[str]:
    """Every account the trail names, for the page's filter."""
    return list(
        AuditRecord.objects.exclude(account="")
        .order_by("account")
        .values_list("account", flat=True)
        .distinct()
    )
