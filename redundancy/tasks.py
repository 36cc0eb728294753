"""Celery entry points of the redundancy engine; thin shells around its services."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import task_prerun, worker_ready

from basestations.services import devices_takeover_report
from core.changelog import changelog_trim
from core.health import health_stamp
from core.peer import nonce_purge
from redundancy import runner
from redundancy.durability import replication_nudge
from redundancy.follower import replication_pull
from redundancy.statistics import (
    failover_begin,
    failover_devices_done,
    failovers_registered_check,
    statistics_sample,
)
from users.services import users_takeover_report

logger = logging.getLogger(__name__)


@shared_task(name="redundancy.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat's periodic tick: exchange heartbeats with the peer and decide; then time a
    recent failover's registrations (statistics) if one waits."""
    runner.engine_tick()
    failovers_registered_check()


@shared_task(name=runner.RECHECK_TASK, ignore_result=True)
def engine_recheck() -> None:
    """A one-off tick when a decision runs out before the next beat: the detection
    deadline of a silent peer, the end of the failover time, the base stations' witness
    awaited (``statemachine.Decision.recheck_at``)."""
    runner.engine_tick(recheck=True)


@shared_task(name="redundancy.housekeeping", ignore_result=True)
def housekeeping() -> None:
    nonce_purge()


@shared_task(name=runner.TAKE_OVER_TASK, ignore_result=True)
def users_take_over_task(*, started_at: float, lost_at: float | None = None) -> None:
    """After the takeover of every user of the lost peer (the engine's new assignment):
    record it, then wait for the peer's devices to come here, for the statistics too
    (``lost_at``: when the peer was found lost; absent in a task queued by an older node).
    The heartbeat task times the users' registrations."""
    moved = users_takeover_report(started_at=started_at)
    record = failover_begin(lost_at=lost_at, started_at=started_at, users_moved=moved)
    devices = devices_takeover_report(started_at=started_at)
    failover_devices_done(record, moved=devices["rfp"] + devices["media"])
    failovers_registered_check()


@shared_task(name="redundancy.statistics_sample", ignore_result=True)
def statistics_sample_task() -> None:
    """Beat's sample for the Statistics chart (and the trim of old samples)."""
    statistics_sample()


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
    health_stamp("worker", detail="started", force=True)


@task_prerun.connect
def _stamp_worker(**_) -> None:
    # The worker's liveness is that it runs tasks (at most one write a second).
    health_stamp("worker")
