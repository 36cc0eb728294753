"""What an operator may do: read every page, and of the writes only these few.

The one rule every write of the GUI passes (``accounts.middleware.OperatorMiddleware``):
an administrator may make any write, an operator only the writes named here, so a new
page is closed to operators until it is added to this list on purpose.
"""

from __future__ import annotations

from typing import Any

from accounts.models import ADMINISTRATOR, account_role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# URL names of the writes an operator may make.
OPERATOR_WRITES = frozenset(
    {
        "login",
        "logout",
        # His own password, wherever he logs in.
        "password_change",
        # A test message to a user's handset.
        "messaging_user_test",
    }
)

OPERATOR_REFUSAL = (
    "your account is an operator: it reads every page, sends test messages to handsets "
    "and changes its own password, but changes nothing else; ask an administrator"
)


def write_allowed(user: Any, method: str, url_name: str | None) -> bool:
    """Whether ``user`` (signed in) may make a request with ``method`` to ``url_name``."""
    if method.upper() in SAFE_METHODS or account_role(user) == ADMINISTRATOR:
        return True
    return url_name in OPERATOR_WRITES
