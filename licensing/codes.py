"""License codes: a short signed text that licenses one product on one server.

A code carries the ARI it is bound to, the product number, an issue date, a
serial, a user count and licensed features, signed with Ed25519 by the
vendor's private key. A server holds only the vendor's public key, so it can
check a code but never make one. Signing and checking are the
``cryptography`` package's; nothing here is home-made crypto.

Format, version 1::

    payload  21 bytes, big-endian: version (1) | ARI (4) | product (4)
             | issue date, days since 1970-01-01 (4) | serial (4)
             | user count (2) | feature bits (2)
    signature 64 bytes: Ed25519 over b"KWS Admin license code v1\\0" + payload

The 85 bytes are written in RFC 4648 base32 (A-Z, 2-7): exactly 136
characters with no spare bits, so changing any character changes the bytes
and breaks the signature. The text is ``KWSL-`` and the characters in
groups of 8 joined by dashes. Reading a code ignores letter case, spaces,
line breaks and dashes (an e-mail may wrap it); any other change is refused.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import date, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from licensing import products
from licensing.ari import AriError, ari_from_int, ari_parse

PREFIX = "KWSL"
FORMAT_VERSION = 1
_CONTEXT = b"KWS Admin license code v1\x00"
_PAYLOAD = struct.Struct(">BIIIIHH")
_SIGNATURE_BYTES = 64
_BODY_CHARS = (_PAYLOAD.size + _SIGNATURE_BYTES) * 8 // 5
_GROUP = 8
_EPOCH = date(1970, 1, 1)
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Characters people type for the letters base32 uses instead.
_LOOKALIKES = {"0": "the letter O", "1": "the letter I", "8": "the letter B"}

assert (_PAYLOAD.size + _SIGNATURE_BYTES) % 5 == 0, "base32 must have no spare bits"


class LicenseRefused(ValueError):
    """A license code that is refused; ``cause`` names the kind, str() says why to the admin.

    Causes: garbage, forged, format, no_key, bad_key, unknown_product (from
    this module), and no_ari, other_ari, installed, role (from the install
    service).
    """

    def __init__(self, cause: str, message: str) -> None:
        self.cause = cause
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class LicenseCode:
    """What a genuine code says. ``text`` is its canonical form."""

    ari: str
    product: int
    issued: date
    serial: int
    users: int
    features: tuple[str, ...]
    text: str

    @property
    def serial_text(self) -> str:
        return f"{self.serial:08X}"


# --- Keys ---------------------------------------------------------------------


def keypair_generate() -> tuple[bytes, str]:
    """A new vendor key pair: the private key as PEM (PKCS#8) and the public key as text."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_key_text(private.public_key())


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as one line of base64 of its 32 bytes (KWS_LICENSE_PUBLIC_KEY's form)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_load(text: str) -> Ed25519PublicKey:
    """Read the vendor public key from base64 of its 32 raw bytes, or from PEM.

    Raises LicenseRefused (no_key, bad_key) so that a missing or broken
    setting is reported where a code is checked.
    """
    text = (text or "").strip()
    if not text:
        raise LicenseRefused(
            "no_key",
            "no vendor public key is configured (KWS_LICENSE_PUBLIC_KEY or "
            "KWS_LICENSE_PUBLIC_KEY_FILE), so license codes cannot be checked",
        )
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        raise LicenseRefused(
            "bad_key",
            f"the configured vendor public key (KWS_LICENSE_PUBLIC_KEY) is not an Ed25519 "
            f"public key: {exc}",
        ) from None


def private_key_load(pem: bytes) -> Ed25519PrivateKey:
    """Read a vendor private key written by ``keypair_generate``; ValueError if it is not one."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


# --- Issue --------------------------------------------------------------------


def code_issue(
    *,
    private_key: Ed25519PrivateKey,
    ari: str,
    product: int,
    issued: date,
    serial: int,
    users: int = 0,
    features: tuple[str, ...] | list[str] = (),
) -> str:
    """Sign a license code (the vendor's side).

    Raises AriError for a bad ARI and products.ProductError for an unknown
    product, a user count out of range, an unknown feature, or a product
    without the user count or features it needs.
    """
    names = tuple(sorted(set(features)))
    products.license_check(product=product, users=users, features=names)
    if not 0 <= serial < 1 << 32:
        raise ValueError(f"a serial is 0 to {(1 << 32) - 1}, not {serial}")
    payload = _PAYLOAD.pack(
        FORMAT_VERSION,
        int(ari_parse(ari), 16),
        product,
        (issued - _EPOCH).days,
        serial,
        users,
        products.features_to_mask(names),
    )
    return _code_text(payload + private_key.sign(_CONTEXT + payload))


def _code_text(raw: bytes) -> str:
    body = base64.b32encode(raw).decode()
    return "-".join([PREFIX, *(body[i : i + _GROUP] for i in range(0, len(body), _GROUP))])


# --- Check --------------------------------------------------------------------


def _garbage(message: str) -> LicenseRefused:
    return LicenseRefused("garbage", f"this is not a license code: {message}")


def code_body(text: str) -> str:
    """The base32 characters of a code, or LicenseRefused(garbage) saying what is wrong."""
    compact = "".join(str(text).split()).upper()
    if not compact:
        raise LicenseRefused("garbage", "no license code was entered")
    letters = compact.replace("-", "")
    if not letters.startswith(PREFIX):
        raise _garbage(f"a KWS license code starts with {PREFIX}-")
    body = letters[len(PREFIX) :]
    for char in body:
        if char not in _BASE32:
            hint = f" (did you mean {_LOOKALIKES[char]}?)" if char in _LOOKALIKES else ""
            raise _garbage(f"it contains {char!r}, which license codes never use{hint}")
    if len(body) != _BODY_CHARS:
        raise _garbage(
            f"it has {len(body)} characters after {PREFIX}-, a license code has {_BODY_CHARS} "
            "(copy the whole code)"
        )
    return body


def code_verify(text: str, public_key: Ed25519PublicKey) -> LicenseCode:
    """Read a code and check the vendor's signature; LicenseRefused otherwise.

    Garbage (not the shape of a code) is told apart from a forged or altered
    code (the shape is right, the signature does not match). Only a genuine
    code is interpreted; its format version, product and features must be
    known to this firmware.
    """
    raw = base64.b32decode(code_body(text))
    payload, signature = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    try:
        public_key.verify(signature, _CONTEXT + payload)
    except InvalidSignature:
        raise LicenseRefused(
            "forged",
            "this code is not genuine: its signature does not match, so it was altered, "
            "mistyped or not issued by the vendor (copy it again from the vendor's message)",
        ) from None
    version, ari_bits, product, days, serial, users, mask = _PAYLOAD.unpack(payload)
    if version != FORMAT_VERSION:
        raise LicenseRefused(
            "format",
            f"this code has format version {version}, which this firmware does not read: "
            "update the firmware",
        )
    try:
        ari = ari_from_int(ari_bits)
        products.product_get(product)
        features = products.features_from_mask(mask)
    except (AriError, products.ProductError) as exc:
        raise LicenseRefused("unknown_product", f"this code cannot be used here: {exc}") from None
    return LicenseCode(
        ari=ari,
        product=product,
        issued=_EPOCH + timedelta(days=days),
        serial=serial,
        users=users,
        features=features,
        text=_code_text(raw),
    )
