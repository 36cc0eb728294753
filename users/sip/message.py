"""SIP messages (RFC 3261): what a REGISTER client sends and reads, and nothing more.

- ``parse_message(data)`` turns one datagram (or one framed stream message) into a
  ``SipRequest`` or ``SipResponse``. Header names are returned in their canonical long
  form (compact forms such as ``i``, ``f``, ``t``, ``v``, ``m``, ``l`` are expanded),
  folded lines are unfolded, and the body is cut at Content-Length.
- ``SipRequest.to_bytes()`` / ``SipResponse.to_bytes()`` serialise, always writing a
  Content-Length that matches the body.
- ``StreamFramer`` splits a TCP byte stream into messages by Content-Length.
- Helpers read what REGISTER needs: CSeq, Expires, Contact with its ``expires`` param,
  and digest challenges (``WWW-Authenticate`` / ``Proxy-Authenticate``).

Every malformed input raises ``SipParseError`` (a ``ValueError``) with a message that
says what is wrong; nothing else escapes the parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DigestChallenge",
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "StreamFramer",
    "UnsupportedChallenge",
    "build_response",
    "choose_challenge",
    "contact_expires",
    "parse_cseq",
    "parse_digest_challenge",
    "parse_expires",
    "parse_message",
    "parse_name_addr",
    "split_list",
    "uri_key",
]


class SipParseError(ValueError):
    """Malformed SIP input; the message says what is wrong."""


class UnsupportedChallenge(SipParseError):
    """A well-formed authentication challenge this client cannot answer (scheme, algorithm, qop)."""


COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Canonical spelling of the names whose case is not simply Title-Case.
_CANONICAL = {
    n.lower(): n
    for n in (
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "MIME-Version",
        "RAck",
        "RSeq",
        "SIP-ETag",
        "SIP-If-Match",
        "P-Asserted-Identity",
        "Min-SE",
    )
}
_CANONICAL.update({short: long for short, long in COMPACT_FORMS.items()})

# Headers whose value is a comma-separated list (RFC 3261 7.3.1): several values may share
# one header line. The authentication headers are not lists: a comma is part of a challenge.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "allow-events",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "in-reply-to",
    }
)

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_STATUS_LINE = re.compile(r"SIP/(\d+\.\d+) (\d{3})(?: (.*))?")
_CONTENT_LENGTH_LINE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t\r]*$")
_MAX_DELTA = 2**32 - 1


def canonical_name(name: str) -> str:
    """``i`` → ``Call-ID``, ``content-length`` → ``Content-Length``, ``cseq`` → ``CSeq``."""
    known = _CANONICAL.get(name)
    if known is not None:
        return known
    lower = name.lower()
    known = _CANONICAL.get(lower)
    if known is None:
        known = "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_CANONICAL) < 4096:  # memo: the same few names arrive all day
        _CANONICAL[name] = known
    return known


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, keeping commas inside quotes and ``<...>``."""
    items: list[str] = []
    start = 0
    quoted = False
    angle = False
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(value[start:i].strip())
            start = i + 1
    if quoted:
        raise SipParseError(f"unterminated quoted string in {value!r}")
    items.append(value[start:].strip())
    return [item for item in items if item]


