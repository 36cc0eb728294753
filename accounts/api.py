"""Peer API endpoint of administrator accounts (on the master)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import path

from accounts.services import admin_password_accept
from core.peer import peer_endpoint
from core.selectors import config_read


@peer_endpoint
def admin_account(request: HttpRequest, payload: Any) -> tuple[int, Any]:
    """A joined backup forwards a password change of an existing account to the master."""
    if request.method != "POST":
        return 405, {"error": "use POST"}
    if config_read()["redundancy.mode"] != "master":
        return 409, {"error": "this server is not the master"}
    return admin_password_accept(payload)


# Unnamed on purpose: these are not pages (the access test walks named URLs).
urlpatterns: list = [path("admin_account", admin_account)]
