"""The pair's heartbeats through the web server's ASGI application as uvicorn runs it: a
message whose sender gave up before it was read is refused as incomplete, not as wrongly
signed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from core import signing
from core.models import Event
from kws_admin import asgi
from tests.peer import PEER_ID
from tests.redundancy.test_peer_api import PATH, SECRET, backup_status, master  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("licensed")]


def heartbeat() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(backup_status()).encode()
    message = signing.sign_request(secret=SECRET, node="kws-b", method="POST", path=PATH,
                                   body=body, sender=PEER_ID, seal=True)  # fmt: skip
    headers = {**message.headers, "content-type": "application/octet-stream",
               "content-length": str(len(message.body))}  # fmt: skip
    return message.body, headers


async def call(
    body: bytes, headers: dict[str, str], *, cut: int | None = None
) -> tuple[int, bytes]:
    """One request through the application; ``cut``: the sender sends that many bytes of
    the body, then goes away."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    messages = (
        [{"type": "http.request", "body": body, "more_body": False}]
        if cut is None
        else [{"type": "http.request", "body": body[:cut], "more_body": True},
              {"type": "http.disconnect"}]
    )  # fmt: skip
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await asyncio.wait_for(asgi.application(scope, receive, send), timeout=10)
    return out["status"], out["body"]


def test_a_heartbeat_whose_sender_gave_up_is_refused_as_incomplete(master):  # noqa: F811
    body, headers = heartbeat()
    status, answer = asyncio.run(call(body, headers, cut=len(body) // 2))
    assert status == 401
    assert "incomplete message" in json.loads(answer)["error"]
    messages = list(Event.objects.filter(kind="peer_refused").values_list("message", flat=True))
    assert any("incomplete message" in m for m in messages), messages
    assert not any("wrong signature" in m for m in messages)
    # The whole message, sent again, is taken.
    assert asyncio.run(call(*heartbeat()))[0] == 200
