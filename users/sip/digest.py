"""HTTP digest authentication for SIP (RFC 2617, RFC 8760): MD5 and MD5-sess.

``digest_response`` computes the ``response`` value; ``authorization`` builds a whole
``Authorization`` / ``Proxy-Authorization`` value answering a ``DigestChallenge``.
With qop=auth (or auth-int) the nonce count and client nonce are included; a challenge
without qop gets the RFC 2069 form.
"""

from __future__ import annotations

import hashlib
import secrets

from users.sip.message import DigestChallenge, UnsupportedChallenge


def _h(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


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
    """The request-digest of RFC 2617 3.2.2.1 as 32 lower-case hex digits."""
    ha1 = _h(f"{username}:{realm}:{password}")
    if algorithm.lower() == "md5-sess":
        ha1 = _h(f"{ha1}:{nonce}:{cnonce}")
    elif algorithm.lower() != "md5":
        raise UnsupportedChallenge(f"digest algorithm {algorithm!r} is not supported")
    if qop == "auth-int":
        ha2 = _h(f"{method}:{uri}:{hashlib.md5(body, usedforsecurity=False).hexdigest()}")
    else:
        ha2 = _h(f"{method}:{uri}")
    if qop:
        return _h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")
    return _h(f"{ha1}:{nonce}:{ha2}")


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
    elif challenge.algorithm == "MD5-sess":
        parts.append(f"cnonce={_quote(cnonce)}")
    return ", ".join(parts)
