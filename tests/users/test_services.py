"""DECT user services: validation, one transaction with the change-log and event entries."""

import pytest
from django.core.exceptions import ValidationError

from core.locks import Locked
from core.models import ChangeLogEntry, Event, NodeState, Phase
from tests.redundancy.test_replication_fakes import become_backup, become_master
from users import ipei
from users.models import DectUser
from users.selectors import handled_users
from users.services import (
    dect_user_create,
    dect_user_delete,
    dect_user_seed_demo,
    dect_user_update,
)

pytestmark = pytest.mark.django_db

IPEI_1 = ipei.make(3180, 412345)
IPEI_2 = ipei.make(3180, 412346)
WRONG_CHECK = IPEI_1[:12] + ("1" if IPEI_1[12] == "0" else "0")


def entries() -> list[tuple[str, str, str]]:
    return list(ChangeLogEntry.objects.exclude(entity="audit").values_list("entity", "op", "key"))


def errors(exc_info) -> dict[str, list[str]]:
    return exc_info.value.message_dict


def test_create_stores_the_user_its_change_log_entry_and_an_event():
    user = dect_user_create(actor="alice", extension="2001", display_name="Anna Berg",
                            ipei=ipei.display(IPEI_1), sip_password="secret-pw")  # fmt: skip
    assert user.ipei == IPEI_1  # canonical form, spaces dropped
    entry = ChangeLogEntry.objects.exclude(entity="audit").get()
    assert (entry.entity, entry.op, entry.key) == ("user", "upsert", str(user.pk))
    assert entry.data["id"] == user.pk and entry.data["extension"] == "2001"
    assert entry.data["home"] in ("A", "B") and entry.data["sip_password"] == "secret-pw"
    event = Event.objects.get(kind="user")
    assert event.actor == "alice" and "2001" in event.message


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"extension": ""}, "extension", "use 1 to 32 digits"),
        ({"extension": "20a1"}, "extension", "use 1 to 32 digits"),
        ({"extension": "2001", "ipei": "12345"}, "ipei", "is not an IPEI"),
        ({"extension": "2001", "ipei": WRONG_CHECK}, "ipei", "check digit"),
        ({"extension": "2001", "access_code": "12ab"}, "access_code", "up to 8 digits"),
        ({"extension": "2001", "subscription": "maybe"}, "subscription", "not one of"),
        ({"extension": "2001", "display_name": "x" * 101}, "display_name", "at most 100"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(fields, field, message):
    with pytest.raises(ValidationError) as exc_info:
        dect_user_create(actor="alice", **fields)
    assert message in " ".join(errors(exc_info)[field])
    assert not DectUser.objects.exists() and not ChangeLogEntry.objects.exists()


def test_an_extension_or_ipei_used_by_another_user_is_refused():
    dect_user_create(actor="alice", extension="2001", display_name="Anna", ipei=IPEI_1)
    with pytest.raises(ValidationError) as exc_info:
        dect_user_create(actor="alice", extension="2001", ipei=IPEI_2)
    assert "extension 2001 is already used by 2001 Anna" in errors(exc_info)["extension"][0]
    with pytest.raises(ValidationError) as exc_info:
        dect_user_create(actor="alice", extension="2002", ipei=IPEI_1)
    assert "already used by 2001 Anna" in errors(exc_info)["ipei"][0]
    assert DectUser.objects.count() == 1 and len(entries()) == 1


def test_an_unknown_field_is_a_programming_error():
    with pytest.raises(TypeError, match="colour"):
        dect_user_create(actor="alice", extension="2001", colour="red")


def test_update_records_the_new_state_and_names_changed_fields_but_no_password():
    user = dect_user_create(actor="alice", extension="2001", ipei=IPEI_1)
    home = user.home
    dect_user_update(user=user, actor="bob", display_name="Bo Holm", sip_password="new-one")
    entry = ChangeLogEntry.objects.exclude(entity="audit").last()
    assert (entry.op, entry.data["display_name"], entry.data["home"]) == ("upsert", "Bo Holm", home)
    event = Event.objects.filter(kind="user").first()
    assert "display_name" in event.message and "SIP password" in event.message
    assert "new-one" not in event.message and event.actor == "bob"


def test_an_update_that_changes_nothing_writes_nothing():
    user = dect_user_create(actor="alice", extension="2001")
    dect_user_update(user=user, actor="bob", extension="2001")
    assert len(entries()) == 1


def test_a_refused_update_leaves_the_instance_as_stored():
    dect_user_create(actor="alice", extension="2001")
    user = dect_user_create(actor="alice", extension="2002")
    with pytest.raises(ValidationError):
        dect_user_update(user=user, actor="bob", extension="2001")
    assert user.extension == "2002"
    assert DectUser.objects.get(pk=user.pk).extension == "2002"


def test_delete_records_the_id():
    user = dect_user_create(actor="alice", extension="2001")
    pk = user.pk
    dect_user_delete(user=user, actor="bob")
    assert not DectUser.objects.exists()
    assert entries()[-1] == ("user", "delete", str(pk))
    assert "2001" in Event.objects.filter(kind="user").first().message


def test_a_backup_refuses_user_changes_and_keeps_nothing():
    user = dect_user_create(actor="alice", extension="2001")
    become_backup()
    with pytest.raises(Locked, match="backup"):
        dect_user_create(actor="alice", extension="2002")
    with pytest.raises(Locked):
        dect_user_update(user=user, actor="alice", display_name="x")
    with pytest.raises(Locked):
        dect_user_delete(user=user, actor="alice")
    assert list(DectUser.objects.values_list("extension", "display_name")) == [("2001", "")]
    assert len(entries()) == 1


def test_the_demo_seed_is_one_transaction_with_an_entry_per_user_and_runs_once():
    assert dect_user_seed_demo(count=30) == 30
    assert dect_user_seed_demo(count=30) == 0
    ids = set(DectUser.objects.values_list("id", flat=True))
    assert {int(key) for _, _, key in entries()} == ids and len(entries()) == 30
    assert Event.objects.filter(kind="user", message="30 demo users created.").exists()


def test_the_demo_seed_is_refused_on_a_backup():
    become_backup()
    with pytest.raises(Locked):
        dect_user_seed_demo(count=5)
    assert not DectUser.objects.exists()


@pytest.mark.parametrize(
    "phase", [Phase.NORMAL, Phase.PEER_LOST, Phase.FAILOVER, Phase.REJECTED, Phase.SINGLE]
)
def test_new_users_get_a_home_half_each_whatever_the_pair_is_doing(phase):
    become_master()
    NodeState.objects.update_or_create(pk=1, defaults={"phase": phase})
    homes = []
    for n in range(41):
        homes.append(dect_user_create(actor="alice", extension=str(4000 + n)).home)
        assert abs(homes.count("A") - homes.count("B")) <= 1
    assert sorted({homes.count("A"), homes.count("B")}) == [20, 21]


def test_deleting_users_never_moves_the_others():
    users = [dect_user_create(actor="alice", extension=str(4000 + n)) for n in range(10)]
    before = {u.pk: u.home for u in users}
    for user in users[:4]:
        dect_user_delete(user=user, actor="alice")
    dect_user_create(actor="alice", extension="4999")
    after = dict(DectUser.objects.filter(pk__in=before).values_list("pk", "home"))
    assert after == {pk: home for pk, home in before.items() if pk in after}


def test_a_single_server_handles_every_user_it_creates():
    for n in range(20):
        dect_user_create(actor="alice", extension=str(4000 + n))
    assert handled_users().count() == 20
