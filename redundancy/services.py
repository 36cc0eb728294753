"""Writes of the redundancy app: the event log and the node's runtime state."""

import logging

from redundancy.models import Event

logger = logging.getLogger(__name__)


def event_record(*, kind: str, message: str, severity: str = "info", actor: str = "") -> Event:
    """Write an event log entry (inside the caller's transaction) and log it."""
    logger.log(
        logging.WARNING if severity != "info" else logging.INFO, "event %s: %s", kind, message
    )
    return Event.objects.create(kind=kind, message=message, severity=severity, actor=actor)
