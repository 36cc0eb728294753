"""The device protocol's pure rules: firmware order, MAC addresses, payloads, timings.

No Django and no I/O here: the server (``basestations.api``/``services``) and
the simulators (``basestations.sim``) share these definitions, and every rule
is a plain unit test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict

# --- Paths of the device API on a node's web port ----------------------------

# Served by basestations/api_urls.py, included under basestations/ (kws_admin/urls.py
# may also include it at /api/device/; then point this at that).
API_PREFIX = "/basestations/api"
KEEPALIVE_PATH = f"{API_PREFIX}/keepalive"
PROBE_PATH = f"{API_PREFIX}/probe"

# --- Timings -----------------------------------------------------------------

# A device keeps alive at this interval (seconds) unless the server says otherwise.
KEEPALIVE_INTERVAL = 1.0
# A device that misses this many keep-alives in a row looks for the other server
# (a refused connection counts as all of them at once).
MISSED_KEEPALIVES = 2


def fresh_window(interval: float, missed: int = MISSED_KEEPALIVES) -> float:
    """Seconds after its last keep-alive that a device still counts as attached (or heard):
    the device itself gives up after ``missed`` intervals, plus one interval of slack."""
    return interval * (missed + 1)


# --- Kinds of device ---------------------------------------------------------

Kind = Literal["rfp", "media"]
KINDS: tuple[Kind, ...] = ("rfp", "media")
KIND_LABELS = {"rfp": "base station", "media": "media resource"}

# --- Firmware ----------------------------------------------------------------

# The seed: "KIRK IP Base Stations or KIRK Media Resources with a firmware version
# older than PCS06A will not be able to connect to a KIRK Wireless Server running
# firmware PCS06A or newer."
MIN_FIRMWARE = "PCS06A"

_FIRMWARE = re.compile(r"^PCS(\d{2})([A-Z]{1,2})(?:[_.-]?(\d{1,6}))?$")


@dataclass(frozen=True, order=True)
class Firmware:
    """A firmware version like ``PCS06A`` (optionally with a build: ``PCS06A_0312``).

    Ordered by release number, then letter (A < B < ... < Z < AA), then build:
    PCS05A < PCS05B < PCS06A < PCS06A_2 < PCS06B < PCS07A.
    """

    release: int
    letters: tuple[int, str]  # (length, letters): Z sorts before AA
    build: int
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text


def firmware_parse(text: str) -> Firmware:
    """Parse a firmware version; ValueError naming the expected form otherwise."""
    raw = str(text).strip().upper()
    match = _FIRMWARE.match(raw)
    if not match:
        raise ValueError(f"{str(text)[:40]!r} is not a firmware version like PCS06A")
    release, letters, build = match.groups()
    return Firmware(int(release), (len(letters), letters), int(build or 0), raw)


def firmware_refusal(text: str, minimum: str = MIN_FIRMWARE) -> str:
    """Why a device with this firmware may not connect, or '' if it may."""
    try:
        version = firmware_parse(text)
    except ValueError as exc:
        return f"unknown firmware version: {exc}"
    if version < firmware_parse(minimum):
        return f"firmware {version} is older than {minimum}"
    return ""


# --- MAC addresses -----------------------------------------------------------

_HEX12 = re.compile(r"^[0-9A-F]{12}$")


def mac_normalize(text: str) -> str:
    """``00:13:d1:0a:0b:0c``, ``00-13-D1-0A-0B-0C`` or ``0013d10a0b0c`` -> ``00:13:D1:0A:0B:0C``."""
    raw = re.sub(r"[\s:.-]", "", str(text)).upper()
    if not _HEX12.match(raw):
        raise ValueError(f"{str(text)[:40]!r} is not a MAC address like 00:13:D1:0A:0B:0C")
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def sim_mac(kind: Kind, index: int) -> str:
    """The MAC of simulated device ``index`` (1-based): locally administered addresses
    (02:...), so they never collide with a real KIRK device."""
    if not 1 <= index <= 0xFFFF:
        raise ValueError("a simulated device index is 1 to 65535")
    family = 0x01 if kind == "rfp" else 0x02
    return f"02:4B:57:{family:02X}:{index >> 8:02X}:{index & 0xFF:02X}"


def sim_name(kind: Kind, index: int) -> str:
    return f"RFP {index:03d}" if kind == "rfp" else f"Media {index:02d}"


# --- Payloads ----------------------------------------------------------------


class KeepAlive(TypedDict):
    """``POST /api/device/keepalive`` body."""

    mac: str
    kind: Kind
    firmware: str
    state: str
    # Whether the device reaches the other server (the one this request is not sent
    # to); None if it knows of none. The split-brain witness counts these.
    peer_reachable: bool | None
    ip: NotRequired[str]
    handsets: NotRequired[list[str]]  # extensions of the handsets seen on a base station
    servers: NotRequired[list[str]]  # the server addresses the device knows (host:port)
    channels_in_use: NotRequired[int]  # media resources


class Accepted(TypedDict):
    """200: the device is attached to this server."""

    server: str  # this server's node name
    peer: str  # the other server as host:port ('' on a single server)
    interval: float
    missed: int


class Redirect(TypedDict):
    """409: this server does not serve devices now; ``server`` (host:port) does."""

    error: str
    server: str


class Refusal(TypedDict):
    """400, 401 or 403."""

    error: str


# Base station states a device may report (anything else is shown as reported).
RFP_STATES = ("synced", "searching", "free_running", "radio_off")
MEDIA_STATES = ("ok", "overload", "error")
MAX_HANDSETS = 2000  # per keep-alive; a base station serves far fewer
MAX_SERVERS = 8  # server addresses a device reports knowing


# --- The split-brain witness ------------------------------------------------

# "A majority of the peer's base stations": 60 % + 1, as in the field (e.g. Gigaset).
WITNESS_SHARE = 0.6


def witness_needed(known: int) -> int:
    """How many base stations must confirm that the peer is lost: 60 % of them + 1
    (never more than all of them; none known: nothing can be confirmed)."""
    if known <= 0:
        return 1
    return min(known, int(known * WITNESS_SHARE) + 1)


def keepalive_parse(payload: object, signer: str) -> KeepAlive:
    """Check a keep-alive body signed by ``signer`` (the MAC in the signature header) and
    return it normalized; ValueError naming the first problem otherwise."""
    if not isinstance(payload, dict):
        raise ValueError("a keep-alive is a JSON object")
    mac = mac_normalize(str(payload.get("mac", "")))
    try:
        signed_by = mac_normalize(signer)
    except ValueError:
        raise ValueError(f"signed by {signer[:40]!r}, which is not a MAC address") from None
    if signed_by != mac:
        raise ValueError(f"signed by {signed_by} but the keep-alive is for {mac}")
    kind = payload.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be rfp or media, not {str(kind)[:20]!r}")
    report: KeepAlive = {
        "mac": mac,
        "kind": kind,
        "firmware": _text(payload, "firmware", required=True),
        "state": _text(payload, "state"),
        "peer_reachable": _optional_bool(payload.get("peer_reachable")),
    }
    if payload.get("ip"):
        report["ip"] = _text(payload, "ip")
    servers = payload.get("servers")
    if servers is not None:
        if not isinstance(servers, list) or len(servers) > MAX_SERVERS:
            raise ValueError(f"servers must be a list of at most {MAX_SERVERS} addresses")
        if not all(isinstance(s, str) and 0 < len(s) <= 261 for s in servers):
            raise ValueError("servers must be host:port strings")
        report["servers"] = [s.strip() for s in servers]
    handsets = payload.get("handsets")
    if handsets is not None:
        if not isinstance(handsets, list) or len(handsets) > MAX_HANDSETS:
            raise ValueError(f"handsets must be a list of at most {MAX_HANDSETS} extensions")
        report["handsets"] = [str(h)[:32] for h in handsets if isinstance(h, str | int)]
    channels = payload.get("channels_in_use")
    if channels is not None:
        if type(channels) is not int or not 0 <= channels <= 10_000:
            raise ValueError("channels_in_use must be a whole number")
        report["channels_in_use"] = channels
    return report


def _text(payload: dict, name: str, *, required: bool = False) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be {'a non-empty' if required else 'a'} string")
    return value.strip()[:40]


def _optional_bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError("peer_reachable must be true, false or null")
