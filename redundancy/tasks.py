"""Celery entry points of the redundancy engine; thin shells around its services."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from basestations.services import devices_takeover_report
from core.changelog import changelog_trim
from core.peer import nonce_purge
from redundancy import runner
from redundancy.durability import replication_nudge
from redundancy.follower import replication_pull
from users.services import users_rebalance, users_take_over

logger = logging.getLogger(__name__)


@shared_task(name="redundancy.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat's periodic tick: exchange heartbeats with the peer and decide."""
    runner.engine_tick()


@shared_task(name="redundancy.housekeeping", ignore_result=True)
def housekeeping() -> None:
    nonce_purge()


@shared_task(name=runner.TAKE_OVER_TASK, ignore_result=True)
def users_take_over_task(*, started_at: float) -> None:
    """Take over every user of the lost peer, then wait for its devices to come here."""
    users_take_over(started_at=started_at)
    devices_takeover_report(started_at=started_at)


@shared_task(name=runner.REBALANCE_TASK, ignore_result=True)
def users_rebalance_task() -> None:
    users_rebalance()


@shared_task(name="redundancy.replication_pull", ignore_result=True)
def replication_pull_task() -> None:
    """Beat's pull on the backup (a no-op elsewhere)."""
    result = replication_pull()
    if result.applied or result.snapshots:
        logger.info("replication pull: %s", result.reason)


@shared_task(name="redundancy.replication_nudge", ignore_result=True)
def replication_nudge_task() -> None:
    """Ask the backup to pull now (master side), e.g. right after it joined."""
    replication_nudge()


@shared_task(name="redundancy.replication_trim", ignore_result=True)
def replication_trim_task() -> None:
    """Drop change-log entries older than the newest TRIM_KEEP (master side)."""
    deleted = changelog_trim()
    if deleted:
        logger.info("change log trimmed: %s entries", deleted)


@worker_ready.connect
def _reset_engine_on_start(**_) -> None:
    runner.engine_reset_on_start()