@dataclass
class SipMessage:
    """Headers in order as ``(canonical name, value)`` pairs, and the body."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of a header (the first list element for list headers), or None."""
        values = self.get_all(name, limit=1)
        return values[0] if values else None

    def get_all(self, name: str, *, limit: int | None = None) -> list[str]:
        """All values of a header, in order; list headers are split at their commas."""
        wanted = canonical_name(name)
        is_list = wanted.lower() in LIST_HEADERS
        values: list[str] = []
        for header, value in self.headers:
            if header != wanted:
                continue
            values.extend(split_list(value) if is_list else [value])
            if limit is not None and len(values) >= limit:
                return values[:limit]
        return values

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical_name(name), value))

    def _head_lines(self) -> list[str]:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends and a Content-Length that matches the body."""
        lines = self._head_lines()
        for name, value in self.headers:
            if name != "Content-Length":
                if "\r" in value or "\n" in value:
                    raise ValueError(f"line break in the value of {name}")
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode() + self.body


@dataclass
class SipRequest(SipMessage):
    method: str = "REGISTER"
    uri: str = ""

    def _head_lines(self) -> list[str]:
        return [f"{self.method} {self.uri} SIP/2.0"]


@dataclass
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def _head_lines(self) -> list[str]:
        return [f"SIP/2.0 {self.status} {self.reason}"]


def _parse_start_line(line: str) -> SipRequest | SipResponse:
    if line.startswith("SIP/"):
        m = _STATUS_LINE.fullmatch(line)
        if not m:
            raise SipParseError(f"malformed status line {line[:80]!r}")
        version, code, reason = m.groups()
        if version != "2.0":
            raise SipParseError(f"unsupported SIP version SIP/{version}")
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range 100-699")
        return SipResponse(status=status, reason=(reason or "").strip())
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"malformed request line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise SipParseError(f"malformed method {method[:40]!r}")
    if version != "SIP/2.0":
        raise SipParseError(f"unsupported or malformed version {version[:20]!r} in request line")
    if not uri or ":" not in uri:
        raise SipParseError(f"malformed Request-URI {uri[:80]!r}")
    return SipRequest(method=method, uri=uri)


def _parse_content_length(values: list[str]) -> int | None:
    if not values:
        return None
    if len(set(values)) > 1:
        raise SipParseError(f"conflicting Content-Length values {values}")
    text = values[0]
    if not text.isdigit() or not text.isascii():
        raise SipParseError(f"malformed Content-Length {text[:20]!r}")
    return int(text)


def parse_message(data: bytes | bytearray | memoryview) -> SipRequest | SipResponse:
    """Parse one SIP message (RFC 3261 section 7).

    Leading CRLFs are skipped, folded header lines are joined, compact header names are
    expanded, and the body is cut at Content-Length (a body shorter than Content-Length
    is an error: a truncated datagram). Raises ``SipParseError`` on any malformed input.
    """
    raw = bytes(data).lstrip(b"\r\n")
    if not raw:
        raise SipParseError("empty message")
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        # Bare-LF senders exist; accept them, but only when no CRLF blank line was found.
        head, sep, rest = raw.partition(b"\n\n")
        if not sep:
            raise SipParseError("no empty line after the headers (truncated message?)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"headers are not valid UTF-8 (byte {exc.start})") from None
    lines = text.split("\n")
    message = _parse_start_line(lines[0].rstrip("\r"))
    headers = message.headers
    for line in lines[1:]:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if not headers:
                raise SipParseError("continuation line before the first header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(name):
            raise SipParseError(f"malformed header line {line[:80]!r}")
        headers.append((canonical_name(name), value.strip()))
    length = _parse_content_length([v for n, v in headers if n == "Content-Length"])
    if length is None:
        message.body = rest
    elif len(rest) < length:
        raise SipParseError(f"body has {len(rest)} bytes, Content-Length says {length}")
    else:
        message.body = rest[:length]
    return message


class StreamFramer:
    """Split a SIP byte stream (TCP, RFC 3261 18.3) into messages by Content-Length.

    ``feed(data)`` returns the complete messages received so far, as bytes. CRLF keep-alives
    between messages (RFC 5626) are dropped. A header block without Content-Length, or one
    larger than ``max_header_bytes``, raises ``SipParseError``; the stream cannot be
    resynchronised after that, so the caller should close the connection.
    """

    def __init__(self, max_header_bytes: int = 65536) -> None:
        self._buffer = bytearray()
        self._max = max_header_bytes

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        buf += data
        messages: list[bytes] = []
        while True:
            start = 0
            while buf[start : start + 2] == b"\r\n":
                start += 2
            if start:
                del buf[:start]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max:
                    raise SipParseError(f"no end of headers within {self._max} bytes")
                return messages
            head = bytes(buf[:end])
            found = [m.decode("ascii", "replace") for m in _CONTENT_LENGTH_LINE.findall(head)]
            length = _parse_content_length(found)
            if length is None:
                raise SipParseError("message on a stream without Content-Length")
            total = end + 4 + length
            if len(buf) < total:
                return messages
            messages.append(bytes(buf[:total]))
            del buf[:total]


def parse_cseq(value: str | None) -> tuple[int, str]:
    """``"42 REGISTER"`` → ``(42, "REGISTER")``."""
    if value is None:
        raise SipParseError("missing CSeq")
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN.fullmatch(parts[1]):
        raise SipParseError(f"malformed CSeq {value[:40]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError(f"CSeq number {number} too large")
    return number, parts[1]


def parse_expires(value: str) -> int:
    """Delta-seconds of an Expires header or an ``expires`` param (capped at 2**32-1)."""
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise SipParseError(f"malformed expires value {value[:20]!r}")
    return min(int(text), _MAX_DELTA)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _parse_params(text: str) -> dict[str, str | None]:
    """``;a=1;b;c="x;y"`` → ``{"a": "1", "b": None, "c": "x;y"}`` (names lower-cased)."""
    params: dict[str, str | None] = {}
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted:
        raise SipParseError(f"unterminated quoted string in parameters {text[:60]!r}")
    parts.append("".join(current))
    for part in parts:
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not _TOKEN.fullmatch(name):
            raise SipParseError(f"malformed parameter {part[:40]!r}")
        params[name.lower()] = _unquote(value.strip()) if eq else None
    return params


@dataclass(frozen=True)
class NameAddr:
    """A From, To or Contact value: display name, URI and header parameters."""

    uri: str
    display: str = ""
    params: dict[str, str | None] = field(default_factory=dict)


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Bob" <sip:bob@host>;tag=1``, ``<sip:bob@host>``, ``sip:bob@host;expires=60``.

    In the addr-spec form (no angle brackets) every ``;param`` belongs to the header,
    as RFC 3261 20 says.
    """
    text = value.strip()
    if text == "*":
        return NameAddr(uri="*")
    if "<" in text:
        lt = text.index("<")
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in {value[:80]!r}")
        display = _unquote(text[:lt].strip())
        uri = text[lt + 1 : gt].strip()
        rest = text[gt + 1 :].strip()
        if rest and not rest.startswith(";"):
            raise SipParseError(f"unexpected text after '>' in {value[:80]!r}")
    else:
        display = ""
        uri, _, rest = text.partition(";")
        rest = ";" + rest if rest else ""
    if ":" not in uri or " " in uri:
        raise SipParseError(f"malformed URI {uri[:80]!r}")
    return NameAddr(uri=uri, display=display, params=_parse_params(rest))


