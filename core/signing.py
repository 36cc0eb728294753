"""Signing of the messages between the two servers (pure: no Django, no I/O).

A request carries four headers: the sending node's name, a timestamp, a random
nonce and an HMAC-SHA256 over ``method``, ``path`` (with query), the SHA-256 of
the body, the timestamp and the nonce, keyed with the pairing secret. The
response to it is signed over its status, the request's nonce, its own
timestamp and the SHA-256 of its body, so it cannot be replayed to another
request. Whether a nonce was seen before is the caller's business: it needs a
store shared by all of a node's processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HEADER_NODE = "X-KWS-Node"
HEADER_TIME = "X-KWS-Timestamp"
HEADER_NONCE = "X-KWS-Nonce"
HEADER_SIGNATURE = "X-KWS-Signature"
# Clocks of the two servers may differ this much (seconds); older is stale.
MAX_SKEW = 30.0


class SignatureError(Exception):
    """A message that is unsigned, wrongly signed, stale or malformed. ``cause`` is a
    stable word for it (``unsigned``, ``malformed``, ``wrong-signature``, ``stale``,
    ``no-secret``) while the message may carry details that differ each time."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Signed:
    headers: dict[str, str]
    nonce: str
    timestamp: float


def _digest(secret: str, parts: list[str]) -> str:
    return hmac.new(secret.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def _body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_request(
    *, secret: str, node: str, method: str, path: str, body: bytes, now: float | None = None
) -> Signed:
    timestamp = time.time() if now is None else now
    nonce = secrets.token_hex(16)
    stamp = f"{timestamp:.6f}"
    signature = _digest(secret, [method.upper(), path, _body_hash(body), stamp, nonce])
    headers = {
        HEADER_NODE: node,
        HEADER_TIME: stamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }
    return Signed(headers=headers, nonce=nonce, timestamp=timestamp)


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


def verify_request(
    *,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> Signed:
    """Check a request's signature and age; return its nonce for the replay check."""
    if not secret:
        raise SignatureError("no pairing secret configured on this server", "no-secret")
    nonce, timestamp = _verify(
        secret,
        headers,
        lambda stamp, nonce: [method.upper(), path, _body_hash(body), stamp, nonce],
        "wrong signature (is the pairing secret the same on both servers?)",
        now,
    )
    return Signed(headers=dict(headers), nonce=nonce, timestamp=timestamp)


def _verify(
    secret: str,
    headers: Mapping[str, str],
    parts: Callable[[str, str], list[str]],
    wrong: str,
    now: float | None,
) -> tuple[str, float]:
    """Check the HMAC over ``parts(stamp, nonce)`` and the age; return (nonce, timestamp)."""
    stamp, timestamp, nonce, signature = _fields(headers)
    if not hmac.compare_digest(_digest(secret, parts(stamp, nonce)), signature):
        raise SignatureError(wrong, "wrong-signature")
    _check_time(timestamp, time.time() if now is None else now)
    return nonce, timestamp


def sign_response(
    *,
    secret: str,
    node: str,
    status: int,
    request_nonce: str,
    body: bytes,
    now: float | None = None,
) -> dict[str, str]:
    timestamp = time.time() if now is None else now
    stamp = f"{timestamp:.6f}"
    nonce = secrets.token_hex(16)
    signature = _digest(
        secret, ["RESPONSE", str(status), request_nonce, _body_hash(body), stamp, nonce]
    )
    return {HEADER_NODE: node, HEADER_TIME: stamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}


def verify_response(
    *,
    secret: str,
    status: int,
    request_nonce: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> None:
    _verify(
        secret,
        headers,
        lambda stamp, nonce: [
            "RESPONSE",
            str(status),
            request_nonce,
            _body_hash(body),
            stamp,
            nonce,
        ],
        "response has a wrong signature",
        now,
    )
