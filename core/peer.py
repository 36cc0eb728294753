"""The peer API's transport: a signed HTTP client and the decorator for its endpoints.

Payloads are JSON, sealed (encrypted) and signed both ways with keys derived for each
direction (see ``signing``): a request names this server as its sender and the peer
as its receiver (once the peer's id is known from its heartbeat), and a request that
claims this server as sender, or another server as receiver, is refused. A refused
message is answered 401 and logged once per cause and sender until that sender is
heard from validly again (``core.services.refusal_record``).
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.datastructures import CaseInsensitiveMapping
from django.views.decorators.csrf import csrf_exempt

from core import config, signing
from core.models import NodeState, SeenNonce
from core.selectors import config_read
from core.services import refusal_record, refusals_forget

logger = logging.getLogger(__name__)


class PeerError(Exception):
    """The peer could not be reached, or did not answer properly."""


def node_id() -> str:
    """This server's id in signed messages."""
    return NodeState.load().node_id


def peer_node_id() -> str:
    """The peer's id as its last valid heartbeat said ('' before one arrived)."""
    value = (NodeState.load().peer_status or {}).get("node_id")
    return value if isinstance(value, str) and len(value) <= 64 else ""


class PeerClient:
    def __init__(
        self,
        *,
        peer: str,
        secret: str,
        node: str,
        timeout: float = 2.0,
        sender: str = "",
        receiver: str = "",
    ) -> None:
        self.host, self.port = config.split_peer(peer)
        self.secret = secret
        self.node = node
        self.timeout = timeout
        self.sender = sender
        self.receiver = receiver

    @classmethod
    def from_config(cls, timeout: float = 2.0, values: dict[str, Any] | None = None) -> PeerClient:
        """A client for the configured peer (``values``: the configuration, if read already)."""
        values = values or config_read()
        return cls(
            peer=values["redundancy.peer"],
            secret=values["redundancy.secret"],
            node=settings.NODE_NAME,
            timeout=timeout,
            sender=node_id(),
            receiver=peer_node_id(),
        )

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """Send a sealed, signed request and return the verified JSON answer; PeerError
        otherwise."""
        body = b"" if payload is None else json.dumps(payload).encode()
        signed = signing.sign_request(
            secret=self.secret, node=self.node, method=method, path=path, body=body,
            sender=self.sender, receiver=self.receiver, seal=True,
        )  # fmt: skip
        headers = {**signed.headers, "Content-Type": "application/octet-stream"}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=signed.body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PeerError(f"peer {self.host}:{self.port} unreachable: {exc}") from None
        finally:
            conn.close()
        try:
            data = signing.verify_response(
                secret=self.secret,
                status=response.status,
                request_nonce=signed.nonce,
                body=data,
                # By case-insensitive name: HTTP/1.1 servers may send them lower-cased.
                headers=CaseInsensitiveMapping(dict(response.getheaders())),
                me=self.sender,
            )
        except signing.SignatureError as exc:
            raise PeerError(f"peer answered {response.status} unsigned or wrongly: {exc}") from None
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            raise PeerError("peer answered with malformed JSON") from None
        if response.status >= 400:
            detail = answer.get("error") if isinstance(answer, dict) else answer
            raise PeerError(f"peer refused {method} {path}: {response.status} {detail}")
        return answer


def peer_refusal_record(*, cause: str, reason: str, request: HttpRequest) -> None:
    """Log a refused peer message once per cause and sender address, not at every beat
    (the node name a message claims is unverified: it names, it does not key)."""
    address = request.META.get("REMOTE_ADDR", "?")
    claimed = request.headers.get(signing.HEADER_NODE, "")[:40]
    sender = f"{address} ({claimed})" if claimed else address
    refusal_record(
        kind="peer_refused",
        key=f"{cause}|{address}",
        message=f"Refused a peer message from {sender}: {reason}",
    )


def nonce_remember(nonce: str) -> bool:
    """Store a nonce; False if it was seen before (a replay)."""
    try:
        with transaction.atomic():
            SeenNonce.objects.create(nonce=nonce, seen_at=timezone.now())
    except IntegrityError:
        return False
    return True


def nonce_purge() -> int:
    """Forget nonces whose messages would be refused as stale anyway."""
    cutoff = timezone.now() - timedelta(seconds=2 * signing.MAX_SKEW)
    deleted, _ = SeenNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


def request_verify(request: HttpRequest, secret: str, *, me: str = "") -> signing.Opened:
    """Check the signature, age and direction of a Django request (peer or device), open a
    sealed body; SignatureError. A body shorter than its Content-Length (the sender gave
    up waiting before it was read) is said to be that, not a wrong signature."""
    try:
        expected = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        expected = 0
    if expected and len(request.body) < expected:
        raise signing.SignatureError(
            f"incomplete message: {len(request.body)} of {expected} bytes arrived (the sender "
            "gave up before this server read it: is this server overloaded?)",
            "incomplete",
        )
    return signing.verify_request(
        secret=secret,
        method=request.method or "",
        path=request.get_full_path(),
        body=request.body,
        headers=request.headers,
        me=me,
    )


PeerView = Callable[[HttpRequest, Any], tuple[int, Any]]


def peer_endpoint(view: PeerView) -> Callable[[HttpRequest], HttpResponse]:
    """Authenticate a peer request, decode its JSON, sign the answer of ``view``."""

    @functools.wraps(view)
    @csrf_exempt
    @login_not_required
    def wrapper(request: HttpRequest) -> HttpResponse:
        secret = config_read()["redundancy.secret"]
        me = node_id()
        try:
            signed = request_verify(request, secret, me=me)
            if not signed.sealed:
                raise signing.SignatureError(
                    "unsealed message: the peer API carries only sealed bodies", "unsealed"
                )
        except signing.SignatureError as exc:
            peer_refusal_record(cause=exc.cause, reason=str(exc), request=request)
            return JsonResponse({"error": str(exc)}, status=401)
        if not nonce_remember(signed.nonce):
            peer_refusal_record(
                cause="replayed", reason="replayed message (nonce seen before)", request=request
            )
            return JsonResponse({"error": "replayed message"}, status=401)
        # A valid message: a refusal of this sender that returns later is logged again.
        refusals_forget(kind="peer_refused", who=request.META.get("REMOTE_ADDR", "?"))
        try:
            payload = json.loads(signed.body) if signed.body else None
        except ValueError:
            status, answer = 400, {"error": "malformed JSON"}
        else:
            try:
                status, answer = view(request, payload)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # A payload of a shape the view did not expect: refused, never a 500.
                logger.warning("peer %s refused a malformed payload: %r", request.path, exc)
                status, answer = 400, {"error": "malformed payload"}
        headers, body = signing.sign_response(
            secret=secret,
            node=settings.NODE_NAME,
            status=status,
            request_nonce=signed.nonce,
            body=json.dumps(answer).encode(),
            responder=me,
            requester=signed.sender,
            seal=True,
        )
        response = HttpResponse(body, status=status, content_type="application/octet-stream")
        for name, value in headers.items():
            response[name] = value
        if status == 503:
            # "My engine is not deciding" is the peer protocol's answer (at every start, and
            # while a worker is down, which the node's own health events report), not an
            # error of the web server for django.request to log at every beat.
            response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    return wrapper
