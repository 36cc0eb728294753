"""Talking to this node's peer API as its peer would: sealed, signed requests from the
peer's id, and answers opened and checked the way core.peer.PeerClient checks them."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from core import signing

PEER_ID = "6b0c1e9e-0000-4000-8000-0000000000bb"


class PeerAnswer:
    """A response of the peer API, its body opened (an unsigned refusal is plain JSON)."""

    def __init__(self, response: Any, *, secret: str, nonce: str, me: str) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.verified = False
        body = response.content
        if signing.HEADER_SIGNATURE in response.headers:
            body = signing.verify_response(
                secret=secret, status=response.status_code, request_nonce=nonce,
                body=body, headers=response.headers, me=me,
            )  # fmt: skip
            self.verified = True
        self.content = body

    def json(self) -> Any:
        return json.loads(self.content)


def peer_send(
    path: str,
    payload: Any = None,
    *,
    secret: str,
    method: str = "POST",
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    sender: str = PEER_ID,
    receiver: str = "",
    node: str = "kws-b",
    seal: bool = True,
    now: float | None = None,
) -> tuple[PeerAnswer, signing.Signed, dict[str, str], bytes]:
    """Send one request; return the answer, the signed message, the headers sent and the
    body as sent (to replay them)."""
    body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
    message = signing.sign_request(
        secret=secret, node=node, method=method, path=path, body=body, sender=sender,
        receiver=receiver, seal=seal, now=now,
    )  # fmt: skip
    sent = {**message.headers, **(headers or {})}
    # A sealed body goes with every method, GET included, as the peer client sends it.
    response = Client().generic(method, path, message.body,
                                content_type="application/octet-stream", headers=sent)  # fmt: skip
    answer = PeerAnswer(response, secret=secret, nonce=message.nonce, me=sender)
    return answer, message, sent, message.body


def replay(path: str, body: bytes, headers: dict[str, str]) -> Any:
    return Client().post(path, body, content_type="application/octet-stream", headers=headers)
