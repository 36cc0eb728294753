"""Signed (and, between the servers, sealed) messages: pure, no Django, no I/O.

A request carries the sender's name, the sender's and the receiver's ids, a timestamp,
a random nonce and an HMAC-SHA256 over the method, the path (with query), the SHA-256
of the body, the timestamp, the nonce, the sender and the receiver. Its answer is
signed over its status, the request's nonce, its own timestamp and nonce, the SHA-256
of its body, the responder and the requester, so it answers that request only.

Keys are never the shared secret itself: HKDF-SHA256 derives one per purpose (request,
response, sealing either) and direction (sender, receiver) from it, so a signature
made for one direction or purpose verifies in no other. A receiver refuses a message
that claims to come from itself (a reflected request) or that is addressed to another
server; an empty receiver is "whoever answers at this address", for the first contact
before the peer's id is known.

Sealed bodies (the peer API) are encrypted with AES-256-GCM under the direction's
sealing key, the signed header values as associated data: replication carries SIP
passwords, password hashes and the device secret, and none of it may be read on the
wire. The HMAC covers the sealed bytes.

Devices sign with their own key, ``device_key(system secret, MAC)``: a base station can
speak only for its own MAC. Whether a nonce was seen before is the caller's business:
it needs a store shared by all of a node's processes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER_NODE = "X-KWS-Node"
HEADER_SENDER = "X-KWS-Sender"
HEADER_RECEIVER = "X-KWS-Receiver"
HEADER_TIME = "X-KWS-Timestamp"
HEADER_NONCE = "X-KWS-Nonce"
HEADER_SIGNATURE = "X-KWS-Signature"
HEADER_SEALED = "X-KWS-Sealed"
# The headers a signed message carries, by their lower-case wire names (core.asgi.headers_named).
HEADERS = {name.lower().encode(): name for name in (
    HEADER_NODE, HEADER_SENDER, HEADER_RECEIVER, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE,
    HEADER_SEALED,
)}  # fmt: skip
# Clocks of the two servers may differ this much (seconds); older is stale.
MAX_SKEW = 30.0
_SALT = b"kws-admin signed messages v2"
_IV_BYTES = 12


class SignatureError(Exception):
    """A message that is unsigned, wrongly signed, stale, reflected, misaddressed or
    malformed. ``cause`` is a stable word for it (``unsigned``, ``malformed``,
    ``wrong-signature``, ``stale``, ``no-secret``, ``reflected``, ``misaddressed``) while
    the message may carry details that differ each time."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


