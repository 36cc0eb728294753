"""Writes of administrator accounts, replicated like the rest of the configuration.

Where a change goes is ``core.rules.write_rule`` for the ``ACCOUNT`` scope: on a
master or single server a replicated write; on a joined backup the change is
forwarded to the master, which writes it and replicates it back (an
administrator must be able to change his initial password wherever he logs
in); on a backup that has not joined the accounts are its own until the
master's replace them at its first snapshot; during a failover on a backup
nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import ADMINISTRATOR, ROLES, PasswordChangeRequired, account_role
from accounts.replication import ENTITY, admin_account_data, admin_account_upsert
from core.audit import audit_origin, audit_record
from core.changelog import changelog_append, changelog_retire
from core.locks import Locked, write_check
from core.peer import PeerClient, PeerError
from core.rules import Route, Scope
from core.services import event_record

logger = logging.getLogger(__name__)

# Never stored in the audit trail, shown there as "changed".
SECRET_FIELDS = frozenset({"password"})

# How long a backup waits for the master to take a forwarded change (s).
FORWARD_TIMEOUT = 5.0

LOCK_ACCOUNTS_ON_MASTER = (
    "this server is the backup: administrator accounts are managed on the master "
    "(your own password can be changed here)"
)


class AccountError(Exception):
    """An account write refused for bad input or by the last-administrator rule; nothing
    changed. ``field`` names the form field the message belongs to (or "")."""

    def __init__(self, message: str, field: str = "") -> None:
        self.message, self.field = message, field
        super().__init__(message)


def _local_change_noted(what: str) -> None:
    """A backup changed replicated data on its own: it diverges from the master's log,
    so its next pull starts with a snapshot."""
    logger.info("%s changed locally on a backup that is not joined", what)
    changelog_retire()


def admin_account_record(user: Any) -> int | None:
    """Record a new or changed admin account in the caller's transaction, on the route
    the lock rule gives; return the entry's seq (None if not logged here).

    A joined backup cannot create accounts (Locked: do it on the master)."""
    route = write_check(Scope.ACCOUNT)
    if route == Route.MASTER:
        raise Locked("this server is the backup: admin accounts are created on the master")
    if route == Route.LOCAL:
        _local_change_noted(f"admin account {user.get_username()}")
        return None
    return changelog_append(
        entity=ENTITY, op="upsert", key=user.get_username(), data=admin_account_data(user)
    )


def admin_account_audit(
    *,
    username: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str,
    summary: str = "",
    account: str | None = None,
    address: str | None = None,
) -> None:
    """Record a change of an admin account in the audit trail (the password hash only as
    "changed"), in the caller's transaction."""
    audit_record(
        kind="account",
        object_id=username,
        object_repr=username,
        action=action,
        summary=summary or f"Administrator account {username} {action}.",
        before=before,
        after=after,
        secret_fields=SECRET_FIELDS,
        actor=actor,
        account=account,
        address=address,
    )


def admin_account_create(
    *, username: str, password: str, password_change_required: bool = True, actor: str = ""
) -> Any:
    """Create a superuser account (installation), replicated where the rule says; it must
    change its password at first login unless told otherwise. Raises Locked."""
    with transaction.atomic():
        user = get_user_model().objects.create_superuser(
            username=username, password=password, email=""
        )
        if password_change_required:
            PasswordChangeRequired.objects.create(user=user)
        admin_account_record(user)
        admin_account_audit(
            username=username,
            action="created",
            before=None,
            after=admin_account_data(user),
            actor=actor or username,
        )
    return user


def admin_account_delete_record(username: str) -> int:
    """Append the deletion of an admin account, in the caller's transaction."""
    return changelog_append(entity=ENTITY, op="delete", key=username, data={})


