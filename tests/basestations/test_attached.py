"""Keep-alives answered from memory (basestations.attached), through the web server's ASGI
application as uvicorn runs it: the steady state without Django, everything else with it,
and nothing the database would have said lost or contradicted."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from django.utils.datastructures import CaseInsensitiveMapping

from basestations import attached, protocol
from basestations.models import BaseStationLink, HandsetSighting
from basestations.services import basestation_delete
from core import signing
from core.models import Event
from kws_admin.asgi import application
from tests.basestations.conftest import MAC, SECRET, become_backup, become_master, report

pytestmark = [pytest.mark.django_db(transaction=True)]


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A keep-alive's body and headers, signed with its device's key."""
    data = json.dumps(body).encode()
    request = signing.sign_request(
        secret=signing.device_key(SECRET, body["mac"]), node=body["mac"], method="POST",
        path=protocol.KEEPALIVE_PATH, body=data, sender=body["mac"],
    )  # fmt: skip
    return data, {**request.headers, "content-type": "application/json",
                  "content-length": str(len(data))}  # fmt: skip


class Sent:
    """One keep-alive through the ASGI application: its status, answer, and whether the
    answer is signed with the device's key over our nonce."""

    def __init__(self, body: dict[str, Any], *, raw: tuple[bytes, dict] | None = None) -> None:
        key = signing.device_key(SECRET, body["mac"])
        self.raw = raw = raw or signed(body)
        data, headers = raw
        self.status, answer_headers, content = asyncio.run(_call(data, headers))
        self.answer = json.loads(content)
        try:
            signing.verify_response(
                secret=key, status=self.status, request_nonce=headers[signing.HEADER_NONCE],
                body=content, headers=answer_headers, me=body["mac"],
            )  # fmt: skip
            self.verified = True
        except signing.SignatureError:
            self.verified = False


