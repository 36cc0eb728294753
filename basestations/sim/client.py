"""The device side of the device API: signed keep-alives and probes over HTTP/1.1.

``AsyncClient`` (asyncio streams: thousands of devices in one thread) is what
the simulators use; ``keepalive_once`` is a blocking one-shot for tests and
diagnosis. No Django: a simulator is a plain network client of a node.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from basestations import protocol
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


class AsyncClient:
    """Keep-alives and probes of one device, one short connection each."""

    def __init__(self, *, secret: str, mac: str, timeout: float = 2.0) -> None:
        self.secret = secret
        self.mac = mac
        self.timeout = timeout

    async def keepalive(self, address: str, report: protocol.KeepAlive) -> Answer:
        body = json.dumps(report).encode()
        signed, headers = _signed_request(self.secret, self.mac, body)
        status, answer_headers, data = await self._call(
            address, "POST", protocol.KEEPALIVE_PATH, body, headers, self.timeout
        )
        return _answer(self.secret, signed.nonce, status, answer_headers, data, self.mac)

    async def post(self, address: str, path: str, payload: dict, timeout: float) -> Answer:
        """A signed POST of ``payload`` to ``path`` (the handset channel), its answer."""
        body = json.dumps(payload).encode()
        signed, headers = _signed_request(self.secret, self.mac, body, path)
        status, answer_headers, data = await self._call(address, "POST", path, body, headers,
                                                        timeout)  # fmt: skip
        return _answer(self.secret, signed.nonce, status, answer_headers, data, self.mac)

    async def probe(self, address: str, timeout: float = 1.0) -> bool:
        try:
            status, _, _ = await self._call(address, "GET", protocol.PROBE_PATH, b"", {}, timeout)
        except Unreachable:
            return False
        return status == 200

    async def _call(
        self, address: str, method: str, path: str, body: bytes, headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, Headers, bytes]:  # fmt: skip
        try:
            host, port = split_address(address)
        except ValueError:
            raise Unreachable(address, "not a host:port address", refused=True) from None
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
                head = [
                    f"{method} {path} HTTP/1.1", f"Host: {address}", "Connection: close",
                    f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items()),
                ]  # fmt: skip
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                await writer.drain()
                return await _read_response(reader)
        except ConnectionRefusedError:
            raise Unreachable(address, "connection refused", refused=True) from None
        except TimeoutError:
            raise Unreachable(address, f"no answer within {timeout:g} s", refused=False) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise Unreachable(address, f"{type(exc).__name__}: {exc}", refused=False) from None
        finally:
            if writer is not None:
                writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, Headers, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    status = int(parts[1])
    headers = Headers(
        [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    )
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = b""
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            data += await reader.readexactly(size)
            await reader.readline()
    elif "content-length" in headers:
        data = await reader.readexactly(int(headers["content-length"]))
    else:
        data = await reader.read()
    return status, headers, data


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