def admin_password_set(*, user: Any, password: str, actor: str) -> None:
    """Set an admin account's password and clear its first-login mark.

    Raises Locked where admin accounts cannot be changed, or when a joined
    backup cannot reach the master to forward the change (nothing changes
    then). The caller updates the session's auth hash."""
    route = write_check(Scope.ACCOUNT)
    before = admin_account_data(user)
    user.set_password(password)
    data = {**admin_account_data(user), "password_change_required": False}
    if route == Route.MASTER:
        # The master takes a password change of an existing account, and nothing else.
        _admin_forward({"username": data["username"], "password": data["password"]})
    with transaction.atomic():
        admin_account_upsert(data)
        if route == Route.HERE:
            changelog_append(entity=ENTITY, op="upsert", key=data["username"], data=data)
        elif route == Route.LOCAL:
            _local_change_noted(f"admin account {data['username']}")
        event_record(
            kind="admin_account",
            message=f"Password of admin account {data['username']} changed"
            + (" (through the master)" if route == Route.MASTER else "")
            + ".",
            actor=actor,
        )
        if route != Route.MASTER:  # forwarded: the master records it
            admin_account_audit(
                username=data["username"],
                action="password changed",
                before=before,
                after=data,
                actor=actor,
            )


def _admin_forward(data: dict[str, Any]) -> None:
    try:
        PeerClient.from_config(timeout=FORWARD_TIMEOUT).call(
            "POST", "/api/peer/admin_account", data
        )
    except PeerError as exc:
        raise Locked(f"this server is the backup and could not reach the master: {exc}") from None


def admin_password_accept(payload: Any) -> tuple[int, dict[str, Any]]:
    """Master side of a password change a joined backup forwards: ``{"username": ...,
    "password": <password hash>}`` of an existing, active account, and nothing else (no
    account is created, no flag changes); replicated like any account change."""
    if not isinstance(payload, dict) or set(payload) != {"username", "password"}:
        return 400, {"error": "only a password change is accepted: {username, password}"}
    username, password = payload["username"], payload["password"]
    if not isinstance(username, str) or not isinstance(password, str):
        return 400, {"error": "username and password must be strings"}
    try:
        identify_hasher(password)
    except ValueError:
        return 400, {"error": "password must be a password hash of this system"}
    try:
        with transaction.atomic():
            user = (
                get_user_model()
                .objects.select_for_update()
                .filter(username=username, is_active=True)
                .first()
            )
            if user is None:
                return 404, {"error": f"no active admin account {username[:150]!r} on the master"}
            before = admin_account_data(user)
            user.password = password
            user.save(update_fields=["password"])
            PasswordChangeRequired.objects.filter(user=user).delete()
            data = admin_account_data(user)
            seq = changelog_append(entity=ENTITY, op="upsert", key=username, data=data)
            event_record(
                kind="admin_account",
                message=f"Password of admin account {username} changed on the backup.",
                actor=username,
            )
            origin = audit_origin()[1]
            admin_account_audit(
                username=username,
                action="password changed",
                summary=f"Password of administrator account {username} changed on the backup.",
                before=before,
                after=data,
                actor=username,
                account=username,
                address=f"{origin} (the backup)" if origin else "the backup",
            )
    except Locked as exc:
        return 423, {"error": exc.reason}
    return 200, {"seq": seq}


# --- Administration > Administrators and ``manage.py kwsadmin`` ----------------------


def admin_accounts_route() -> Route:
    """Where an account write of the Administrators page goes here (HERE or LOCAL); raises
    Locked where accounts cannot be managed: during a failover on the backup and on a
    joined backup (which forwards only an administrator's own password change)."""
    route = write_check(Scope.ACCOUNT)
    if route == Route.MASTER:
        raise Locked(LOCK_ACCOUNTS_ON_MASTER)
    return route


def _administrators_lock() -> list[int]:
    """Lock the enabled administrators' rows (in one order, before any other account row,
    so that concurrent account writes wait for each other instead of deadlocking) until
    the caller's transaction ends: two writes cannot both remove one of the last two."""
    admins = get_user_model().objects.select_for_update().filter(is_active=True, is_superuser=True)
    return list(admins.order_by("pk").values_list("pk", flat=True))


def _administrators_others(user: Any) -> int:
    """How many enabled administrators there are besides ``user``."""
    return sum(1 for pk in _administrators_lock() if pk != user.pk)


def _last_administrator_check(user: Any, what: str) -> None:
    if user.is_active and user.is_superuser and _administrators_others(user) == 0:
        raise AccountError(
            f"{user.get_username()} is the last enabled administrator and cannot be {what}: "
            "make another account an administrator first"
        )


def _password_check(password: str, user: Any = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), "new_password") from None


