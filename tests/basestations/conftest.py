"""Fixtures of the base stations tests: a device secret, signed keep-alives, roles."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from basestations import attached, protocol
from basestations.services import basestation_create, media_resource_create
from core import signing
from core.models import NodeState
from core.services import config_update

SECRET = "device-secret-for-tests"
MAC = "00:13:D1:0A:0B:01"
MEDIA_MAC = "00:13:D1:0A:0C:01"


@pytest.fixture
def device_secret(db, licensed) -> str:
    config_update(changes={"system.device_secret": SECRET}, actor="test")
    return SECRET


@pytest.fixture
def rfp(db, licensed):
    return basestation_create(actor="test", name="RFP 1", mac=MAC, location="Ward 3")


@pytest.fixture
def media(db, licensed):
    return media_resource_create(actor="test", name="Media 1", mac=MEDIA_MAC, channels=32)


def report(**fields: Any) -> dict[str, Any]:
    """A keep-alive body of base station MAC with good firmware; fields override."""
    return {"mac": MAC, "kind": "rfp", "firmware": "PCS06B", "state": "synced",
            "peer_reachable": True, **fields}  # fmt: skip


Post = Callable[..., Any]


@pytest.fixture
def keepalive(client) -> Post:
    """POST a keep-alive signed by ``signer`` (default: the body's MAC) with its device
    key, derived from ``secret`` (or with ``key`` itself); ``sign=False`` sends it unsigned.
    Returns the response, with ``.answer`` (JSON) and ``.verified`` (signed back over our
    nonce with that key)."""

    def post(body: dict[str, Any] | None = None, *, secret: str = SECRET, signer: str | None = None,
             sign: bool = True, now: float | None = None, remote: str = "10.1.2.3",
             key: str | None = None):  # fmt: skip
        body = report() if body is None else body
        data = json.dumps(body).encode()
        headers: dict[str, str] = {}
        nonce = ""
        signer = signer or body.get("mac", "")
        key = key or signing.device_key(secret, signer)
        if sign:
            signed = signing.sign_request(
                secret=key, node=signer, method="POST", path=protocol.KEEPALIVE_PATH,
                body=data, now=now, sender=signer,
            )  # fmt: skip
            headers, nonce = signed.headers, signed.nonce
        response = client.post(
            protocol.KEEPALIVE_PATH, data, content_type="application/json",
            headers=headers, REMOTE_ADDR=remote,
        )  # fmt: skip
        response.answer = json.loads(response.content)
        try:
            signing.verify_response(
                secret=key, status=response.status_code, request_nonce=nonce,
                body=response.content, headers=response.headers, me=signer,
            )  # fmt: skip
            response.verified = True
        except signing.SignatureError:
            response.verified = False
        return response

    return post


def become_backup(phase: str = "normal", *, master: str = "10.0.0.1:8000") -> None:
    """This server as a joined backup of ``master`` in ``phase``."""
    config_update(
        changes={"redundancy.mode": "slave", "redundancy.peer": master,
                 "redundancy.secret": "pairing-secret-1234"},
        actor="test",
    )  # fmt: skip
    state = NodeState.load()
    state.phase = phase
    state.locked = True
    state.lock_reason = (
        "failover: nothing can be changed" if phase == "failover" else "this server is the backup"
    )
    state.save()


def become_master(peer: str = "10.0.0.2:8001") -> None:
    config_update(
        changes={"redundancy.mode": "master", "redundancy.peer": peer,
                 "redundancy.secret": "pairing-secret-1234"},
        actor="test",
    )  # fmt: skip


@pytest.fixture
def held(device_secret, rfp):
    """The web process's memory as its watcher keeps it, for one test."""
    attached.HELD.__init__()
    attached.HELD.live = True
    attached.step()
    yield attached.HELD
    attached.HELD.__init__()
