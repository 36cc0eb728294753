"""Reads of the users app."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from core.models import NodeState
from core.selectors import config_read
from users.models import DectUser, PeerRegistration, SipRegistration

LETTER = {"master": "M", "slave": "S", "single": "M"}
# Registration states a heartbeat carries at most: 10,000 users reach the peer in 5 beats.
REGISTRATIONS_PER_HEARTBEAT = 2000


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


def registrations_changed_since(
    cursor: list[Any] | None, *, limit: int = REGISTRATIONS_PER_HEARTBEAT
) -> list[list[Any]]:
    """This server's registration states changed after ``cursor`` (``[changed_at ISO,
    user id]``, the last one the peer said it has), oldest first, at most ``limit``:
    rows ``[user id, state, reason, changed_at ISO]`` for the heartbeat."""
    rows = SipRegistration.objects.order_by("changed_at", "user_id")
    if cursor:
        at, user_id = datetime.fromisoformat(cursor[0]), cursor[1]
        rows = rows.filter(Q(changed_at__gt=at) | Q(changed_at=at, user_id__gt=user_id))
    return [
        [user_id, state, reason, changed_at.isoformat()]
        for user_id, state, reason, changed_at in rows.values_list(
            "user_id", "state", "reason", "changed_at"
        )[:limit]
    ]


def peer_registrations_cursor() -> list[Any] | None:
    """The last of the peer's registration states that arrived here, as the peer's
    heartbeat sends them after it: ``[changed_at ISO, user id]``, None before the first."""
    last = (
        PeerRegistration.objects.order_by("-changed_at", "-user_id")
        .values_list("changed_at", "user_id")
        .first()
    )
    return [last[0].isoformat(), last[1]] if last else None
