"""The users app's configuration keys: the PBX both servers register their users with.
Configured on the master and replicated; registered with core from ``UsersConfig.ready``."""

from __future__ import annotations

import re

from core.config import Key, check_host, int_between, optional, split_peer

SIP_PORT = 5060

# What a registration is bound to: a change of one of these makes both servers register
# every user again (users/registration.py ``PbxSettings.address``); a new rate or expiry
# applies to the registrations as they stand.
REREGISTER_KEYS = frozenset({"sip.registrar", "sip.transport", "sip.domain"})


def registrar_address(text: str) -> tuple[str, int]:
    """The (host, port) of ``sip.registrar``; the SIP port 5060 when none is given."""
    return split_peer(text, default_port=SIP_PORT)


RATE_MAX = 10000


def parse_rate(text: str) -> str | int:
    """``sip.rate``: ``auto`` (users/sip/pace.py) or a fixed number of registrations per
    second."""
    raw = text.strip().lower()
    if raw == "auto":
        return "auto"
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError(
            f"{text!r} is not a rate; use auto or 1 to {RATE_MAX} registrations per second"
        )
    return int_between(1, RATE_MAX, "registrations per second (or auto)")(raw)


def _parse_transport(text: str) -> str:
    value = text.strip().lower()
    if value not in ("udp", "tcp"):
        raise ValueError(f"{text!r} is not a SIP transport; use udp or tcp")
    return value


KEYS = (
    Key(
        "sip.registrar",
        "SIP registrar",
        "",
        optional(registrar_address),
        "Host or IP address of the PBX's registrar, with :port if not 5060; "
        "empty: users are not registered.",
    ),
    Key("sip.transport", "SIP transport", "udp", _parse_transport, "udp or tcp."),
    Key(
        "sip.domain",
        "SIP domain",
        "",
        optional(check_host),
        "Domain of the users' addresses (user@domain); empty: the registrar's host.",
    ),
    Key(
        "sip.rate",
        "Registration rate",
        "auto",
        parse_rate,
        "auto: as fast as the PBX takes them, raised while it answers promptly and cut "
        "when it answers 503, loses or does not answer REGISTERs, up to sip.rate_max; "
        "or a fixed number of registrations per second (the application note assumes 100).",
    ),
    Key(
        "sip.rate_max",
        "Registration rate ceiling",
        10000,
        int_between(10, 100000, "REGISTERs per second"),
        "With sip.rate auto: the most REGISTER requests per second it ever sends.",
    ),
    Key(
        "sip.expires",
        "Registration expiry",
        300,
        int_between(60, 86400, "seconds"),
        "Seconds a registration is requested for; it is refreshed before it expires.",
    ),
)
