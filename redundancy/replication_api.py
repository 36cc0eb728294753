"""Peer API endpoints of replication."""

urlpatterns: list = []
