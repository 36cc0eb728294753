"""DECT users as a replicated entity, ``user`` (every column, by id; ``user_assignment``
is an older version's, applied as nothing). Rows keep their ids on the backup, so this
server's runtime rows that point at a user (its SIP registration) survive a resync."""

from __future__ import annotations

from typing import Any

from core.changelog import ApplyError, Entity, changelog_append, entity_register
from licensing.selectors import user_limit_message
from users.models import DectUser

_USER_FIELDS = [f.attname for f in DectUser._meta.concrete_fields]


def dect_user_data(user: DectUser) -> dict[str, Any]:
    """Every column of a user, as the change log and the snapshot carry it."""
    return {name: getattr(user, name) for name in _USER_FIELDS}


def _user_fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or "id" not in data:
        raise ApplyError("user data without an id")
    unknown = set(data) - set(_USER_FIELDS)
    if unknown:
        raise ApplyError(f"user data has fields this server does not know: {sorted(unknown)}")
    return data


def _user_apply(op: str, key: str, data: Any) -> None:
    if op == "upsert":
        fields = dict(_user_fields(data))
        DectUser.objects.update_or_create(id=fields.pop("id"), defaults=fields)
    elif op == "delete":
        DectUser.objects.filter(id=int(key)).delete()


def _user_snapshot() -> list[dict[str, Any]]:
    return list(DectUser.objects.order_by("id").values(*_USER_FIELDS))


def _user_restore(rows: list[dict[str, Any]]) -> None:
    # Rows are kept by id, not deleted and re-created: node-local rows that point at a
    # user (its SIP registration) survive a resync.
    wanted = {int(row["id"]): _user_fields(row) for row in rows}
    DectUser.objects.exclude(id__in=list(wanted)).delete()
    current = {row["id"]: row for row in DectUser.objects.values(*_USER_FIELDS)}
    changed = [pk for pk, row in current.items() if row != wanted[pk]]
    if changed:
        # Free their unique values first, so users that swapped extensions or IPEIs do
        # not collide half way (extensions are digits, so "~id" is never taken).
        DectUser.objects.bulk_update(
            [DectUser(id=pk, extension=f"~{pk}", ipei=None) for pk in changed],
            ["extension", "ipei"],
            batch_size=1000,
        )
        DectUser.objects.bulk_update(
            [DectUser(**wanted[pk]) for pk in changed],
            [name for name in _USER_FIELDS if name != "id"],
            batch_size=1000,
        )
    DectUser.objects.bulk_create(
        [DectUser(**row) for pk, row in wanted.items() if pk not in current], batch_size=1000
    )


def _user_assignment_apply(op: str, key: str, data: Any) -> None:
    """Entries of an older version, which rewrote every user's NODE column at each
    rebalance and takeover; who handles a user is the pair's assignment now, so they
    change nothing (they may still wait in a change log written before an upgrade)."""


def dect_user_record(user: DectUser) -> int:
    """Append a new or changed user, in the caller's transaction; return the seq."""
    return changelog_append(entity="user", op="upsert", key=str(user.pk), data=dect_user_data(user))


def register() -> None:
    entity_register(
        Entity(
            "user",
            frozenset({"upsert", "delete"}),
            _user_apply,
            _user_snapshot,
            _user_restore,
            sequence_models=(DectUser,),
            title="users",
            row_label=lambda row: f"{row['extension']} {row['display_name']}".strip(),
            secret_fields=frozenset({"sip_password"}),
            restore_check=lambda rows: user_limit_message(users_after=len(rows)),
        )
    )
    entity_register(Entity("user_assignment", frozenset({"set"}), _user_assignment_apply))
