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
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.db import transaction

from accounts.models import PasswordChangeRequired
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