# Three keys per device (its own, its requests, its answers): room for thousands of devices.
@functools.lru_cache(maxsize=8192)
@functools.lru_cache(maxsize=8192)
def derive_key(secret: str, purpose: str, sender: str, receiver: str) -> bytes:
    """The 32-byte key of one purpose and direction, derived from the shared secret.
    Remembered (a few thousand devices and their peers, two directions each): the
    derivation cost a signed keep-alive more than its HMACs."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                info="\n".join((purpose, sender, receiver)).encode())  # fmt: skip
    return hkdf.derive(secret.encode())


def device_key(secret: str, mac: str) -> str:
    """The key a device with this MAC signs with, derived from the system's device secret
    (hex, so it can be typed into a device or printed for provisioning)."""
    return derive_key(secret, "device", mac.upper(), "").hex()


@dataclass(frozen=True)
class Signed:
    """A signed message: its headers, its nonce and time, who sent it to whom, and the
    body as sent on the wire (sealed or not)."""

    headers: dict[str, str]
    nonce: str
    timestamp: float
    sender: str = ""
    receiver: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class Opened:
    """A verified request: its nonce, time, sender and receiver, and the body in clear."""

    nonce: str
    timestamp: float
    sender: str
    receiver: str
    body: bytes
    sealed: bool


def _digest(key: bytes, parts: list[str]) -> str:
    return hmac.digest(key, "\n".join(parts).encode(), "sha256").hex()


def _body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _seal(key: bytes, plain: bytes, aad: list[str]) -> bytes:
    iv = os.urandom(_IV_BYTES)
    return iv + AESGCM(key).encrypt(iv, plain, "\n".join(aad).encode())


def _unseal(key: bytes, sealed: bytes, aad: list[str]) -> bytes:
    if len(sealed) < _IV_BYTES + 16:
        raise SignatureError("sealed body too short", "malformed")
    try:
        return AESGCM(key).decrypt(sealed[:_IV_BYTES], sealed[_IV_BYTES:], "\n".join(aad).encode())
    except InvalidTag:
        raise SignatureError(
            "sealed body does not open with this secret", "wrong-signature"
        ) from None


def _request_parts(method: str, path: str, body_hash: str, stamp: str, nonce: str,
                   sender: str, receiver: str) -> list[str]:  # fmt: skip
    return [method.upper(), path, body_hash, stamp, nonce, sender, receiver]


def sign_request(
    *,
    secret: str,
    node: str,
    method: str,
    path: str,
    body: bytes,
    sender: str = "",
    receiver: str = "",
    seal: bool = False,
    now: float | None = None,
) -> Signed:
    """Sign (and with ``seal`` encrypt) a request from ``sender`` to ``receiver``;
    ``node`` is the sender's name (a device's MAC) for the receiver's messages."""
    timestamp = time.time() if now is None else now
    nonce = secrets.token_hex(16)
    stamp = f"{timestamp:.6f}"
    wire = body
    if seal:
        aad = ["REQUEST", method.upper(), path, stamp, nonce, sender, receiver]
        wire = _seal(derive_key(secret, "seal-request", sender, receiver), body, aad)
    key = derive_key(secret, "request", sender, receiver)
    parts = _request_parts(method, path, _body_hash(wire), stamp, nonce, sender, receiver)
    headers = {
        HEADER_NODE: node,
        HEADER_SENDER: sender,
        HEADER_RECEIVER: receiver,
        HEADER_TIME: stamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: _digest(key, parts),
    }
    if seal:
        headers[HEADER_SEALED] = "1"
    return Signed(headers, nonce, timestamp, sender, receiver, wire)


def _fields(headers: Mapping[str, str]) -> tuple[str, float, str, str]:
    try:
        stamp = headers[HEADER_TIME]
        nonce = headers[HEADER_NONCE]
        signature = headers[HEADER_SIGNATURE]
    except KeyError as exc:
        raise SignatureError(
            f"unsigned message: header {exc.args[0]} missing", "unsigned"
        ) from None
    try:
        timestamp = float(stamp)
    except ValueError:
        raise SignatureError(f"malformed timestamp {stamp[:40]!r}", "malformed") from None
    if not math.isfinite(timestamp):  # nan and inf would pass any age comparison
        raise SignatureError(f"malformed timestamp {stamp[:40]!r}", "malformed")
    if not (8 <= len(nonce) <= 64 and nonce.isalnum()):
        raise SignatureError("malformed nonce", "malformed")
    return stamp, timestamp, nonce, signature


def _check_time(timestamp: float, now: float) -> None:
    skew = now - timestamp
    if abs(skew) > MAX_SKEW:
        raise SignatureError(
            f"stale message: timestamp {skew:+.1f} s from this server's clock "
            f"(allowed ±{MAX_SKEW:.0f} s)",
            "stale",
        )


def _ids(headers: Mapping[str, str]) -> tuple[str, str]:
    sender = headers.get(HEADER_SENDER, "")
    receiver = headers.get(HEADER_RECEIVER, "")
    if len(sender) > 64 or len(receiver) > 64:
        raise SignatureError("malformed sender or receiver", "malformed")
    return sender, receiver


