"""The node's statistics counters: counted in memory, written in batches.

Counting sits on hot paths (the SIP process registers thousands of users a second during
a failover; every device keep-alive of a refused device is one event), so ``count`` only
adds to a per-process tally under a lock, and ``counters_flush`` (called by the process's
own periodic loop: the SIP runner's flush, the web server's watcher, the worker's sample
task) writes each tally with one ``UPDATE ... SET value = value + n``. A tally that cannot
be written (a lost database) waits for the next flush. What a process counted after its
last flush is lost if it is killed; everything flushed survives restarts (``Counter``).

Each server counts its own events; the peer's counters come in its heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F

from core.models import Counter

logger = logging.getLogger(__name__)

# The counters a node keeps, in the order the Statistics page lists them.
NAMES = (
    "sip.registrations",
    "sip.registration_failures",
    "devices.refused.firmware",
    "devices.refused.authentication",
    "devices.refused.unknown",
    "messages.delivered",
    "failovers",
)
# A process writes its tallies at most this often (seconds) unless asked to now.
FLUSH_EVERY = 2.0

_lock = threading.Lock()
_pending: dict[str, int] = defaultdict(int)
_flushed_at = 0.0


def count(name: str, n: int = 1) -> None:
    """Count ``n`` events of ``name`` (one of ``NAMES``) in this process; no I/O."""
    with _lock:
        _pending[name] += n


def pending() -> dict[str, int]:
    """What this process counted and has not written yet."""
    with _lock:
        return dict(_pending)


def flush_due() -> bool:
    """Whether this process's tallies are due to be written (``counters_flush``)."""
    return bool(_pending) and time.monotonic() - _flushed_at >= FLUSH_EVERY


def counters_flush(*, force: bool = False) -> int:
    """Write this process's tallies (one UPDATE per counter that moved), at most every
    ``FLUSH_EVERY`` seconds unless ``force``; return how many counters were written.
    Never raises: a tally that could not be written is kept for the next flush."""
    global _flushed_at
    now = time.monotonic()
    if not force and now - _flushed_at < FLUSH_EVERY:
        return 0
    with _lock:
        if not _pending:
            _flushed_at = now
            return 0
        tallies = dict(_pending)
        _pending.clear()
    written = 0
    try:
        for name, n in tallies.items():
            _add(name, n)
            written += 1
            tallies[name] = 0
    except DatabaseError as exc:
        logger.debug("counters not written yet: %s", exc)
        with _lock:
            for name, n in tallies.items():
                if n:
                    _pending[name] += n
        return written
    _flushed_at = now
    return written


def _add(name: str, n: int) -> None:
    if Counter.objects.filter(name=name).update(value=F("value") + n):
        return
    try:
        with transaction.atomic():
            Counter.objects.create(name=name, value=n)
    except IntegrityError:  # another process created it meanwhile
        Counter.objects.filter(name=name).update(value=F("value") + n)


def counters_read() -> dict[str, int]:
    """This node's counters as written (every name of ``NAMES``, 0 if it never moved)."""
    values = dict.fromkeys(NAMES, 0)
    values.update(Counter.objects.values_list("name", "value"))
    return values


def counters_reset() -> None:
    """Start every counter of this node from 0 again (this process's tally too)."""
    with _lock:
        _pending.clear()
    Counter.objects.all().delete()
