"""The licensing app's configuration keys, registered with core from ``LicensingConfig.ready``."""

from __future__ import annotations

from core.config import Key
from licensing.ari import ari_setting_parse

SYSTEM_ARI_KEY = "system.subscription_ari"

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
    Key(
        SYSTEM_ARI_KEY,
        "System ARI",
        "",
        ari_setting_parse,
        "The ARI every handset is subscribed to: the first master's ARI, kept for the life "
        "of the system through promotion, role swaps and the replacement of a server. "
        "Changed only by 'Change the system ARI' on the Licenses page: every handset must "
        "then be re-subscribed.",
    ),
)
