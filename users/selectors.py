"""Reads of the users app."""

from __future__ import annotations

from django.db.models import QuerySet

from kws_admin.services import config_read
from redundancy.models import NodeState
from users.models import DectUser, SipRegistration

LETTER = {"master": "M", "slave": "S", "single": "M"}


def own_letter() -> str:
    return LETTER[config_read()["redundancy.mode"]]


def handled_users() -> QuerySet[DectUser]:
    """The users this server handles now: its NODE letter, none on an idle backup."""
    mode = config_read()["redundancy.mode"]
    if mode == "slave" and not NodeState.load().engine.get("handles_users", False):
        return DectUser.objects.none()
    return DectUser.objects.filter(node=LETTER[mode])


def registration_progress() -> tuple[int, int]:
    """(registered, handled): how many of the users this server handles are registered."""
    users = handled_users()
    handled = users.count()
    registered = SipRegistration.objects.filter(
        user__in=users, state=SipRegistration.State.REGISTERED
    ).count()
    return registered, handled