async def _call(data: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": protocol.KEEPALIVE_PATH, "raw_path": protocol.KEEPALIVE_PATH.encode(),
        "query_string": b"",
        "root_path": "", "client": ("10.1.2.3", 40000), "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    given = False
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = CaseInsensitiveMapping(
                {k.decode(): v.decode() for k, v in message["headers"]}
            )
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await application(scope, receive, send)
    return out["status"], out["headers"], out["body"]


def link() -> BaseStationLink:
    return BaseStationLink.objects.get()


def flush() -> None:
    attached.HELD.written_at = 0.0
    attached.step()


def test_an_arriving_device_is_attached_from_memory_and_written_as_django_would(held, caplog):
    from basestations.services import device_refusal_record
    from core.models import Refusal

    device_refusal_record(key=f"firmware|{MAC}|PCS05B", message="old firmware")
    held.known[MAC].refused = True  # as read from its row: refused before
    sent = Sent(report(handsets=["2001", "2002"], servers=["10.0.0.1:8000"]))
    assert sent.status == 200 and sent.verified
    assert sent.answer["interval"] == attached.keepalive_interval()
    assert MAC in held.devices  # held from now on
    assert not BaseStationLink.objects.exists()  # written in the next step, not at once
    caplog.set_level("INFO", logger="basestations.contacts")
    attached.step()
    row = link()
    assert float(sent.raw[1][signing.HEADER_TIME]) == row.last_stamp
    assert row.last_keepalive_at == row.last_contact_at == row.attached_since
    assert (row.ip, row.firmware, row.state, row.refusal) == ("10.1.2.3", "PCS06B", "synced", "")
    assert row.servers == ["10.0.0.1:8000"] and row.peer_reachable is True
    assert set(HandsetSighting.objects.values_list("extension", flat=True)) == {"2001", "2002"}
    assert not Refusal.objects.filter(key__contains=MAC).exists()  # logged again if it returns
    assert "base station RFP 1 (00:13:D1:0A:0B:01) attached here (10.1.2.3)" in caplog.text


def test_an_arrival_keeps_its_attachment_when_it_was_attached_already(held):
    Sent(report())
    flush()
    since = link().attached_since
    held.devices.clear()  # dropped (as when the configuration is read again)
    assert Sent(report(state="searching")).status == 200
    flush()
    assert link().state == "searching" and link().attached_since == since


def test_a_replay_of_an_arrival_answered_from_memory_is_refused(held):
    first = Sent(report())
    held.devices.clear()  # not held: the replay is an arrival again
    replay = Sent(report(), raw=first.raw)
    assert replay.status == 401 and "replayed" in replay.answer["error"]
    assert link().last_stamp == float(first.raw[1][signing.HEADER_TIME])


def test_a_backup_outside_a_failover_sends_an_arriving_device_to_the_master(held):
    become_backup(master="10.0.0.1:8000")
    attached.step()
    sent = Sent(report())
    assert sent.status == 409 and sent.verified and sent.answer["server"] == "10.0.0.1:8000"
    assert held.devices[MAC].status == 409  # held as redirected
    attached.step()
    row = link()
    assert row.last_keepalive_at is None and row.attached_since is None
    assert row.refusal == sent.answer["error"] and row.last_contact_at is not None
    again = Sent(report())  # steady: only its contact is written, in the batch
    assert again.status == 409 and again.verified and again.answer == sent.answer
    flush()
    after = link()
    assert after.last_stamp == float(again.raw[1][signing.HEADER_TIME])
    assert after.last_contact_at > row.last_contact_at and after.last_keepalive_at is None


def test_old_firmware_and_unknown_devices_still_go_through_django(held):
    refused = Sent(report(firmware="PCS05B"))
    assert refused.status == 403 and "PCS05B" in link().refusal  # written at once
    assert Event.objects.filter(kind="device_refused", message__contains="PCS05B").exists()
    stranger = "00:13:D1:0A:0B:99"
    unknown = Sent(report(mac=stranger))
    assert unknown.status == 403 and "unknown device" in unknown.answer["error"]


def test_a_steady_keepalive_is_answered_from_memory_and_its_contact_written_in_a_batch(held):
    first = Sent(report())
    assert first.status == 200 and first.verified
    assert MAC in held.devices  # attached, held from now on
    attached.step()  # the arrival is written
    written = link()
    second = Sent(report())
    assert second.status == 200 and second.verified and second.answer == first.answer
    # Django would have written the contact at once: it is in memory only, until the batch.
    assert link().last_stamp == written.last_stamp
    flush()
    after = link()
    assert after.last_stamp > written.last_stamp
    assert after.last_keepalive_at > written.last_keepalive_at
    assert after.last_contact_at == after.last_keepalive_at
    assert after.attached_since == written.attached_since  # still the same attachment


def test_a_replay_of_a_keepalive_answered_from_memory_is_refused(held):
    Sent(report())
    attached.step()
    second = Sent(report())
    assert second.status == 200 and link().last_stamp < float(second.raw[1][signing.HEADER_TIME])
    replay = Sent(report(), raw=second.raw)
    assert replay.status == 401
    assert "replayed" in replay.answer["error"]
    # The replay went to Django, which saw the contact memory had not written yet.
    assert link().last_stamp == float(second.raw[1][signing.HEADER_TIME])
    assert MAC not in held.devices
    assert Sent(report()).status == 200  # the device's next keep-alive is fine


def test_a_changed_report_is_written_in_the_next_step_and_old_firmware_at_once(held):
    Sent(report())
    attached.step()
    assert Sent(report(state="searching")).status == 200
    attached.step()
    assert link().state == "searching"
    refused = Sent(report(firmware="PCS05B"))
    assert refused.status == 403 and "PCS06A" in refused.answer["error"]
    assert link().last_keepalive_at is None and "PCS05B" in link().refusal
    assert MAC not in held.devices  # only an attached device is held


def test_a_keepalive_with_a_wrong_signature_is_refused_as_before(held):
    Sent(report())
    data, headers = Sent(report()).raw
    forged = {**headers, signing.HEADER_SIGNATURE: "0" * 64, signing.HEADER_NONCE: "n" * 32}
    sent = Sent(report(), raw=(data, forged))
    assert sent.status == 401 and "wrong signature" in sent.answer["error"]


def test_a_server_that_stops_serving_devices_sends_them_to_the_master_at_its_next_reading(held):
    become_master()
    attached.step()
    Sent(report())
    assert MAC in held.devices
    become_backup(master="10.0.0.1:8000")
    attached.step()
    assert not held.devices
    sent = Sent(report())
    assert sent.status == 409 and sent.answer["server"] == "10.0.0.1:8000"
    assert sent.verified


def test_a_deleted_device_is_refused_at_its_next_keepalive(held, rfp):
    Sent(report())
    basestation_delete(basestation=rfp, actor="test")
    sent = Sent(report())
    assert sent.status == 403 and "unknown device" in sent.answer["error"]


def test_without_a_recent_reading_of_the_database_nothing_is_answered_from_memory(held):
    Sent(report())
    flush()
    held.read_at = time.monotonic() - attached.STALE_AFTER - 1
    before = link().last_stamp
    assert Sent(report()).status == 200
    assert link().last_stamp > before  # written at once: Django answered


def test_a_flood_beyond_django_slots_gets_503_at_once_instead_of_a_queue(held, monkeypatch):
    monkeypatch.setattr(attached, "DJANGO_WAIT", 0.05)
    held.known.clear()  # as a device this process has not read yet: it goes to Django

    async def flood() -> int:
        slots = attached._django_slots()
        for _ in range(slots._value):
            await slots.acquire()
        data, headers = signed(report())
        status, _, body = await _call(data, headers)
        assert b"busy" in body
        return status

    assert asyncio.run(flood()) == 503
    assert not Event.objects.filter(kind="device_refused").exists()
