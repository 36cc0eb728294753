"""Keep-alives in UDP datagrams: the fast path of the device API, beside HTTP.

Why: measured with ``bench/keepalive.py`` (1000 devices at one keep-alive a second), a
keep-alive answered from memory over HTTP still cost the web server about 0.3 ms of CPU,
most of it uvicorn's HTTP handling and the two writes of its answer (even with persistent
connections, which halved the cost of a new TCP connection per keep-alive): 1000 base
stations took a third of a core. A datagram costs one read and one write of the socket.

What: a keep-alive datagram is the HTTP request a device would send (its request line
names the path and ``KWS-UDP/1``, then the signed headers and the body), to the UDP port
of the same number as the server's HTTP port; the answer is one datagram (``KWS-UDP/1``,
the status, the signed headers, the body). Only what the web server answers from memory
(``basestations.attached``: the steady state and the arrivals) is answered so; anything
else (an unknown device, old firmware, a replay, a device added since the last reading)
gets ``USE_HTTP``, and the device sends that keep-alive over HTTP, where Django decides
and records it as before. The signing is the HTTP path's: the device's own key, the
stamp newer than its last (no replay), the answer signed over the request's nonce.

A device uses datagrams only with a server whose HTTP answer advertised them
(``"udp": true``, while its web server listens for them), and falls back to HTTP at
once when a datagram is refused (nobody listens on that port: the server is down or
restarted without them; HTTP tells which) and at its next keep-alive when one is not
answered (counted as a missed keep-alive, as a timeout over HTTP is); after either it
declines that server's invitation for a minute (``sim.client.DATAGRAM_PAUSE``): a network
that drops datagrams costs one keep-alive a minute, never the attachment.
"""

from __future__ import annotations

VERSION = "KWS-UDP/1"
# Larger keep-alives (a base station with hundreds of handsets) go over HTTP.
MAX_DATAGRAM = 8192
# The answer to a datagram this path does not decide: send it over HTTP.
USE_HTTP = 426
# The key of the HTTP answer (200) by which a server invites datagrams.
ADVERT = "udp"

_listening = {"port": 0}


def listening() -> bool:
    """Whether this process answers keep-alive datagrams (its answers advertise them)."""
    return bool(_listening["port"])


def listening_set(port: int) -> None:
    _listening["port"] = port


def request_bytes(path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"POST {path} {VERSION}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def request_parse(data: bytes) -> tuple[str, dict[bytes, str], bytes]:
    """The path, the headers (lower-case names) and the body of a keep-alive datagram;
    ValueError when it is none."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != VERSION.encode():
        raise ValueError("not a keep-alive datagram")
    return parts[1].decode("latin-1"), _headers(lines[1:]), body


def response_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"{VERSION} {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def response_parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """The status, the headers (lower-case names) and the body of an answer datagram;
    ValueError when it is none."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    lines = head.split(b"\r\n")
    version, _, status = lines[0].partition(b" ")
    if version != VERSION.encode() or not status.isdigit():
        raise ValueError("not a keep-alive answer")
    headers = {k.decode("latin-1"): v for k, v in _headers(lines[1:]).items()}
    return int(status), headers, body


def _headers(lines: list[bytes]) -> dict[bytes, str]:
    headers = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header")
        headers[name.strip().lower()] = value.strip().decode("latin-1")
    return headers
