"""Celery entry points of the redundancy engine; thin shells around the engine."""

from celery import shared_task
from celery.signals import worker_ready

from redundancy import engine


@shared_task(name="redundancy.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat's periodic tick: exchange heartbeats with the peer and decide."""
    engine.engine_tick()


@shared_task(name="redundancy.housekeeping", ignore_result=True)
def housekeeping() -> None:
    engine.housekeeping()


@shared_task(name="redundancy.users_take_over", ignore_result=True)
def users_take_over_task(*, started_at: float) -> None:
    engine.users_take_over(started_at=started_at)


@shared_task(name="redundancy.users_rebalance", ignore_result=True)
def users_rebalance_task() -> None:
    engine.users_rebalance()


@worker_ready.connect
def _reset_engine_on_start(**_) -> None:
    engine.engine_reset_on_start()


# Replication's tasks live beside its services; importing them registers them.
from redundancy.replication_tasks import *  # noqa: E402, F401, F403
