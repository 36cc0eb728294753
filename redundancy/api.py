"""Peer API endpoints of the redundancy engine (signed; no login, no CSRF).

``POST heartbeat`` on either server; on the master ``GET changes?after=N&limit=M``
(the entries after the backup's position) and ``GET snapshot`` (every replicated
row); on the backup ``POST nudge``, which pulls right away, in the request, and
answers the position reached, so the master knows the backup has a change; and
``POST switchover`` on the backup, the second half of the role swap; ``GET statistics`` on
either server, its samples of the last 24 hours for the peer's Statistics page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import path

from core.changelog import snapshot_build
from core.peer import peer_endpoint
from core.selectors import config_read
from redundancy.durability import changes_page
from redundancy.follower import BATCH_SIZE, replication_pull
from redundancy.heartbeat import heartbeat_answer, probe_answer
from redundancy.scenarios import switchover_accept
from redundancy.statistics import samples_answer

MAX_LIMIT = 1000


def _not_master() -> tuple[int, dict[str, str]] | None:
    if config_read()["redundancy.mode"] != "master":
        return 409, {"error": "this server is not the master"}
    return None


def _method(request: HttpRequest, expected: str) -> tuple[int, dict[str, str]] | None:
    if request.method != expected:
        return 405, {"error": f"use {expected}"}
    return None


@peer_endpoint
def heartbeat(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    return heartbeat_answer(payload)


@peer_endpoint
def probe(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    """A signed probe before an address is saved: answers who this server is."""
    return probe_answer()


@peer_endpoint
def switchover(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    return switchover_accept(payload)


@peer_endpoint
def changes(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "GET") or _not_master()
    if refused:
        return refused
    try:
        after = int(request.GET.get("after", "0"))
        limit = int(request.GET.get("limit", str(BATCH_SIZE)))
    except ValueError:
        return 400, {"error": "after and limit must be whole numbers"}
    if after < 0 or not 1 <= limit <= MAX_LIMIT:
        return 400, {"error": f"after must be >= 0 and limit from 1 to {MAX_LIMIT}"}
    return 200, changes_page(after=after, limit=limit)


@peer_endpoint
def snapshot(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "GET") or _not_master()
    if refused:
        return refused
    return 200, snapshot_build()


@peer_endpoint
def nudge(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "POST")
    if refused:
        return refused
    result = replication_pull(nudged=True)
    return 200, {"position": result.position, "outcome": result.outcome, "reason": result.reason}


@peer_endpoint
def statistics(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    """This server's samples of the last 24 hours, for the peer's Statistics page."""
    return _method(request, "GET") or samples_answer()


# Unnamed on purpose except the ones pages link to: these are not pages (the access
# test walks named URLs).
urlpatterns: list = [
    path("heartbeat", heartbeat, name="peer_heartbeat"),
    path("switchover", switchover, name="peer_switchover"),
    path("probe", probe, name="peer_probe"),
    path("changes", changes),
    path("snapshot", snapshot),
    path("nudge", nudge),
    path("statistics", statistics),
]
