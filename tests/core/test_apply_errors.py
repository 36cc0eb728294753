"""An entry that cannot be applied is refused with a message that names what is wrong,
never a stored value: no SIP password, password hash or secret reaches an event, a log
line or an error message."""

import pytest

from core.changelog import ENTITIES, ApplyError
from core.models import Event
from redundancy.follower import replication_pull
from tests.redundancy.test_replication_fakes import FakeMaster, become_backup, user_row

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-secret-value-never-shown"


@pytest.mark.parametrize(
    ("entity", "op", "key", "data"),
    [
        ("user", "upsert", "1", {"sip_password": SECRET}),
        ("user", "upsert", "1", {"id": 1, "sip_password": SECRET, "pin": SECRET}),
        ("admin_account", "upsert", "bob", {"password": SECRET}),
        ("admin_account", "upsert", "bob", {"username": "bob", "password": SECRET}),
        ("device", "upsert", "rfp:1", {"kind": "radio", "secret": SECRET}),
        ("config", "set", "system.device_secret", {"value": f"with spaces {SECRET}"}),
        ("config", "set", "redundancy.secret", {"value": SECRET}),
    ],
)  # fmt: skip
def test_a_refused_entry_names_the_problem_not_the_values(entity, op, key, data):
    with pytest.raises(ApplyError) as refused:
        ENTITIES[entity].apply(op, key, data)
    assert SECRET not in str(refused.value)
    assert str(refused.value)


def test_the_event_of_a_refused_batch_holds_no_secret(caplog):
    become_backup()
    master = FakeMaster()
    master.add("user", "upsert", "1", {**user_row(1), "sip_password": SECRET, "pin": "1"})
    result = replication_pull(client=master)
    assert result.outcome == "error"
    assert Event.objects.filter(kind="replication").exists()
    assert not any(SECRET in e.message for e in Event.objects.all())
    assert SECRET not in caplog.text
