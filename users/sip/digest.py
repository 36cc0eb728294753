"""HTTP digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760).

Algorithms MD5, SHA-256 and SHA-512-256, each also as ``-sess``.
``digest_response`` computes the ``response`` value; ``authorization`` builds a whole
``Authorization`` / ``Proxy-Authorization`` value answering a ``DigestChallenge``.
With qop=auth (or auth-int) the nonce count and client nonce are included; a challenge
without qop gets the RFC 2069 form.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from users.sip.message import DigestChallenge, UnsupportedChallenge

# The hash of each algorithm (RFC 7616 3.2; SHA-512/256 is SHA-512 truncated, FIPS 180-4).
HASHES: dict[str, Callable[[bytes], str]] = {
    "md5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "sha-256": lambda data: hashlib.sha256(data).hexdigest(),
    "sha-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: int = 1,
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 3.4.1 (RFC 2617 3.2.2.1 for MD5) in lower-case hex."""
    name = algorithm.lower()
    session = name.endswith("-sess")
    digest = HASHES.get(name.removesuffix("-sess"))
    if digest is None:
        raise UnsupportedChallenge(f"digest algorithm {algorithm!r} is not supported")

    def h(text: str) -> str:
        return digest(text.encode())

    ha1 = h(f"{username}:{realm}:{password}")
    if session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}:{digest(body)}") if qop == "auth-int" else h(f"{method}:{uri}")
    if qop:
        return h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """An ``Authorization`` value answering ``challenge`` (qop=auth preferred).

    ``nc`` must grow by one for each request that reuses the same nonce.
    """
    qop: str | None = None
    if challenge.qop:
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise UnsupportedChallenge(f"qop {','.join(challenge.qop)!r} is not supported")
    if cnonce is None:
        cnonce = secrets.token_hex(8)
    response = digest_response(
        username=username,
        password=password,
        realm=challenge.realm,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"Digest username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
    elif challenge.algorithm.endswith("-sess"):
        parts.append(f"cnonce={_quote(cnonce)}")
    return ", ".join(parts)
