"""The licensing app's configuration key, registered with core from ``LicensingConfig.ready``."""

from __future__ import annotations

from core.config import Key
from licensing.ari import ari_setting_parse

KEYS = (
    Key(
        "system.ari",
        "ARI code",
        "",
        ari_setting_parse,
        "This server's DECT ARI (class B, 8 hexadecimal digits like 10A3F2C5); generated "
        "at installation, bound to the license codes once one is installed.",
        local=True,
    ),
)
