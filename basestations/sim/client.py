"""The device side of the device API: signed keep-alives and probes over HTTP/1.1.

``AsyncClient`` (asyncio streams: thousands of devices in one thread) is what
the simulators use; ``keepalive_once`` is a blocking one-shot for tests and
diagnosis. No Django: a simulator is a plain network client of a node.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from basestations import protocol, udp
from core import signing


class Unreachable(Exception):
    """The server did not answer; ``refused`` when the connection was refused (it is down)."""

    def __init__(self, address: str, reason: str, *, refused: bool) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason
        self.refused = refused


class Headers(dict):
    """Response headers by case-insensitive name (servers may change the case)."""

    def __init__(self, pairs: Mapping[str, str] | list[tuple[str, str]] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    # Whether the answer was signed with the device secret over our request's nonce.
    verified: bool = False


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _signed_request(
    secret: str, mac: str, body: bytes, path: str = protocol.KEEPALIVE_PATH
) -> tuple[signing.Signed, dict[str, str]]:
    """A request (a keep-alive by default) signed with this device's own key (derived from
    the system's device secret and its MAC, as the servers derive it), from its MAC to any
    server."""
    signed = signing.sign_request(
        secret=signing.device_key(secret, mac), node=mac, method="POST",
        path=path, body=body, sender=mac,
    )  # fmt: skip
    return signed, {**signed.headers, "Content-Type": "application/json"}


def _answer(
    secret: str, nonce: str, status: int, headers: Headers, data: bytes, mac: str
) -> Answer:
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = {"error": f"malformed JSON answer: {data[:80]!r}"}
    if not isinstance(body, dict):
        body = {"error": f"unexpected answer: {body!r:.80}"}
    try:
        signing.verify_response(
            secret=signing.device_key(secret, mac), status=status, request_nonce=nonce,
            body=data, headers=headers, me=mac,
        )  # fmt: skip
        verified = True
    except signing.SignatureError:
        verified = False
    return Answer(status, body, verified)


# Seconds a device declines a server's invitation to datagrams after one of them was not
# answered or was refused: a firewall that drops them costs one missed keep-alive a minute,
# not every other one.
DATAGRAM_PAUSE = 60.0
# Idle connections a device keeps per server (its keep-alives, probes and handset channel
# may overlap).
IDLE_PER_SERVER = 2

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AsyncClient:
    """Keep-alives, probes and the handset channel of one device, over persistent HTTP/1.1
    connections (one per request in flight, kept open between requests).

    Why: a new TCP connection per keep-alive cost the server about half of its work per
    keep-alive (accepting, the protocol's set-up, closing). A device still notices a dead
    server at once: its idle connection is closed by the server's kernel, and the request
    goes out on a new connection that is refused. A request on a reused connection that the
    server closed meanwhile (its keep-alive timeout, a restart) is sent once more on a new
    one, signed again (so it is never a replay)."""

    def __init__(self, *, secret: str, mac: str, timeout: float = 2.0,
                 datagrams: bool = True) -> None:  # fmt: skip
        self.secret = secret
        self.mac = mac
        self.timeout = timeout
        # Keep alive in datagrams with the servers that invite them (basestations.udp).
        self.datagrams = datagrams
        self._idle: dict[str, list[Connection]] = {}
        self._invited: set[str] = set()
        self._declined: dict[str, float] = {}  # server -> monotonic time until declined
        self._channels: dict[str, _Channel] = {}
        self.answered_in_datagrams = 0  # keep-alives a server answered in a datagram

    async def keepalive(self, address: str, report: protocol.KeepAlive) -> Answer:
        """A keep-alive to ``address``: in a datagram when that server invited them (over
        HTTP at once when it refuses the datagram or sends it to HTTP; a datagram not
        answered is a missed keep-alive; after either, HTTP for ``DATAGRAM_PAUSE``), else
        over HTTP."""
        if address in self._invited:
            try:
                answer = await self._datagram(address, report)
            except Unreachable as exc:
                self._uninvite(address)
                self._declined[address] = time.monotonic() + DATAGRAM_PAUSE
                if not exc.refused:
                    raise
            else:
                if answer.status != udp.USE_HTTP:
                    self.answered_in_datagrams += 1
                    if not answer.body.get(udp.ADVERT):
                        self._uninvite(address)
                    return answer
        answer = await self.post(address, protocol.KEEPALIVE_PATH, report, self.timeout)
        if self.datagrams and answer.status in (200, 409) and answer.verified:
            invited = answer.body.get(udp.ADVERT) is True
            if invited and time.monotonic() >= self._declined.get(address, 0.0):
                self._invited.add(address)
                self._idle_close(address)  # keep-alives go in datagrams from now on
        return answer

    async def post(self, address: str, path: str, payload: dict, timeout: float) -> Answer:
        """A signed POST of ``payload`` to ``path`` (a keep-alive, the handset channel)."""
        body = json.dumps(payload).encode()
        nonces: list[str] = []

        def headers() -> dict[str, str]:
            signed, signed_headers = _signed_request(self.secret, self.mac, body, path)
            nonces.append(signed.nonce)
            return signed_headers

        status, answer_headers, data = await self._call(address, "POST", path, body, headers,
                                                        timeout)  # fmt: skip
        return _answer(self.secret, nonces[-1], status, answer_headers, data, self.mac)

    async def probe(self, address: str, timeout: float = 1.0) -> bool:
        try:
            status, _, _ = await self._call(address, "GET", protocol.PROBE_PATH, b"", dict,
                                            timeout)  # fmt: skip
        except Unreachable:
            return False
        return status == 200

    def close(self) -> None:
        """Close the idle connections and the datagram sockets (the device stops)."""
        for address in list(self._idle):
            self._idle_close(address)
        for address in list(self._channels):
            self._uninvite(address)

    def _idle_close(self, address: str) -> None:
        for _, writer in self._idle.pop(address, ()):
            writer.close()

    def _uninvite(self, address: str) -> None:
        self._invited.discard(address)
        channel = self._channels.pop(address, None)
        if channel is not None and channel.transport is not None:
            channel.transport.close()

    async def _datagram(self, address: str, report: protocol.KeepAlive) -> Answer:
        body = json.dumps(report).encode()
        signed, _ = _signed_request(self.secret, self.mac, body)
        data = udp.request_bytes(protocol.KEEPALIVE_PATH, signed.headers, body)
        if len(data) > udp.MAX_DATAGRAM:
            return Answer(udp.USE_HTTP)

        def answer_of(status: int, headers: Headers, raw: bytes) -> Answer | None:
            if status == udp.USE_HTTP:
                return Answer(status)
            answer = _answer(self.secret, signed.nonce, status, headers, raw, self.mac)
            return answer if answer.verified else None  # a late answer to an earlier one

        channel = None
        try:
            async with asyncio.timeout(self.timeout):
                channel = self._channels.get(address)
                if channel is None or channel.transport is None:
                    _, channel = await asyncio.get_running_loop().create_datagram_endpoint(
                        _Channel, remote_addr=split_address(address)
                    )
                    self._channels[address] = channel
                return await channel.exchange(data, answer_of)
        except ConnectionRefusedError:
            raise Unreachable(address, "datagram refused", refused=True) from None
        except TimeoutError:
            raise Unreachable(address, f"no answer within {self.timeout:g} s",
                              refused=False) from None  # fmt: skip
        except (OSError, ValueError) as exc:
            raise Unreachable(address, f"{type(exc).__name__}: {exc}", refused=False) from None
        finally:
            if channel is not None:
                channel.waiting = None

    async def _call(
        self, address: str, method: str, path: str, body: bytes,
        headers: Callable[[], dict[str, str]], timeout: float,
    ) -> tuple[int, Headers, bytes]:  # fmt: skip
        try:
            host, port = split_address(address)
        except ValueError:
            raise Unreachable(address, "not a host:port address", refused=True) from None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    connection = self._idle_take(address)
                    reused = connection is not None
                    if connection is None:
                        connection = await asyncio.open_connection(host, port)
                    try:
                        return await self._exchange(address, connection, method, path, body,
                                                    headers())  # fmt: skip
                    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
                        if not reused:
                            raise
                        # The server closed this idle connection: once more on a new one.
        except ConnectionRefusedError:
            raise Unreachable(address, "connection refused", refused=True) from None
        except TimeoutError:
            raise Unreachable(address, f"no answer within {timeout:g} s", refused=False) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise Unreachable(address, f"{type(exc).__name__}: {exc}", refused=False) from None

    async def _exchange(
        self, address: str, connection: Connection, method: str, path: str, body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, Headers, bytes]:  # fmt: skip
        """One request and its answer on ``connection``, kept for the next request when both
        sides allow it, closed otherwise (an error, a cancellation, ``Connection: close``)."""
        reader, writer = connection
        kept = False
        try:
            head = [
                f"{method} {path} HTTP/1.1", f"Host: {address}",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items()),
            ]  # fmt: skip
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            status, answer_headers, data, kept = await _read_response(reader)
            return status, answer_headers, data
        finally:
            if kept:
                self._idle_put(address, connection)
            else:
                writer.close()

    def _idle_take(self, address: str) -> Connection | None:
        connections = self._idle.get(address)
        while connections:
            reader, writer = connections.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    def _idle_put(self, address: str, connection: Connection) -> None:
        connections = self._idle.setdefault(address, [])
        if len(connections) < IDLE_PER_SERVER:
            connections.append(connection)
        else:
            connection[1].close()


# Whether a datagram answers the keep-alive in flight: its Answer, else None.
AnswerOf = Callable[[int, Headers, bytes], Answer | None]


class _Channel(asyncio.DatagramProtocol):
    """One device's datagram socket to one server (connected: a refusal comes back as
    ConnectionRefusedError), one keep-alive in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: asyncio.Future | None = None
        self._answer_of: AnswerOf | None = None

    async def exchange(self, data: bytes, answer_of: AnswerOf) -> Answer:
        """Send ``data``; the first answer that ``answer_of`` accepts."""
        assert self.transport is not None
        self.waiting = asyncio.get_running_loop().create_future()
        self._answer_of = answer_of
        self.transport.sendto(data)
        return await self.waiting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiting is None or self.waiting.done() or self._answer_of is None:
            return
        try:
            status, headers, body = udp.response_parse(data)
        except ValueError:
            return
        answer = self._answer_of(status, Headers(headers), body)
        if answer is not None:
            self.waiting.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(exc or ConnectionResetError("datagram socket closed"))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, Headers, bytes, bool]:
    """The status, headers and body of one answer, and whether the connection may carry
    the next request (HTTP/1.1, its length known, no ``Connection: close``)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    status = int(parts[1])
    headers = Headers(
        [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    )
    reusable = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = b""
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            data += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()  # the (empty) trailer
    elif "content-length" in headers:
        data = await reader.readexactly(int(headers["content-length"]))
    else:
        data, reusable = await reader.read(), False
    return status, headers, data, reusable


def keepalive_once(
    *, server: str, secret: str, report: protocol.KeepAlive, sign: bool = True, timeout: float = 5.0
) -> Answer:
    """Send one keep-alive (blocking) and return the answer; ``sign=False`` sends it
    unsigned. Raises Unreachable when the server does not answer."""
    body = json.dumps(report).encode()
    if sign:
        signed, headers = _signed_request(secret, report["mac"], body)
        nonce = signed.nonce
    else:
        headers, nonce = {"Content-Type": "application/json"}, ""
    host, port = split_address(server)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", protocol.KEEPALIVE_PATH, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except ConnectionRefusedError:
        raise Unreachable(server, "connection refused", refused=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(server, str(exc), refused=False) from None
    finally:
        conn.close()
    return _answer(
        secret, nonce, response.status, Headers(response.getheaders()), data, report["mac"]
    )
