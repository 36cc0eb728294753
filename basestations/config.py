"""The base stations app's configuration key, registered with core from its ``ready``."""

from __future__ import annotations

from core.config import SECRET_MIN_LENGTH, Key, parse_secret

KEYS = (
    # Base stations and media resources sign their keep-alives with it: one per system,
    # replicated, so the backup accepts the same devices when it takes them over.
    Key(
        "system.device_secret",
        "Device secret",
        "",
        parse_secret,
        f"Shared secret of the base stations and media resources, which sign their "
        f"keep-alives with it (at least {SECRET_MIN_LENGTH} characters); empty: every "
        "device is refused.",
        secret=True,
    ),
)
