"""The device protocol's pure rules: firmware order, MAC addresses, payloads, timings.

No Django and no I/O here: the server (``basestations.api``/``services``) and
the simulators (``basestations.sim``) share these definitions, and every rule
is a plain unit test.
"""

from __future__ import annotations

import functools
import ipaddress
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
    return _mac_normalize(str(text))


@functools.lru_cache(maxsize=16384)
def _mac_normalize(text: str) -> str:  # every keep-alive names its MAC three times
    raw = re.sub(r"[\s:.-]", "", text).upper()
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
    udp: NotRequired[bool]  # the server answers keep-alive datagrams (basestations.udp)


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


def reported_ip(report: KeepAlive, remote: str) -> str:
    """The device's address: the one it reports, else the one its request came from."""
    for candidate in (report.get("ip") or "", remote):
        if address := _ip_text(candidate):
            return address
    return ""


@functools.lru_cache(maxsize=16384)
def _ip_text(candidate: str) -> str:
    """``candidate`` as an IP address's normal text; "" when it is none."""
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return ""


def _text(payload: dict, name: str, *, required: bool = False) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be {'a non-empty' if required else 'a'} string")
    return value.strip()[:40]


def _optional_bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError("peer_reachable must be true, false or null")


# --- The handset channel: messages to handsets, their answers and their own events ------
#
# A base station with handsets keeps one downlink open to the server it is attached to:
# ``POST DOWNLINK_PATH`` (signed like a keep-alive, with the device's own key) with
# ``{"mac": MAC, "handsets": ["2001", ...], "wait": seconds}``. The server answers as soon
# as it has messages for those handsets, or after ``wait`` seconds with none:
# ``200 {"messages": [Downlink, ...]}`` (signed), ``409 {"server": "host:port"}`` where it
# does not serve devices now. What the handsets say goes up with ``POST UPLINK_PATH``,
# ``{"mac": MAC, "events": [Uplink, ...]}``, answered ``200 {"accepted": n}``.

DOWNLINK_PATH = f"{API_PREFIX}/downlink"
UPLINK_PATH = f"{API_PREFIX}/uplink"
DOWNLINK_WAIT_MAX = 30.0
MAX_UPLINK_EVENTS = 100
MAX_DISPLAY = 72  # characters of a handset's display text (the SDK's limit)

# What a downlink message asks a handset to do (the XML-RPC call it comes from).
DownlinkKind = Literal[
    "sms", "sms_advanced", "broadcast", "base_stations", "status", "hardware",
    "call_setup", "call_display", "call_menu", "call_prompt", "call_release",
    "lookup_result",
]  # fmt: skip
DOWNLINK_KINDS: tuple[str, ...] = DownlinkKind.__args__  # type: ignore[attr-defined]


class Downlink(TypedDict, total=False):
    id: int  # the server's message id: answers name it
    to: str  # the handset's extension
    kind: DownlinkKind
    display: str
    callback: str
    action: int  # sms_advanced: 0x01 message, 0x02/0x03 alarm, 0x10 status, 0x12 delete...
    response: int  # sms_advanced: the bit mask of answers the handset may give
    status: int  # status: the status asked for
    call: int  # the text call's id (call_*)
    items: list[str]  # call_menu: the items, numbered from 1
    mode: str  # call_prompt: "alphanumeric" or "numeric"
    min: int
    max: int
    reason: int  # call_release
    hardware: int  # hardware: the element and what to do with it
    data: str  # hardware: base64
    # lookup_result: the answer to a handset's phonebook lookup (its ref and text), the
    # entries found ({"name", "number"}, at most LOOKUP_ENTRIES) or why none could be.
    ref: int
    text: str
    entries: list[dict[str, str]]
    error: str


# "not_here" is the base station's: the handset left it before the message arrived (the
# server pages it again). What a handset says: "delivered" (a message reached its
# display), "answer" (to an
# sms_advanced: action 0x81 accepted, 0x83 rejected, 0x84-0x86 task progress, 0x88 deleted),
# "release" (it could not take it: reason as endpoint_release's), "sms" (a message it
# sends to a number), "status" (11 charger, 12 alarm button; ``data`` base64),
# "base_stations" (the base stations it hears, the current one first).
# Text calls: "call_setup" (the handset calls a number: ``to``), "call_accept", "call_key"
# (``key``), "call_menu" (``item``, ``errorcode``), "call_prompt" (``text``, ``errorcode``),
# "call_release" (``reason``), each naming its ``call``; "hardware" answers or reports a
# hardware element (``hardware``, ``reason``, ``data`` base64; ``id`` when it answers).
# "lookup": the handset looks a name or number up in the corporate phonebook (``text``,
# and its own ``ref``, which the lookup_result downlink carries back).
UPLINK_KINDS = (
    "delivered", "not_here", "answer", "release", "sms", "status", "base_stations", "hardware",
    "call_setup", "call_accept", "call_key", "call_menu", "call_prompt", "call_release",
    "lookup",
)  # fmt: skip
LOOKUP_TEXT_MAX = 32  # characters a handset types to look up
LOOKUP_ENTRIES = 10  # entries a lookup_result carries (a handset's list)


class Uplink(TypedDict, total=False):
    kind: str
    id: int
    from_: str  # sent as "from"
    to: str
    display: str
    action: int
    status: list[int] | int
    reason: int
    data: str
    rfp_map: list[dict[str, int]]


