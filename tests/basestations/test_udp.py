"""Keep-alive datagrams (basestations.udp) on a real UDP socket of the web server's
endpoint: answered exactly as the HTTP path answers from memory, signed with the device's
key over the request's nonce; anything the HTTP path would hand to Django is sent to HTTP
with nothing written; anything that is not a keep-alive datagram gets no answer."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from django.test import override_settings

from basestations import attached, protocol, udp
from basestations.models import BaseStationLink
from basestations.selectors import keepalive_answer
from basestations.sim.client import Headers
from core import signing
from core.models import Refusal
from core.selectors import config_read
from tests.basestations.conftest import MAC, SECRET, become_backup, report
from tests.basestations.test_attached import Sent

pytestmark = [pytest.mark.django_db(transaction=True)]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def datagram(body: dict, *, secret: str = SECRET) -> tuple[bytes, str]:
    data = json.dumps(body).encode()
    signed = signing.sign_request(
        secret=signing.device_key(secret, body["mac"]), node=body["mac"], method="POST",
        path=protocol.KEEPALIVE_PATH, body=data, sender=body["mac"],
    )  # fmt: skip
    return udp.request_bytes(protocol.KEEPALIVE_PATH, signed.headers, data), signed.nonce


def exchange(*datagrams: bytes, wait: float = 1.0) -> list[bytes | None]:
    """Send each datagram to the web server's endpoint (opened as the web process opens it)
    and return its answer, None when none came within ``wait`` seconds."""
    port = free_udp_port()

    async def run() -> list[bytes | None]:
        with override_settings(DEVICE_UDP=f"127.0.0.1:{port}"):
            endpoint = await attached._datagrams_open()
        assert endpoint is not None and udp.listening()
        try:
            return await asyncio.to_thread(_send_all, port, datagrams, wait)
        finally:
            endpoint.close()
            udp.listening_set(0)

    return asyncio.run(run())


def _send_all(port: int, datagrams: tuple[bytes, ...], wait: float) -> list[bytes | None]:
    answers: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.connect(("127.0.0.1", port))
        for data in datagrams:
            sock.send(data)
            try:
                answers.append(sock.recv(65536))
            except TimeoutError:
                answers.append(None)
    return answers


def opened(answer: bytes | None, nonce: str) -> tuple[int, dict]:
    """An answer's status and body, its signature checked with the device's key."""
    assert answer is not None
    status, headers, body = udp.response_parse(answer)
    signing.verify_response(
        secret=signing.device_key(SECRET, MAC), status=status, request_nonce=nonce,
        body=body, headers=Headers(headers), me=MAC,
    )  # fmt: skip
    return status, json.loads(body)


def link() -> BaseStationLink:
    return BaseStationLink.objects.get()


def test_a_held_device_keeps_alive_in_datagrams_answered_as_over_http(held):
    first = Sent(report())  # its first contact, over HTTP
    attached.step()
    written = link()
    (data, nonce), (data2, nonce2) = datagram(report()), datagram(report())
    answers = exchange(data, data2)
    for answer, expected_nonce in zip(answers, (nonce, nonce2), strict=True):
        status, body = opened(answer, expected_nonce)
        assert status == 200 and body == first.answer
    attached.HELD.written_at = 0.0
    attached.step()  # the contact is written in the batch, as over HTTP
    after = link()
    assert after.last_stamp > written.last_stamp
    assert after.last_keepalive_at > written.last_keepalive_at
    assert after.attached_since == written.attached_since


def test_an_arriving_device_is_attached_by_datagram_and_written_as_django_would(held):
    data, nonce = datagram(report(handsets=["2001"]))
    status, body = opened(exchange(data)[0], nonce)
    assert status == 200 and body["interval"] == attached.keepalive_interval()
    assert MAC in held.devices
    attached.step()
    row = link()
    assert row.last_keepalive_at == row.attached_since and row.ip == "127.0.0.1"
    assert row.firmware == "PCS06B"


def test_what_django_decides_is_sent_to_http_and_nothing_is_written(held):
    old, _ = datagram(report(firmware="PCS05B"))
    unknown, _ = datagram(report(mac="00:13:D1:0A:0B:99"))
    wrong, _ = datagram(report(), secret="not-the-device-secret")
    first, _ = datagram(report())
    answers = exchange(old, unknown, wrong, first, first)  # the last one a replay
    statuses = [udp.response_parse(a)[0] if a else None for a in answers]
    assert statuses == [udp.USE_HTTP, udp.USE_HTTP, udp.USE_HTTP, 200, udp.USE_HTTP]
    assert all(not udp.response_parse(a)[2] for i, a in enumerate(answers) if i != 3)
    attached.step()
    # Only the good keep-alive was written; the refusals are Django's to record over HTTP.
    assert link().firmware == "PCS06B" and not link().refusal
    assert not Refusal.objects.filter(key__contains="PCS05B").exists()


def test_a_datagram_that_is_no_keepalive_gets_no_answer(held):
    data, _ = datagram(report())
    other_path = data.replace(protocol.KEEPALIVE_PATH.encode(), b"/admin/", 1)
    http_request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert exchange(b"\x00" * 40, http_request, other_path, wait=0.3) == [None, None, None]
    assert not BaseStationLink.objects.exists()


def test_the_http_answer_invites_datagrams_only_while_the_web_server_listens(held):
    assert udp.ADVERT not in keepalive_answer(config_read())[1]
    udp.listening_set(8000)
    try:
        assert keepalive_answer(config_read())[1][udp.ADVERT] is True
        become_backup()  # a redirect to the master invites them too
        status, redirect = keepalive_answer(config_read())
        assert status == 409 and redirect[udp.ADVERT] is True
    finally:
        udp.listening_set(0)


def test_a_taken_port_leaves_the_devices_on_http(held, caplog):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]

        async def run():
            with override_settings(DEVICE_UDP=f"127.0.0.1:{port}"):
                return await attached._datagrams_open()

        assert asyncio.run(run()) is None
    assert not udp.listening()
    assert "devices keep to HTTP" in caplog.text
