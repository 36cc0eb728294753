"""The peer API over HTTP: signed, replay-proof, refusals logged once, bad input refused."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core import signing
from core.models import Event, NodeState
from core.services import config_update
from tests.peer import peer_send, replay
from tests.redundancy.test_replication_fakes import halves_served

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

SECRET = "pairing-secret-0123456789"
PATH = "/api/peer/heartbeat"


@pytest.fixture
def master(db):
    config_update(
        changes={"redundancy.mode": "master", "redundancy.peer": "127.0.0.1:8001",
                 "redundancy.secret": SECRET},
        actor="test",
    )  # fmt: skip
    halves_served("A")


def backup_status(**claims):
    return {"claims": {"node": "kws-b", "mode": "slave", "firmware": "PCS06B",
                       "database_uuid": "", "features": {"redundancy": True}, **claims}}  # fmt: skip


def post(payload, *, secret=SECRET, headers=None, raw=None, **kwargs):
    return peer_send(PATH, payload, secret=secret, headers=headers, raw=raw, **kwargs)


def test_a_signed_heartbeat_is_answered_with_a_signed_status(master):
    response, message, _, _ = post(backup_status())
    assert response.status_code == 200 and response.verified
    answer = response.json()
    assert answer["claims"]["mode"] == "master"
    assert answer["verdict"]["needs_uuid"] is True
    state = NodeState.load()
    assert state.peer_status["claims"]["node"] == "kws-b"
    # Alive is what answers our own heartbeat (it proves the peer's web server and engine).
    assert state.peer_seen_at is None


def test_a_node_whose_engine_stopped_does_not_answer_heartbeats(master):
    NodeState.objects.filter(pk=1).update(last_tick=timezone.now() - timedelta(seconds=30))
    response = post(backup_status())[0]
    assert response.status_code == 503
    assert "is not running (last decision: 30" in response.json()["error"]
    assert not NodeState.load().peer_status  # nothing recorded from it either


def test_the_verdict_names_a_firmware_mismatch(master):
    from core.selectors import config_read

    uuid = config_read()["redundancy.database_uuid"]
    answer = post(backup_status(firmware="PCS05A", database_uuid=uuid))[0].json()
    assert answer["verdict"] == {"accepted": False, "needs_uuid": False,
                                 "reason": "firmware differs: master PCS06B, backup PCS05A"}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "secret", "headers", "reason"),
    [
        ("wrong", "another-secret-123456789", None, "wrong signature"),
        ("empty signature", SECRET, {signing.HEADER_SIGNATURE: ""}, "wrong signature"),
        ("altered timestamp", SECRET, {signing.HEADER_TIME: "1000.000000"}, "wrong signature"),
    ],
)
def test_wrongly_signed_messages_are_refused_and_change_nothing(
    master, kind, secret, headers, reason
):
    response = post(backup_status(), secret=secret, headers=headers)[0]
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert NodeState.load().peer_seen_at is None


def test_a_stale_but_correctly_signed_message_is_refused(master):
    response = post(backup_status(), now=1000.0)[0]
    assert response.status_code == 401
    assert "stale message" in response.json()["error"]


def test_a_replayed_message_is_refused(master):
    first, _, headers, body = post(backup_status())
    assert first.status_code == 200
    again = replay(PATH, body, headers)
    assert again.status_code == 401
    assert again.json()["error"] == "replayed message"


def test_refusals_are_logged_once_per_reason(master):
    for _ in range(5):
        post(backup_status(), secret="another-secret-123456789")
    refused = Event.objects.filter(kind="peer_refused")
    assert refused.count() == 1
    assert "wrong signature" in refused.get().message
    assert SECRET not in refused.get().message


def stale(n: int):
    """A correctly signed message from ``n`` minutes ago: its skew differs every time."""
    return post(backup_status(), node=f"kws-b{n}", now=time.time() - 60 * (n + 1))[0]


def unsigned(n: int):
    return Client().post(PATH, b"{}", content_type="application/json",
                         headers={signing.HEADER_NODE: f"spoofed-{n}"})  # fmt: skip


def wrong(n: int):
    return post(backup_status(), secret="another-secret-123456789",
                headers={signing.HEADER_NODE: f"spoofed-{n}"})[0]  # fmt: skip


@pytest.mark.parametrize(
    ("send", "reason"),
    [(stale, "stale message"), (unsigned, "unsigned message"), (wrong, "wrong signature")],
)
def test_each_cause_is_logged_once_whatever_the_details_and_the_claimed_name(master, send, reason):
    for n in range(4):
        assert send(n).status_code == 401
    refused = list(Event.objects.filter(kind="peer_refused").values_list("message", flat=True))
    assert len(refused) == 1 and reason in refused[0] and "127.0.0.1" in refused[0]


def test_replays_are_logged_once(master):
    first, _, headers, body = post(backup_status())
    for _ in range(3):
        replay(PATH, body, headers)
    refused = Event.objects.filter(kind="peer_refused").values_list("message", flat=True)
    assert list(refused) == ["Refused a peer message from 127.0.0.1 (kws-b): replayed message "
                             "(nonce seen before)"]  # fmt: skip


def test_a_refusal_is_logged_again_after_the_sender_was_heard_validly(master):
    wrong(1)
    wrong(2)
    assert post(backup_status())[0].status_code == 200
    wrong(3)
    assert Event.objects.filter(kind="peer_refused").count() == 2


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"nothing": 1}, "a heartbeat needs a 'claims' object"),
        ({"claims": {"node": 5, "mode": "slave", "firmware": "x", "database_uuid": ""}},
         "claims.node must be a string"),
        ({"claims": {"node": "b", "mode": "slave", "firmware": "x", "database_uuid": "",
                     "features": []}}, "claims.features must be an object"),
    ],
)  # fmt: skip
def test_malformed_heartbeats_get_a_clear_error_and_change_nothing(master, payload, error):
    response = post(payload)[0]
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert NodeState.load().peer_seen_at is None


def test_malformed_json_is_refused(master):
    response = post(None, raw=b"{not json")[0]
    assert response.status_code == 400
    assert response.json()["error"] == "malformed JSON"


def test_a_single_server_refuses_heartbeats(db):
    config_update(changes={"redundancy.secret": SECRET}, actor="test")
    response = post(backup_status())[0]
    assert response.status_code == 409
    assert "single server" in response.json()["error"]


# --- Reflection, destination, sealing at the endpoint ---------------------------


def test_a_heartbeat_of_this_server_reflected_back_to_it_is_refused(master):
    me = NodeState.load().node_id
    response = post(backup_status(node="kws-a", mode="master"), sender=me)[0]
    assert response.status_code == 401 and "reflected" in response.json()["error"]
    assert not NodeState.load().peer_status  # never stored as the peer's claims
    assert "reflected" in Event.objects.get(kind="peer_refused").message


def test_a_message_addressed_to_another_server_is_refused(master):
    response = post(backup_status(), receiver="1e0b7c2a-0000-4000-8000-0000000000cc")[0]
    assert response.status_code == 401 and "addressed to another" in response.json()["error"]
    addressed = post(backup_status(), receiver=NodeState.load().node_id)[0]
    assert addressed.status_code == 200


def test_an_unsealed_message_is_refused(master):
    response = post(backup_status(), seal=False)[0]
    assert response.status_code == 401 and "unsealed" in response.json()["error"]


def test_a_timestamp_of_nan_is_refused(master):
    response = post(backup_status(), headers={signing.HEADER_TIME: "nan"})[0]
    assert response.status_code == 401 and "malformed timestamp" in response.json()["error"]


def test_answers_are_sealed_and_addressed_to_the_requester(master):
    response, message, _, _ = post(backup_status())
    raw = response.response.content
    assert b'"claims"' not in raw and response.verified
    assert response.headers[signing.HEADER_RECEIVER] == message.sender
