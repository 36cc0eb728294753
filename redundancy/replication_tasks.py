"""Celery entry points of replication; thin shells around redundancy.replication."""

from __future__ import annotations

import logging

from celery import shared_task

from redundancy import replication

__all__ = ["replication_nudge_task", "replication_pull_task", "replication_trim_task"]

logger = logging.getLogger(__name__)


@shared_task(name="redundancy.replication_pull", ignore_result=True)
def replication_pull_task() -> None:
    """Beat's pull on the backup (a no-op elsewhere)."""
    result = replication.replication_pull()
    if result.applied or result.snapshots:
        logger.info("replication pull: %s", result.reason)


@shared_task(name="redundancy.replication_nudge", ignore_result=True)
def replication_nudge_task() -> None:
    """Ask the backup to pull now (master side), e.g. right after it joined."""
    replication.replication_nudge()


@shared_task(name="redundancy.replication_trim", ignore_result=True)
def replication_trim_task() -> None:
    """Drop change-log entries older than the newest TRIM_KEEP (master side)."""
    deleted = replication.changelog_trim()
    if deleted:
        logger.info("change log trimmed: %s entries", deleted)
