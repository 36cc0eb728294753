"""Every peer endpoint refuses a payload of the wrong shape with a 4xx, never a 500:
arbitrary JSON, correctly sealed and signed, on a master and on a backup."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redundancy import scenarios
from tests.peer import peer_send
from tests.redundancy.test_replication_fakes import SECRET, become_backup, become_master

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("POST", "/api/peer/heartbeat"),
    ("GET", "/api/peer/changes?after=0"),
    ("GET", "/api/peer/snapshot"),
    ("POST", "/api/peer/nudge"),
    ("POST", "/api/peer/switchover"),
    ("POST", "/api/peer/admin_account"),
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),  # fmt: skip
    max_leaves=12,
)
# Keys the endpoints look for, so the fuzz reaches past the first check.
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "claims": st.dictionaries(
            st.sampled_from(["node", "mode", "firmware", "database_uuid", "features", "ari"]),
            JSON, max_size=6,
        ),
        "head": JSON, "username": JSON, "password": JSON, "registrations": JSON,
        "registrations_seen": JSON, "assignment": JSON, "slot": JSON, "health": JSON,
        "verdict": JSON, "node_id": JSON, "registering": JSON,
    },
)  # fmt: skip


@pytest.mark.parametrize("role", ["master", "backup"])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(payload=JSON | SHAPED)
def test_no_payload_makes_a_peer_endpoint_fail(monkeypatch, role, method, path, payload):
    monkeypatch.setattr(scenarios, "SWITCHOVER_SYNC_TIMEOUT", 0.05)
    (become_master if role == "master" else become_backup)()
    response = peer_send(path, payload, secret=SECRET, method=method)[0]
    assert response.status_code < 500 or response.status_code == 503, response.content
    assert response.verified  # even a refusal is signed
