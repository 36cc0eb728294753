"""Peer API endpoints of replication.

On the master: ``GET changes?after=N&limit=M`` (the entries after the backup's
position) and ``GET snapshot`` (every replicated row). On the backup:
``POST nudge``, which pulls right away, in the request, and answers the
position reached, so the master knows the backup has a change.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import path

from kws_admin.services import config_read
from redundancy import replication
from redundancy.peer import peer_endpoint

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
def changes(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "GET") or _not_master()
    if refused:
        return refused
    try:
        after = int(request.GET.get("after", "0"))
        limit = int(request.GET.get("limit", str(replication.BATCH_SIZE)))
    except ValueError:
        return 400, {"error": "after and limit must be whole numbers"}
    if after < 0 or not 1 <= limit <= MAX_LIMIT:
        return 400, {"error": f"after must be >= 0 and limit from 1 to {MAX_LIMIT}"}
    return 200, replication.changes_page(after=after, limit=limit)


@peer_endpoint
def snapshot(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "GET") or _not_master()
    if refused:
        return refused
    return 200, replication.snapshot_build()


@peer_endpoint
def nudge(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    refused = _method(request, "POST")
    if refused:
        return refused
    result = replication.replication_pull(nudged=True)
    return 200, {"position": result.position, "outcome": result.outcome, "reason": result.reason}


@peer_endpoint
def admin_account(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    """A joined backup forwards a change of an admin account (its password) to the master."""
    refused = _method(request, "POST") or _not_master()
    if refused:
        return refused
    return replication.admin_account_accept(payload)


# Unnamed on purpose: these are not pages (the access test walks named URLs).
urlpatterns: list = [
    path("changes", changes),
    path("snapshot", snapshot),
    path("nudge", nudge),
    path("admin_account", admin_account),
]
