"""Reads of the licensing app."""

from typing import Any


def licensed_features() -> dict[str, Any]:
    """The licensed features of this server, as compared at join (none installed yet)."""
    return {}
