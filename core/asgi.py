"""ASGI plumbing of the web process's native (asyncio) endpoints: reading a request's body,
its headers and client, and sending a whole answer (``messaging.server``,
``basestations.attached``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.utils.datastructures import CaseInsensitiveMapping

Handler = Callable[[dict, Callable, Callable], Awaitable[None]]
MAX_BODY = 256 * 1024


async def body_read(receive: Callable, limit: int = MAX_BODY) -> bytes | None:
    """The request's whole body; None if the client went away or sent more than ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def body_replayed(body: bytes, receive: Callable) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` that gives ``body`` (already read) once, then what ``receive`` gives:
    for handing a request on to another application after reading it."""
    given = False

    async def replay() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def respond(send: Callable, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:  # fmt: skip
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def client_of(scope: dict) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def headers_of(scope: dict) -> CaseInsensitiveMapping:
    return CaseInsensitiveMapping(
        {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    )


def headers_named(scope: dict, names: dict[bytes, str]) -> dict[str, str]:
    """The headers of ``names`` (lower-case wire name -> the name to give it) in a plain
    dict: cheaper than ``headers_of`` on a path that reads a few known headers (ASGI gives
    header names in lower case)."""
    picked = {}
    for name, value in scope.get("headers", ()):
        if (given := names.get(name)) is not None:
            picked[given] = value.decode("latin-1")
    return picked


def path_of(scope: dict) -> str:
    """The path with its query string, as Django's ``get_full_path`` gives it (signed)."""
    query = scope.get("query_string", b"")
    return scope.get("path", "") + ("?" + query.decode("latin-1") if query else "")