def verify_request(
    *,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    me: str = "",
    now: float | None = None,
) -> Opened:
    """Check a request's signature, age and direction (``me``: this server's id); open a
    sealed body. SignatureError names the cause."""
    if not secret:
        raise SignatureError("no pairing secret configured on this server", "no-secret")
    stamp, timestamp, nonce, signature = _fields(headers)
    sender, receiver = _ids(headers)
    key = derive_key(secret, "request", sender, receiver)
    parts = _request_parts(method, path, _body_hash(body), stamp, nonce, sender, receiver)
    if not hmac.compare_digest(_digest(key, parts), signature):
        raise SignatureError(
            "wrong signature (is the pairing secret the same on both servers?)",
            "wrong-signature",
        )
    _check_time(timestamp, time.time() if now is None else now)
    if me and sender == me:
        raise SignatureError("reflected message: it claims this server as its sender", "reflected")
    if me and receiver and receiver != me:
        raise SignatureError("message addressed to another server", "misaddressed")
    sealed = headers.get(HEADER_SEALED) == "1"
    plain = body
    if sealed:
        aad = ["REQUEST", method.upper(), path, stamp, nonce, sender, receiver]
        plain = _unseal(derive_key(secret, "seal-request", sender, receiver), body, aad)
    return Opened(nonce, timestamp, sender, receiver, plain, sealed)


def _response_parts(status: int, request_nonce: str, body_hash: str, stamp: str, nonce: str,
                    responder: str, requester: str) -> list[str]:  # fmt: skip
    return ["RESPONSE", str(status), request_nonce, body_hash, stamp, nonce, responder, requester]


def sign_response(
    *,
    secret: str,
    node: str,
    status: int,
    request_nonce: str,
    body: bytes,
    responder: str = "",
    requester: str = "",
    seal: bool = False,
    now: float | None = None,
) -> tuple[dict[str, str], bytes]:
    """The headers and the wire body of the answer to the request with ``request_nonce``."""
    timestamp = time.time() if now is None else now
    stamp = f"{timestamp:.6f}"
    nonce = secrets.token_hex(16)
    wire = body
    if seal:
        aad = ["RESPONSE", str(status), request_nonce, stamp, nonce, responder, requester]
        wire = _seal(derive_key(secret, "seal-response", responder, requester), body, aad)
    key = derive_key(secret, "response", responder, requester)
    parts = _response_parts(status, request_nonce, _body_hash(wire), stamp, nonce, responder,
                            requester)  # fmt: skip
    headers = {
        HEADER_NODE: node,
        HEADER_SENDER: responder,
        HEADER_RECEIVER: requester,
        HEADER_TIME: stamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: _digest(key, parts),
    }
    if seal:
        headers[HEADER_SEALED] = "1"
    return headers, wire


def verify_response(
    *,
    secret: str,
    status: int,
    request_nonce: str,
    body: bytes,
    headers: Mapping[str, str],
    me: str = "",
    now: float | None = None,
) -> bytes:
    """Check an answer's signature and age, and that it answers us (``me``) and is not
    our own; return the body in clear."""
    stamp, timestamp, nonce, signature = _fields(headers)
    responder, requester = _ids(headers)
    key = derive_key(secret, "response", responder, requester)
    parts = _response_parts(status, request_nonce, _body_hash(body), stamp, nonce, responder,
                            requester)  # fmt: skip
    if not hmac.compare_digest(_digest(key, parts), signature):
        raise SignatureError("response has a wrong signature", "wrong-signature")
    _check_time(timestamp, time.time() if now is None else now)
    if me and responder == me:
        raise SignatureError("reflected answer: it claims this server as its sender", "reflected")
    if me and requester != me:
        raise SignatureError("answer addressed to another server", "misaddressed")
    if headers.get(HEADER_SEALED) == "1":
        aad = ["RESPONSE", str(status), request_nonce, stamp, nonce, responder, requester]
        return _unseal(derive_key(secret, "seal-response", responder, requester), body, aad)
    return body
