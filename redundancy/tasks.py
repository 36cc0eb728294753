"""Celery entry points of the redundancy engine; thin shells around services."""

from celery import shared_task
from django.utils import timezone

from redundancy.models import NodeState


@shared_task(name="redundancy.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat's periodic tick: proves the worker and beat are alive."""
    NodeState.objects.update_or_create(pk=1, defaults={"last_tick": timezone.now()})

# Replication's tasks live beside its services; importing them registers them.
from redundancy.replication_tasks import *  # noqa: E402, F401, F403
