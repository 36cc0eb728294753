"""The device API: keep-alives of base stations (RFPs) and media resources.

Protocol
--------
HTTP/1.1 with JSON bodies on the node's web port (the port of the admin GUI
and the peer API), on persistent connections; and, once a server's answer invites
them (``"udp": true``), the same signed keep-alive in one UDP datagram to the port of
the same number (``basestations.udp``), with HTTP as the fallback for everything the
datagram path does not decide.

``POST /basestations/api/keepalive`` (``protocol.KEEPALIVE_PATH``) — signed like the peer API
(``core.signing``: HMAC-SHA256 over method, path, body hash, timestamp, nonce, sender
and receiver) with the device's own key, ``signing.device_key(device secret, MAC)``:
derived from the system's device secret (configuration key ``system.device_secret``,
replicated, so both servers accept the same devices) and the device's MAC, which is
its sender and its name (header ``X-KWS-Node``). A device can so speak only for
itself: a compromised base station cannot report for another's MAC.
Body (``protocol.KeepAlive``)::

    {"mac": "00:13:D1:0A:0B:0C", "kind": "rfp" | "media", "firmware": "PCS06B",
     "state": "synced", "peer_reachable": true | false | null,
     "ip": "10.0.0.21", "handsets": ["2001", ...], "channels_in_use": 3}

``peer_reachable`` is what the device sees of the *other* server (the one
the request is not sent to), probed with ``GET /basestations/api/probe``
(unsigned, answers 200 and does no database work). ``handsets`` are the
extensions of the handsets on a base station; the server remembers where each
handset was last seen.

Answers (signed back over the request's nonce, so a device can trust a
redirect):

- 200 ``{"server": <node name>, "peer": "host:port", "interval": 1.0, "missed": 2,
  "ari": "10A3F2C5", "udp": true}``: attached here; ``peer`` is the other server
  (``redundancy.peer``); ``ari`` the ARI the base station broadcasts, the
  system's (the master's, on a backup with the ARI swap; '' before one is set);
  ``udp`` while the web server answers keep-alive datagrams.
- 409 ``{"error": ..., "server": "host:port"}``: this server does not serve
  devices now (a backup outside a failover); go to ``server``, the master.
- 403 ``{"error": ...}``: unknown device (MAC not configured as that kind),
  firmware older than PCS06A (the seed's compatibility rule), or no device
  secret configured here. 401: unsigned, wrongly signed, stale, or a replay
  (a keep-alive not newer than the device's last one). 400: malformed body.
  Each refusal cause is written to the event log once per device (and
  firmware version), not at every keep-alive.

A device is configured with the master's address. It keeps alive every
``interval`` seconds; after ``missed`` keep-alives without an answer, or at
once when its connection is refused, it moves to the peer it learned; a 409
sends it to the server named. So devices follow the pair: to the backup when
the master fails and the backup takes over, back to the master when the pair
re-forms (the backup answers 409 again).

Why HTTP/JSON, and datagrams beside it
--------------------------------------
A keep-alive that Django would answer from what it already knows (the steady state,
nearly all of them, and the arrivals: first contacts, a failover's moves, redirects to
the master) is answered from memory in the web server's event loop
(``basestations.attached``), without Django or a database round trip; the rows are
written in batches. Measured with ``bench/keepalive.py`` on the development machine
(2 vCPU, one node, simulator on the same machine), 1000 devices at one keep-alive a
second: 84 % of a core per 100 devices through Django; 53 % for all 1000 answered from
memory over one short connection each; 41 % on persistent connections; 34 % with
uvloop and the keys, MACs and addresses of a keep-alive remembered; about 20 % in
datagrams, of which the signing and checking is most (HMACs, the nonce, the JSON).
HTTP stays the protocol: the first contact, every refusal (and its record), and every
case the datagram path hands on go through it, so Django's rules stay in one place;
it reuses the node's web port, the peer API's signing, and ordinary tools (curl) for
diagnosis. A datagram that is refused falls back to HTTP at once (a dead server is
still noticed at once: HTTP is refused too), one that is not answered counts as a
missed keep-alive; after either the device keeps to HTTP with that server for a minute
(a firewall that drops datagrams costs one keep-alive a minute). Larger systems
lengthen the interval the server gives (``settings.DEVICE_KEEPALIVE_INTERVAL``).
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from basestations import attached, protocol
from basestations.services import device_keepalive, device_refusal_record
from core import signing
from core.peer import request_verify
from core.selectors import config_read

logger = logging.getLogger(__name__)


def _quiet(response: HttpResponse) -> HttpResponse:
    # Refusals are logged once per device and cause (services.device_refusal_record);
    # django.request would warn at every keep-alive of a refused or redirected device.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _signed(key: str, status: int, answer: dict, opened: signing.Opened) -> HttpResponse:
    """The answer, signed with the device's own key over its request's nonce."""
    headers, body = signing.sign_response(
        secret=key, node=settings.NODE_NAME, status=status, request_nonce=opened.nonce,
        body=json.dumps(answer).encode(), requester=opened.sender,
    )  # fmt: skip
    response = _quiet(HttpResponse(body, status=status, content_type="application/json"))
    for name, value in headers.items():
        response[name] = value
    return response


def _claimed(request: HttpRequest) -> str:
    """Who the request says it is (unverified: for the refusal message only)."""
    signer = request.headers.get(signing.HEADER_NODE, "")[:40]
    if signer:
        return signer
    try:
        return protocol.mac_normalize(json.loads(request.body).get("mac", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


def _refuse(request: HttpRequest, status: int, cause: str, reason: str) -> HttpResponse:
    remote = request.META.get("REMOTE_ADDR", "?")
    who = _claimed(request)
    named = f"{remote} (claims MAC {who})" if who else remote
    message = f"Refused a device keep-alive from {named}: {reason}."
    device_refusal_record(key=f"{cause}|{who or remote}", message=message)
    return _quiet(JsonResponse({"error": reason}, status=status))


def _signature_reason(exc: signing.SignatureError) -> str:
    """The reason as a device sees it."""
    if exc.cause == "wrong-signature":
        return (
            "wrong signature (is the device signing with its key from this system's device secret?)"
        )
    return str(exc)


@csrf_exempt
@login_not_required
@require_POST
def keepalive(request: HttpRequest) -> HttpResponse:
    config = config_read()
    secret = config["system.device_secret"]
    if not secret:
        return _refuse(
            request, 403, "no-secret",
            "this server has no device secret (system.device_secret): every device is refused",
        )  # fmt: skip
    # Each device signs with its own key, derived from the system's secret and its MAC:
    # a device can speak only for itself (its keep-alive must name the MAC it signs as).
    try:
        mac = protocol.mac_normalize(request.headers.get(signing.HEADER_NODE, ""))
    except ValueError:
        mac = ""  # no key fits: the signature check below says what is missing
    key = signing.device_key(secret, mac)
    try:
        opened = request_verify(request, key)
        if opened.sender.upper() != mac:
            raise signing.SignatureError(f"signed as {opened.sender[:20]!r}, not as {mac}",
                                         "wrong-signature")  # fmt: skip
    except signing.SignatureError as exc:
        return _refuse(request, 401, exc.cause, _signature_reason(exc))
    try:
        report = protocol.keepalive_parse(json.loads(opened.body), mac)
    except ValueError as exc:
        return _signed(key, 400, {"error": f"malformed keep-alive: {exc}"}, opened)
    # A device held in memory (basestations.attached) has its last contact written first:
    # the replay check below reads it from the database.
    attached.release(mac)
    remote = request.META.get("REMOTE_ADDR", "")
    device_ids: list[int] = []
    status, answer = device_keepalive(
        report=report, stamp=opened.timestamp, remote=remote, config=config,
        accepted=device_ids.append,
    )  # fmt: skip
    attached.heard(mac, opened.timestamp, status)
    if device_ids:  # attached: its next keep-alives are answered from memory while steady
        attached.hold(device_id=device_ids[0], key=key, report=report, remote=remote,
                      stamp=opened.timestamp, answer=answer)  # fmt: skip
    return _signed(key, status, answer, opened)


@csrf_exempt
@login_not_required
@require_GET
def probe(request: HttpRequest) -> HttpResponse:
    """Unsigned liveness probe for devices: 200 while this server's web server runs."""
    return JsonResponse({"server": settings.NODE_NAME})