def _int_in(value: object, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return value


def extension_text(value: object, name: str = "to") -> str:
    """An extension as a string: the SDK's applications may send it as an integer."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an extension (digits), not a boolean")
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text or len(text) > 32 or not all(c.isdigit() or c in "*#+" for c in text):
        raise ValueError(f"{name} must be an extension (digits), not {value!r:.40}")
    return text


def downlink_request_parse(payload: object, signer: str) -> tuple[list[str], float]:
    """The handsets a downlink serves and how long it waits; ValueError naming the fault."""
    if not isinstance(payload, dict):
        raise ValueError("a downlink request is a JSON object")
    if mac_normalize(str(payload.get("mac", ""))) != signer:
        raise ValueError(f"the MAC in the body is not the signer's ({signer})")
    handsets = payload.get("handsets", [])
    if not isinstance(handsets, list) or len(handsets) > MAX_HANDSETS:
        raise ValueError(f"handsets must be a list of at most {MAX_HANDSETS} extensions")
    wait = payload.get("wait", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait:
        raise ValueError("wait must be a number of seconds, 0 or more")
    return [extension_text(h, "a handset") for h in handsets], min(float(wait), DOWNLINK_WAIT_MAX)


def uplink_parse(payload: object, signer: str) -> list[dict]:
    """The events of an uplink, each checked and normalized ("from" as a key); ValueError
    naming the first bad one (then none is taken)."""
    if not isinstance(payload, dict):
        raise ValueError("an uplink is a JSON object")
    if mac_normalize(str(payload.get("mac", ""))) != signer:
        raise ValueError(f"the MAC in the body is not the signer's ({signer})")
    events = payload.get("events")
    if not isinstance(events, list) or len(events) > MAX_UPLINK_EVENTS:
        raise ValueError(f"events must be a list of at most {MAX_UPLINK_EVENTS}")
    parsed = []
    for n, event in enumerate(events, 1):
        try:
            parsed.append(_uplink_event(event))
        except ValueError as exc:
            raise ValueError(f"event {n}: {exc}") from None
    return parsed


def _uplink_event(event: object) -> dict:
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    kind = event.get("kind")
    if kind not in UPLINK_KINDS:
        raise ValueError(f"kind must be one of {', '.join(UPLINK_KINDS)}")
    out: dict = {"kind": kind, "from": extension_text(event.get("from"), "from")}
    if kind in ("delivered", "not_here", "answer", "release"):
        out["id"] = _int_in(event.get("id"), 1, 2**31 - 1, "id")
    if kind == "answer":
        out["action"] = _int_in(event.get("action"), 0x80, 0xFF, "action")
        status = event.get("status", [])
        if not isinstance(status, list) or len(status) > 16:
            raise ValueError("status must be a list of at most 16 integers")
        out["status"] = [_int_in(s, 0, 255, "a status") for s in status]
    if kind == "release":
        out["reason"] = _int_in(event.get("reason"), 0, 127, "reason")
    if kind == "sms":
        out["to"] = extension_text(event.get("to"), "to")
        display = event.get("display", "")
        if not isinstance(display, str) or len(display) > MAX_DISPLAY:
            raise ValueError(f"display must be text of at most {MAX_DISPLAY} characters")
        out["display"] = display
    if kind == "status":
        out["status"] = _int_in(event.get("status"), 0, 255, "status")
        data = event.get("data", "")
        if not isinstance(data, str) or len(data) > 256:
            raise ValueError("data must be base64 text")
        out["data"] = data
    if kind.startswith("call_") and kind != "call_setup":
        out["call"] = _int_in(event.get("call"), 1, 2**31 - 1, "call")
    if kind == "call_setup":
        out["to"] = extension_text(event.get("to"), "to")
    if kind == "call_key":
        key = event.get("key")
        if not isinstance(key, str) or not 1 <= len(key) <= 8:
            raise ValueError("key must be the text of a key")
        out["key"] = key
    if kind in ("call_menu", "call_prompt"):
        out["errorcode"] = _int_in(event.get("errorcode", 0), 0, 255, "errorcode")
    if kind == "call_menu":
        out["item"] = _int_in(event.get("item"), 0, 255, "item")
    if kind == "call_prompt":
        text = event.get("text", "")
        if not isinstance(text, str) or len(text) > MAX_DISPLAY:
            raise ValueError(f"text must be at most {MAX_DISPLAY} characters")
        out["text"] = text
    if kind == "call_release":
        out["reason"] = _int_in(event.get("reason", 0), 0, 127, "reason")
    if kind == "hardware":
        out["hardware"] = _int_in(event.get("hardware"), 0, 255, "hardware")
        out["reason"] = _int_in(event.get("reason", 0), 0, 255, "reason")
        data = event.get("data", "")
        if not isinstance(data, str) or len(data) > 1024:
            raise ValueError("data must be base64 text")
        out["data"] = data
        if event.get("id") is not None:
            out["id"] = _int_in(event.get("id"), 1, 2**31 - 1, "id")
    if kind == "lookup":
        text = event.get("text", "")
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= LOOKUP_TEXT_MAX:
            raise ValueError(f"text must be 1 to {LOOKUP_TEXT_MAX} characters to look up")
        out["text"] = text.strip()
        out["ref"] = _int_in(event.get("ref"), 1, 2**31 - 1, "ref")
    if kind == "base_stations":
        rfp_map = event.get("rfp_map", [])
        if not isinstance(rfp_map, list) or len(rfp_map) > 5:
            raise ValueError("rfp_map must be a list of at most 5 base stations")
        out["rfp_map"] = [_rfp_entry(e) for e in rfp_map]
        if event.get("id") is not None:
            out["id"] = _int_in(event.get("id"), 1, 2**31 - 1, "id")
    return out


def _rfp_entry(entry: object) -> dict[str, int]:
    if not isinstance(entry, dict):
        raise ValueError("an rfp_map entry is {rpn, rssi}")
    return {"rpn": _int_in(entry.get("rpn"), 0, 4095, "rpn"),
            "rssi": _int_in(entry.get("rssi"), 0, 255, "rssi")}  # fmt: skip
