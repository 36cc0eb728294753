"""Celery entry points of replication."""
