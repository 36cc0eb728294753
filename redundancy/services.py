"""Writes of the redundancy app: the event log and the node's runtime state."""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from redundancy.models import Event, Refusal

logger = logging.getLogger(__name__)

# Refusals not repeated for this long are forgotten (and logged again if they return).
REFUSAL_FORGET = timedelta(days=1)


def event_record(*, kind: str, message: str, severity: str = "info", actor: str = "") -> Event:
    """Write an event log entry (inside the caller's transaction) and log it."""
    logger.log(
        logging.WARNING if severity != "info" else logging.INFO, "event %s: %s", kind, message
    )
    return Event.objects.create(kind=kind, message=message, severity=severity, actor=actor)


def refusal_record(*, kind: str, key: str, message: str, now: datetime | None = None) -> bool:
    """Remember a refused contact; the first time per ``key`` also write a warning event
    of ``kind`` with ``message``. Return whether it was new. Safe across processes: the
    primary key decides who logs."""
    now = now or timezone.now()
    key = key[:200]
    if Refusal.objects.filter(key=key).update(last_at=now, count=F("count") + 1, message=message):
        return False
    try:
        with transaction.atomic():
            Refusal.objects.create(key=key, kind=kind, message=message, first_at=now, last_at=now)
    except IntegrityError:
        return False
    Refusal.objects.filter(last_at__lt=now - REFUSAL_FORGET).delete()
    event_record(kind=kind, message=message, severity="warning")
    return True


def refusals_forget(*, kind: str, who: str) -> int:
    """Forget the refusals of ``who`` (a part of their keys after the cause) once it is
    accepted, so a refusal that returns later is logged again. Return how many."""
    named = Refusal.objects.filter(
        Q(key__endswith=f"|{who}") | Q(key__contains=f"|{who}|"), kind=kind
    )
    # Called for every valid peer message: a read, and a write only when there is one.
    if not named.exists():
        return 0
    deleted, _ = named.delete()
    return deleted
