"""Configuration of base stations and media resources: validation, change log, events, locks."""

import pytest
from django.core.exceptions import ValidationError

from basestations import protocol
from basestations.models import BaseStation, MediaResource
from basestations.services import (
    basestation_create,
    basestation_delete,
    basestation_update,
    devices_provision,
    media_resource_create,
    media_resource_delete,
    media_resource_update,
)
from core.locks import Locked
from core.models import ChangeLogEntry, Event
from tests.basestations.conftest import become_backup

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def entries():
    return [
        (e.entity, e.op, e.key)
        for e in ChangeLogEntry.objects.exclude(entity="audit").order_by("seq")
    ]


def errors_of(exc_info) -> dict[str, str]:
    return {name: " ".join(msgs) for name, msgs in exc_info.value.message_dict.items()}


def test_a_base_station_is_created_normalized_with_its_change_log_and_event_entries():
    rfp = basestation_create(actor="alice", name=" RFP 1 ", mac="00-13-d1-0a-0b-01",
                             location="Ward 3")  # fmt: skip
    assert (rfp.name, rfp.mac) == ("RFP 1", "00:13:D1:0A:0B:01")
    entry = ChangeLogEntry.objects.exclude(entity="audit").get()
    assert (entry.entity, entry.op, entry.key) == ("device", "upsert", f"rfp:{rfp.pk}")
    assert entry.data == {"kind": "rfp", "id": rfp.pk, "name": "RFP 1",
                          "mac": "00:13:D1:0A:0B:01", "location": "Ward 3"}  # fmt: skip
    event = Event.objects.get(kind="device")
    assert (
        event.message == "Base station RFP 1 (00:13:D1:0A:0B:01) added." and event.actor == "alice"
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": ""}, "name", "a name is required"),
        ({"name": "x" * 65}, "name", "at most 64 characters"),
        ({"name": "~1"}, "name", "cannot start with ~"),
        ({"mac": "00:13:D1"}, "mac", "is not a MAC address"),
        ({"location": "y" * 101}, "location", "at most 100 characters"),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_nothing_is_written(fields, field, message):
    with pytest.raises(ValidationError) as info:
        basestation_create(actor="t", **{"name": "RFP 1", "mac": "00:13:D1:0A:0B:01", **fields})
    assert message in errors_of(info)[field]
    assert not BaseStation.objects.exists() and not entries()


def test_names_are_unique_per_kind_and_macs_across_both_kinds():
    basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    with pytest.raises(ValidationError) as info:
        basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:02")
    assert "already used by base station RFP 1" in errors_of(info)["name"]
    with pytest.raises(ValidationError) as info:
        media_resource_create(actor="t", name="Media 1", mac="00:13:d1:0a:0b:01")
    assert "MAC 00:13:D1:0A:0B:01 is already used by base station RFP 1" in errors_of(info)["mac"]
    media_resource_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:03")  # another kind


def test_a_media_resource_has_1_to_128_channels():
    media = media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01")
    assert media.channels == 32
    for bad in (0, 129, "many"):
        with pytest.raises(ValidationError) as info:
            media_resource_update(media_resource=media, actor="t", channels=bad)
        assert "channels" in errors_of(info)
    media.refresh_from_db()
    assert media.channels == 32
    media_resource_update(media_resource=media, actor="t", channels="64")
    assert MediaResource.objects.get().channels == 64


def test_an_update_logs_the_changed_fields_and_a_no_op_writes_nothing():
    rfp = basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    basestation_update(basestation=rfp, actor="bob", name="RFP 1", location="Lab")
    assert Event.objects.filter(kind="device").first().message == (
        "Base station RFP 1 (00:13:D1:0A:0B:01) changed: location."
    )
    count = len(entries())
    basestation_update(basestation=rfp, actor="bob", location="Lab")
    assert len(entries()) == count


def test_a_refused_update_leaves_the_instance_as_stored():
    basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    rfp2 = basestation_create(actor="t", name="RFP 2", mac="00:13:D1:0A:0B:02")
    with pytest.raises(ValidationError):
        basestation_update(basestation=rfp2, actor="t", name="RFP 1")
    assert rfp2.name == "RFP 2"


def test_unknown_fields_are_a_programming_error():
    with pytest.raises(TypeError, match="not a field of a base station: channels"):
        basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01", channels=3)


def test_deletes_are_logged_and_replicated():
    rfp = basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    media = media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01")
    rfp_key, media_key = f"rfp:{rfp.pk}", f"media:{media.pk}"
    basestation_delete(basestation=rfp, actor="t")
    media_resource_delete(media_resource=media, actor="t")
    assert entries()[-2:] == [("device", "delete", rfp_key), ("device", "delete", media_key)]
    assert "Media resource Media 1 (00:13:D1:0A:0C:01) deleted." in Event.objects.values_list(
        "message", flat=True
    )


@pytest.mark.parametrize("phase", ["normal", "failover"])
def test_a_backup_refuses_every_configuration_write(phase):
    rfp = basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    become_backup(phase)
    before = entries()
    with pytest.raises(Locked):
        basestation_create(actor="t", name="RFP 2", mac="00:13:D1:0A:0B:02")
    with pytest.raises(Locked):
        basestation_update(basestation=rfp, actor="t", name="RFP 9")
    with pytest.raises(Locked):
        basestation_delete(basestation=rfp, actor="t")
    with pytest.raises(Locked):
        devices_provision(basestations=3, media=1, actor="t")
    assert entries() == before and BaseStation.objects.get().name == "RFP 1"


def test_a_locked_master_refuses_too():
    from django.utils import timezone

    from core.models import NodeState

    # Handing its role to the backup: a switchover in progress.
    NodeState.objects.update_or_create(pk=1, defaults={"switchover_since": timezone.now()})
    with pytest.raises(Locked, match="switchover"):
        basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")


def test_provisioning_adds_the_simulated_devices_once():
    assert devices_provision(basestations=3, media=1, actor="t") == {"rfp": 3, "media": 1}
    assert devices_provision(basestations=5, media=1, actor="t") == {"rfp": 2, "media": 0}
    assert list(BaseStation.objects.values_list("name", "mac")) == [
        (protocol.sim_name("rfp", i), protocol.sim_mac("rfp", i)) for i in range(1, 6)
    ]
    assert len([e for e in entries() if e[0] == "device"]) == 6
    rfp = BaseStation.objects.get(name="RFP 001")
    assert ("device", "upsert", f"rfp:{rfp.pk}") in entries()
