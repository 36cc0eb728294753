"""The backup file format, version 1: pure (no Django), so every damaged file is a unit test.

A backup file is one UTF-8 JSON object::

    {
      "format": "KWS Admin backup",
      "version": 1,
      "header": {"database_uuid": "...", "node": "kws-a", "mode": "master",
                 "created": "2026-12-02T07:00:00+00:00", "secrets": false},
      "payload": {"config": "<kwsconfig export text>", "entities": {"user": [...], ...}},
      "sha256": "<hex digest of the header and payload>"
    }

``header`` names the system (its database UUID) and the server and moment the file
was written; ``payload`` holds the configuration as ``kwsconfig export`` writes it
and the replicated rows as a snapshot carries them (``core.changelog``). ``sha256``
is taken over the canonical JSON (sorted keys, no spaces) of ``{"header", "payload"}``:
a truncated or edited file is refused.

A file with secrets (``header.secrets`` true) is protected by a passphrase: instead
of ``payload`` and ``sha256`` it has ``encryption`` (``{"kdf": "scrypt", "n", "r",
"p", "salt", "cipher": "AES-256-GCM", "nonce"}``, bytes in base64) and ``ciphertext``
(base64), the payload's canonical JSON sealed with AES-256-GCM under the key scrypt
derives from the passphrase; the canonical JSON of ``header`` is the associated data,
so the header cannot be changed either. A wrong passphrase and an edited ciphertext
are the same failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "KWS Admin backup"
VERSION = 1
# scrypt's interactive-login cost (2**15, 8, 1: 32 MiB, about 0.1 s here); a file
# names its own parameters, bounded on reading so a file cannot ask for unbounded work.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_N_MAX = 2**20
PASSPHRASE_MIN_LENGTH = 10
HEADER_FIELDS = ("database_uuid", "node", "mode", "created", "secrets")


class BackupFileError(ValueError):
    """The file cannot be read as a backup; the message says why, for an administrator."""


class PassphraseNeeded(BackupFileError):
    """The file is protected and no passphrase was given."""


class PassphraseWrong(BackupFileError):
    """The passphrase does not open the file (or the sealed part was changed)."""


@dataclass(frozen=True)
class BackupFile:
    header: dict[str, Any]
    payload: dict[str, Any]

    @property
    def database_uuid(self) -> str:
        return str(self.header["database_uuid"])

    @property
    def secrets(self) -> bool:
        return bool(self.header["secrets"])


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(header: dict[str, Any], payload: Any) -> str:
    return hashlib.sha256(_canonical({"header": header, "payload": payload})).hexdigest()


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise BackupFileError(f"damaged file: its {what} is not base64") from None


def encode(backup: BackupFile, *, passphrase: str = "") -> bytes:
    """The file's bytes; a file with secrets needs a passphrase (it is sealed with it)."""
    header = dict(backup.header)
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION, "header": header}
    if header["secrets"]:
        if len(passphrase) < PASSPHRASE_MIN_LENGTH:
            raise ValueError(f"a passphrase of at least {PASSPHRASE_MIN_LENGTH} characters")
        salt, nonce = os.urandom(16), os.urandom(12)
        key = _key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        sealed = AESGCM(key).encrypt(nonce, _canonical(backup.payload), _canonical(header))
        document["encryption"] = {
            "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt),
            "cipher": "AES-256-GCM", "nonce": _b64(nonce),
        }  # fmt: skip
        document["ciphertext"] = _b64(sealed)
    else:
        document["payload"] = backup.payload
        document["sha256"] = _digest(header, backup.payload)
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


def _header(document: dict[str, Any]) -> dict[str, Any]:
    header = document.get("header")
    if not isinstance(header, dict) or set(header) != set(HEADER_FIELDS):
        raise BackupFileError("damaged file: its header is not a backup header")
    if not isinstance(header["secrets"], bool) or not isinstance(header["database_uuid"], str):
        raise BackupFileError("damaged file: its header is not a backup header")
    return header


def _payload_check(payload: Any) -> dict[str, Any]:
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("config"), str)
        or not isinstance(payload.get("entities"), dict)
        or not all(isinstance(rows, list) for rows in payload["entities"].values())
        or not all(isinstance(row, dict) for rows in payload["entities"].values() for row in rows)
    ):
        raise BackupFileError("damaged file: its content is not configuration and data")
    return payload


def _unseal(document: dict[str, Any], header: dict[str, Any], passphrase: str) -> Any:
    enc = document.get("encryption")
    if (
        not isinstance(enc, dict)
        or enc.get("kdf") != "scrypt"
        or enc.get("cipher") != ("AES-256-GCM")
    ):
        raise BackupFileError("damaged file: its encryption is not scrypt and AES-256-GCM")
    try:
        n, r, p = int(enc["n"]), int(enc["r"]), int(enc["p"])
    except (KeyError, TypeError, ValueError):
        raise BackupFileError("damaged file: its scrypt parameters are missing") from None
    if not (2 <= n <= SCRYPT_N_MAX and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise BackupFileError("damaged file: its scrypt parameters are out of range")
    salt = _unb64(enc.get("salt"), "salt")
    nonce = _unb64(enc.get("nonce"), "nonce")
    sealed = _unb64(document.get("ciphertext"), "encrypted content")
    if not passphrase:
        raise PassphraseNeeded("this file holds secrets and is protected by a passphrase: enter it")
    if len(nonce) != 12:
        raise BackupFileError("damaged file: its nonce is not 12 bytes")
    try:
        plain = AESGCM(_key(passphrase, salt, n, r, p)).decrypt(nonce, sealed, _canonical(header))
    except InvalidTag:
        raise PassphraseWrong(
            "the passphrase is wrong (or the file was changed after it was written)"
        ) from None
    try:
        return json.loads(plain)
    except ValueError:
        raise BackupFileError("damaged file: its encrypted content is not JSON") from None


def decode(data: bytes, *, passphrase: str = "") -> BackupFile:
    """Read a backup file; raise BackupFileError (or a subclass) saying what is wrong."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BackupFileError("not a backup file: it is not text") from None
    except ValueError:
        raise BackupFileError(
            "not a backup file, or a damaged one: it is not complete JSON (truncated?)"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupFileError(f"not a backup file: it does not say it is a {FORMAT} file")
    version = document.get("version")
    if version != VERSION:
        raise BackupFileError(
            f"unknown backup format version {version!r}: this server reads version {VERSION}"
        )
    header = _header(document)
    if header["secrets"]:
        payload = _unseal(document, header, passphrase)
    else:
        payload = document.get("payload")
        digest = document.get("sha256")
        if not isinstance(digest, str) or not hmac.compare_digest(digest, _digest(header, payload)):
            raise BackupFileError(
                "damaged file: its content does not match its checksum (edited or damaged)"
            )
    return BackupFile(header=header, payload=_payload_check(payload))