def uri_key(uri: str) -> str:
    """A comparison key for SIP URIs: scheme, user, host (lower case) and port; no params."""
    scheme, colon, rest = uri.partition(":")
    if not colon:
        raise SipParseError(f"malformed URI {uri[:80]!r}")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, hostport = rest.rpartition("@")
    return f"{scheme.lower()}:{user}{at}{hostport.lower()}"


def contact_expires(response: SipResponse, contact_uri: str) -> int | None:
    """The expiry a registrar granted to ``contact_uri`` (RFC 3261 10.2.4).

    The ``expires`` param of the matching Contact wins, then the Expires header; None
    when the response says neither.
    """
    wanted = uri_key(contact_uri)
    for value in response.get_all("Contact"):
        contact = parse_name_addr(value)
        if contact.uri != "*" and uri_key(contact.uri) == wanted:
            param = contact.params.get("expires")
            if param is not None:
                return parse_expires(param)
            break
    header = response.get("Expires")
    return parse_expires(header) if header is not None else None


def build_response(request: SipRequest, status: int, reason: str, to_tag: str) -> SipResponse:
    """A stateless response to ``request`` (RFC 3261 8.2.6): Via, From, Call-ID, CSeq copied."""
    response = SipResponse(status=status, reason=reason)
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            response.headers.append((name, value))
        elif name == "To":
            tagged = value if "tag" in parse_name_addr(value).params else f"{value};tag={to_tag}"
            response.headers.append((name, tagged))
    return response


