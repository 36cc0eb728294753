"""Administrator accounts (django.contrib.auth users) as a replicated entity, by username."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from accounts.models import PasswordChangeRequired
from core.changelog import ApplyError, Entity, entity_register

ENTITY = "admin_account"
FIELDS = (
    "password", "is_active", "is_staff", "is_superuser", "first_name", "last_name", "email",
)  # fmt: skip


def admin_account_data(user: Any) -> dict[str, Any]:
    """An admin account as replicated: its password hash, flags, names and whether it
    still has to change its initial password."""
    data = {name: getattr(user, name) for name in FIELDS}
    data["username"] = user.get_username()
    data["password_change_required"] = PasswordChangeRequired.objects.filter(user=user).exists()
    return data


def admin_account_upsert(data: Any) -> None:
    """Make the account ``data`` names equal to it (created if missing)."""
    if not isinstance(data, dict) or not data.get("username"):
        raise ApplyError("admin_account data without a username")
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise ApplyError(f"admin_account data lacks {', '.join(missing)}")
    User = get_user_model()
    user, _ = User.objects.update_or_create(
        username=data["username"], defaults={name: data[name] for name in FIELDS}
    )
    if data.get("password_change_required"):
        PasswordChangeRequired.objects.get_or_create(user=user)
    else:
        PasswordChangeRequired.objects.filter(user=user).delete()


def _apply(op: str, key: str, data: Any) -> None:
    if op == "upsert":
        admin_account_upsert(data)
    elif op == "delete":
        get_user_model().objects.filter(username=key).delete()


def _snapshot() -> list[dict[str, Any]]:
    return [admin_account_data(user) for user in get_user_model().objects.order_by("username")]


def _restore(rows: list[dict[str, Any]]) -> None:
    # Upsert by username rather than replace: local ids (and so sessions) survive.
    for row in rows:
        admin_account_upsert(row)
    names = [row["username"] for row in rows]
    get_user_model().objects.exclude(username__in=names).delete()


def _restore_check(rows: list[dict[str, Any]]) -> str:
    """A restore must leave an administrator who can log in (the last-administrator rule)."""
    if any(row.get("is_active") and row.get("is_superuser") for row in rows):
        return ""
    return (
        "the file holds no enabled administrator account: restoring it would leave "
        "nobody who can administer this system"
    )


def register() -> None:
    entity_register(
        Entity(
            ENTITY,
            frozenset({"upsert", "delete"}),
            _apply,
            _snapshot,
            _restore,
            title="administrator accounts",
            row_key=lambda row: str(row["username"]),
            row_label=lambda row: str(row["username"]),
            # The password hash: a backup file without secrets leaves it out.
            secret_fields=frozenset({"password"}),
            restore_check=_restore_check,
        )
    )
