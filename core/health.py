"""The node's own health: each long-running process stamps its liveness as it does its
work, and anyone (the engine, the heartbeat, the Status page) reads the stamps.

The Celery worker stamps when it runs a task, beat when it ticks, the SIP process at
every step; the engine's stamp is its last decision (``NodeState.last_tick``). The web
server's liveness is what the peer sees: whether it answers the peer's heartbeats. A
stamp is at most ``STAMP_EVERY`` seconds old while its process works. Stamping never
raises: a process that cannot reach its database goes on with its work and stamps
again once it can, and a stale stamp is exactly what the others then see.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from core.models import NodeState, ProcessBeat
from core.services import event_record

logger = logging.getLogger(__name__)

# The processes of a node that stamp, and the engine (which runs in the worker).
ROLES = ("worker", "beat", "sip")
PARTS = (*ROLES, "engine")
LABELS = {
    "worker": "Celery worker",
    "beat": "Celery beat",
    "sip": "SIP process",
    "engine": "redundancy engine",
}
# A process writes its stamp at most this often (seconds).
STAMP_EVERY = 1.0

_stamped: dict[str, float] = {}


def health_stamp(role: str, *, detail: str = "", force: bool = False) -> bool:
    """Record that ``role`` of this node is doing its work; False if the database could
    not be reached (the caller goes on: its stamp simply ages)."""
    now = time.monotonic()
    if not force and now - _stamped.get(role, -STAMP_EVERY) < STAMP_EVERY:
        return True
    try:
        ProcessBeat.objects.update_or_create(
            role=role,
            defaults={"pid": os.getpid(), "stamped_at": timezone.now(), "detail": detail[:200]},
        )
    except DatabaseError as exc:
        logger.debug("%s could not stamp its liveness: %s", role, exc)
        close_old_connections()
        return False
    _stamped[role] = now
    return True


def engine_fresh(state: NodeState, *, now: datetime | None = None) -> bool:
    """Whether this node's engine decided recently enough for its word on who owns which
    user to hold: within the detection window. A node whose engine stopped (a dead
    worker, a lost database or broker, a pause) cannot tell whether the peer took its
    users over meanwhile."""
    if state.last_tick is None:
        return False
    now = now or timezone.now()
    return (now - state.last_tick).total_seconds() <= settings.DETECTION_WINDOW


@dataclass(frozen=True)
class Part:
    """One part of a node as its stamp says: ``age`` seconds since it last did its work
    (None: it never did), and whether that is within ``window``."""

    role: str
    age: float | None
    detail: str
    alive: bool

    @property
    def label(self) -> str:
        return LABELS.get(self.role, self.role)


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def health_parts(*, window: float, now: datetime | None = None) -> list[Part]:
    """Every part of this node with the age of its stamp."""
    now = now or timezone.now()
    stamps = {b.role: b for b in ProcessBeat.objects.all()}
    parts = []
    for role in ROLES:
        beat = stamps.get(role)
        age = _age(beat.stamped_at, now) if beat else None
        parts.append(
            Part(role, age, beat.detail if beat else "", age is not None and age <= window)
        )
    age = _age(NodeState.load().last_tick, now)
    parts.append(Part("engine", age, "", age is not None and age <= window))
    return parts


def health_report(*, window: float, now: datetime | None = None) -> dict[str, Any]:
    """The node's health as the heartbeat carries it: ``{role: {"age": s, "detail": ...}}``
    (ages, not times, so the two servers' clocks need not agree)."""
    report: dict[str, Any] = {
        p.role: {"age": None if p.age is None else round(p.age, 2), "detail": p.detail}
        for p in health_parts(window=window, now=now)
    }
    started = (NodeState.load().engine.get("state") or {}).get("started_at")
    if isinstance(started, int | float):
        report["engine"]["uptime"] = round(max(0.0, time.time() - started), 2)
    return report


def health_report_parse(value: Any) -> dict[str, dict[str, Any]]:
    """A peer's health report, checked; ValueError names what is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("health must be an object")
    parsed: dict[str, dict[str, Any]] = {}
    for role, part in value.items():
        if role not in PARTS:
            continue  # a newer peer's part this version does not know
        if not isinstance(part, dict):
            raise ValueError(f"health.{role} must be an object")
        detail = part.get("detail", "")
        if not isinstance(detail, str):
            raise ValueError(f"health.{role}.detail must be a string")
        parsed[role] = {"detail": detail[:200]}
        for name in ("age", "uptime"):
            seconds = part.get(name)
            if seconds is not None and (
                not isinstance(seconds, int | float)
                or isinstance(seconds, bool)
                or not 0 <= seconds < 1e9  # also refuses nan and infinity
            ):
                raise ValueError(f"health.{role}.{name} must be a number of seconds or null")
            if name == "age" or seconds is not None:
                parsed[role][name] = seconds
    return parsed


def unserved_reason(report: dict[str, Any], *, window: float) -> str:
    """Why a node whose heartbeat said ``report`` cannot serve its users, or '' if it can:
    its SIP process had not done its work for longer than the detection window when it
    said so. (How long ago it said so is the heartbeat's business: a peer not heard
    within the window is lost anyway. A dead engine, web server or database shows as
    silence: the web server does not answer for an engine that stopped.) A node that
    has run for less than the window may not have stamped yet."""
    sip = report.get("sip")
    engine = report.get("engine") or {}
    if not sip:
        return ""
    age = sip.get("age")
    if age is None:
        uptime = engine.get("uptime")
        if uptime is None or uptime <= window:
            return ""
        return f"its SIP process has not run since its engine started {uptime:.0f} s ago"
    if age <= window:
        return ""
    return f"its SIP process has done no work for {age:.1f} s"


def health_watch(*, window: float, node: str, now: datetime | None = None) -> list[str]:
    """Write an event when one of this node's processes stops doing its work (its stamp
    older than ``window``) and when it works again; return the messages written. Called
    by the engine at every beat (a stopped engine shows as silence to the peer)."""
    now = now or timezone.now()
    messages = []
    for beat in ProcessBeat.objects.filter(role__in=ROLES):
        age = _age(beat.stamped_at, now) or 0.0
        stale = age > window
        if stale == beat.down:
            continue
        if not ProcessBeat.objects.filter(role=beat.role, down=beat.down).update(down=stale):
            continue  # another beat wrote it first
        label = LABELS.get(beat.role, beat.role)
        if stale:
            message = f"The {label} of {node} stopped: it has done no work for {age:.1f} s."
            event_record(kind="health", message=message, severity="warning")
        else:
            message = f"The {label} of {node} works again."
            event_record(kind="health", message=message)
        messages.append(message)
    return messages