# RFC 8760's algorithms, weakest first: a server may offer several challenges, and the
# client answers the strongest it supports.
SUPPORTED_ALGORITHMS = {
    "md5": "MD5", "md5-sess": "MD5-sess",
    "sha-256": "SHA-256", "sha-256-sess": "SHA-256-sess",
    "sha-512-256": "SHA-512-256", "sha-512-256-sess": "SHA-512-256-sess",
}  # fmt: skip
_STRENGTH = {name: n // 2 for n, name in enumerate(SUPPORTED_ALGORITHMS.values())}


@dataclass(frozen=True)
class DigestChallenge:
    """A parsed ``Digest`` challenge (RFC 2617 3.2.1, RFC 8760)."""

    realm: str
    nonce: str
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    algorithm: str = "MD5"
    stale: bool = False


def _parse_auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        m = _TOKEN.match(text, i)
        if not m:
            raise SipParseError(f"malformed challenge parameter at {text[i : i + 30]!r}")
        name = m.group().lower()
        i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise SipParseError(f"challenge parameter {name!r} has no value")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                raise SipParseError(f"unterminated quoted value of {name!r}")
            i += 1
            value = "".join(chars)
        else:
            m = _TOKEN.match(text, i)
            if not m:
                raise SipParseError(f"challenge parameter {name!r} has a malformed value")
            value = m.group()
            i = m.end()
        params[name] = value
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise SipParseError(f"expected ',' after {name!r} in challenge")
    return params


def parse_digest_challenge(value: str) -> DigestChallenge:
    """Parse one ``WWW-Authenticate`` / ``Proxy-Authenticate`` value.

    Raises ``UnsupportedChallenge`` for a scheme other than Digest or an algorithm not in
    ``SUPPORTED_ALGORITHMS`` (e.g. SHA-1), ``SipParseError`` for malformed text.
    """
    scheme, _, rest = value.strip().partition(" ")
    if not scheme:
        raise SipParseError("empty authentication challenge")
    if scheme.lower() != "digest":
        raise UnsupportedChallenge(f"authentication scheme {scheme[:20]!r} is not supported")
    params = _parse_auth_params(rest)
    for required in ("realm", "nonce"):
        if required not in params:
            raise SipParseError(f"digest challenge without {required}")
    algorithm = params.get("algorithm", "MD5")
    canonical = SUPPORTED_ALGORITHMS.get(algorithm.lower())
    if canonical is None:
        raise UnsupportedChallenge(
            f"digest algorithm {algorithm[:20]!r} is not supported "
            f"(only {', '.join(SUPPORTED_ALGORITHMS.values())})"
        )
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        qop=qop,
        opaque=params.get("opaque"),
        algorithm=canonical,
        stale=params.get("stale", "").lower() == "true",
    )


def choose_challenge(values: Iterable[str]) -> DigestChallenge:
    """The strongest challenge this client can answer (RFC 8760 lets a server offer
    several, in its order of preference: of equal strength, the first).

    Raises the first ``SipParseError`` met when none fits, or one saying there was none.
    """
    first_error: SipParseError | None = None
    best: DigestChallenge | None = None
    for value in values:
        try:
            challenge = parse_digest_challenge(value)
        except SipParseError as exc:
            first_error = first_error or exc
            continue
        if challenge.qop and not {"auth", "auth-int"} & set(challenge.qop):
            first_error = first_error or UnsupportedChallenge(
                f"qop {','.join(challenge.qop)!r} is not supported (only auth, auth-int)"
            )
            continue
        if best is None or _STRENGTH[challenge.algorithm] > _STRENGTH[best.algorithm]:
            best = challenge
    if best is not None:
        return best
    raise first_error or SipParseError("authentication requested without a challenge")
