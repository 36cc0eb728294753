"""The new master of a switchover and the old master's late messages: a heartbeat the old
master composed before it marked the handover, arriving after this server became master,
still counts as handing over (for a few heartbeats), so this server does not step down."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings

from core.models import NodeState
from core.selectors import config_read
from redundancy.heartbeat import (
    HANDOVER_GRACE_BEATS,
    parse_status,
    peer_status_record,
    status_payload,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def old_master_status(mode: str = "master") -> dict:
    """A status of the old master as it sent it before it marked the handover (a copy of
    this node's own, renamed: a real payload, not a hand-made shape)."""
    payload = json.loads(json.dumps(status_payload(values=config_read(), peer_claims=None)))
    payload["claims"].update(node="old-master", mode=mode, handing_over=False)
    return payload


def accepted(seconds_ago: float) -> None:
    """What switchover_accept leaves: the old master's claims marked as handing over."""
    status = old_master_status()
    status["claims"]["handing_over"] = True
    status["handover_at"] = time.time() - seconds_ago
    NodeState.objects.get_or_create(pk=1)
    NodeState.objects.filter(pk=1).update(peer_status=status)


def record(payload: dict) -> dict:
    peer_status_record(payload, parse_status(payload), answered=True)
    return NodeState.load().peer_status


def test_a_late_master_heartbeat_of_the_old_master_still_counts_as_handing_over():
    accepted(seconds_ago=0.1)
    status = record(old_master_status())
    assert status["claims"]["handing_over"] is True
    assert parse_status(status).claims.handing_over
    assert record(old_master_status())["claims"]["handing_over"] is True  # kept while due


def test_past_the_grace_a_master_that_stays_master_is_two_masters_again():
    accepted(seconds_ago=HANDOVER_GRACE_BEATS * settings.HEARTBEAT_INTERVAL + 1)
    status = record(old_master_status())
    assert status["claims"]["handing_over"] is False and "handover_at" not in status


def test_the_mark_ends_when_the_old_master_says_backup():
    accepted(seconds_ago=0.1)
    status = record(old_master_status(mode="slave"))
    assert status["claims"]["handing_over"] is False and "handover_at" not in status
    # A later status saying master again is not covered by the ended handover.
    assert record(old_master_status())["claims"]["handing_over"] is False
