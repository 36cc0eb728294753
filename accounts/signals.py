"""What the accounts app hears from elsewhere: a login locked out by django-axes."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core.services import refusal_record, refusals_forget


def lockout_recorded(sender: Any, request: Any = None, username: str = "", ip_address: str = "",
                     **_: Any) -> None:  # fmt: skip
    """An event when an account is locked out after repeated failed logins: once per
    account and address (django-axes says so at every refused attempt)."""
    name = str(username)[:150]
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    refusal_record(
        kind="login_lockout",
        key=f"lockout|{name}|{ip_address or '?'}",
        message=f"Account {name!r} locked out from {ip_address or '?'} for {minutes} minutes "
        f"after {settings.AXES_FAILURE_LIMIT} failed logins (manage.py axes_reset_username "
        "unlocks it at once).",
    )


def login_succeeded(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    """A lockout that returns after a good login is reported again."""
    if user is not None:
        refusals_forget(kind="login_lockout", who=user.get_username())