def _role_check(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role[:40]!r}: administrator or operator", "role")


def _account_write(
    username: str,
    change: Callable[[Any], str],
    *,
    action: str,
    actor: str,
    delete: bool = False,
) -> None:
    """Change one account on the route the lock rule gives, with its change-log entry (or
    deletion), an event and its audit record (``action``), all in one transaction.
    ``change`` checks and changes the locked user (AccountError changes nothing) and
    returns the event's sentence."""
    route = admin_accounts_route()
    with transaction.atomic():
        _administrators_lock()
        user = get_user_model().objects.select_for_update().filter(username=username).first()
        if user is None:
            raise AccountError(f"there is no administrator account {username[:150]!r}")
        before = admin_account_data(user)
        message = change(user)
        if delete:
            user.delete()
        else:
            user.save()
        if route == Route.LOCAL:
            _local_change_noted(f"admin account {username}")
        elif delete:
            admin_account_delete_record(username)
        else:
            changelog_append(
                entity=ENTITY, op="upsert", key=username, data=admin_account_data(user)
            )
        event_record(kind="admin_account", message=message, actor=actor)
        admin_account_audit(
            username=username,
            action=action,
            before=before,
            after=None if delete else admin_account_data(user),
            actor=actor,
            summary=message,
        )


def admin_account_add(*, username: str, password: str, role: str, actor: str) -> Any:
    """Add an account with ``role`` whose password must be changed at its first login,
    replicated; AccountError for a bad name, role or password, Locked where accounts
    cannot be managed."""
    username = username.strip()
    User = get_user_model()
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), "username") from None
    if not username or len(username) > 150:
        raise AccountError("a user name has 1 to 150 characters", "username")
    _role_check(role)
    _password_check(password, User(username=username))
    route = admin_accounts_route()
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise AccountError(f"an account {username!r} exists already", "username")
        administrator = role == ADMINISTRATOR
        user = User.objects.create_user(
            username=username, password=password, is_superuser=administrator, is_staff=administrator
        )
        PasswordChangeRequired.objects.create(user=user)
        if route == Route.LOCAL:
            _local_change_noted(f"admin account {username}")
        else:
            changelog_append(
                entity=ENTITY, op="upsert", key=username, data=admin_account_data(user)
            )
        message = f"Account {username} added ({role})."
        event_record(kind="admin_account", message=message, actor=actor)
        admin_account_audit(
            username=username,
            action="created",
            before=None,
            after=admin_account_data(user),
            actor=actor,
            summary=message,
        )
    return user


def admin_account_active_set(*, username: str, active: bool, actor: str) -> None:
    """Enable or disable an account (a disabled one cannot log in anywhere, its sessions
    end); the last enabled administrator cannot be disabled."""

    def change(user: Any) -> str:
        if not active:
            _last_administrator_check(user, "disabled")
        user.is_active = active
        return f"Account {username} {'enabled' if active else 'disabled'}."

    _account_write(username, change, action="enabled" if active else "disabled", actor=actor)


def admin_account_delete(*, username: str, actor: str) -> None:
    """Delete an account; the last enabled administrator cannot be deleted."""

    def change(user: Any) -> str:
        _last_administrator_check(user, "deleted")
        return f"Account {username} deleted."

    _account_write(username, change, action="deleted", actor=actor, delete=True)


def admin_account_role_set(*, username: str, role: str, actor: str) -> None:
    """Give an account ``role``; the last enabled administrator cannot become an operator."""
    _role_check(role)

    def change(user: Any) -> str:
        if role != ADMINISTRATOR:
            _last_administrator_check(user, "made an operator")
        was = account_role(user)
        user.is_superuser = user.is_staff = role == ADMINISTRATOR
        return f"Account {username} is now {role} (was {was})."

    _account_write(username, change, action="role changed", actor=actor)


def admin_password_reset(*, username: str, password: str, actor: str) -> None:
    """Give an account a new password that it must change at its next login (its sessions
    end, the password itself is never recorded)."""

    def change(user: Any) -> str:
        _password_check(password, user)
        user.set_password(password)
        PasswordChangeRequired.objects.get_or_create(user=user)
        return f"Password of account {username} reset: it must be changed at the next login."

    _account_write(username, change, action="password reset", actor=actor)
