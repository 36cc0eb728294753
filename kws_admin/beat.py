"""Celery beat's scheduler for a node: the default one, stamping beat's liveness."""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler

from core.health import health_stamp


class Scheduler(PersistentScheduler):
    """Stamps ``beat`` at every tick (at most once a second, never raising), so the node
    sees that beat is sending its tasks, not only that the process runs."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        health_stamp("beat")
        return interval
