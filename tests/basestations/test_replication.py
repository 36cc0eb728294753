"""Base stations and media resources replicate as the entity ``device``; runtime rows stay."""

import pytest
from django.utils import timezone

from basestations import replication
from basestations.models import BaseStation, BaseStationLink, MediaResource
from basestations.services import basestation_create, media_resource_create
from core.changelog import ENTITIES, ApplyError
from core.models import ChangeLogEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def replay_on_fresh_tables():
    """Apply the master's change log as a backup would, onto empty tables."""
    entries = list(ChangeLogEntry.objects.filter(entity="device").order_by("seq"))
    BaseStation.objects.all().delete()
    MediaResource.objects.all().delete()
    for entry in entries:
        ENTITIES["device"].apply(entry.op, entry.key, entry.data)


def test_the_entity_is_registered_by_the_app():
    spec = ENTITIES["device"]
    assert spec.ops == {"upsert", "delete"} and spec.snapshot and spec.restore
    assert set(spec.sequence_models) == {BaseStation, MediaResource}


def test_applying_the_change_log_rebuilds_the_same_rows_with_the_same_ids():
    rfp = basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    gone = basestation_create(actor="t", name="RFP 2", mac="00:13:D1:0A:0B:02")
    media = media_resource_create(actor="t", name="Media 1", mac="00:13:D1:0A:0C:01", channels=8)
    from basestations.services import basestation_delete, basestation_update

    basestation_update(basestation=rfp, actor="t", location="Lab")
    basestation_delete(basestation=gone, actor="t")
    snapshot = replication._snapshot()
    replay_on_fresh_tables()
    assert replication._snapshot() == snapshot
    assert BaseStation.objects.get().pk == rfp.pk and MediaResource.objects.get().pk == media.pk


def test_apply_is_idempotent():
    rfp = basestation_create(actor="t", name="RFP 1", mac="00:13:D1:0A:0B:01")
    data = replication.device_data(rfp)
    for _ in range(2):
        replication._apply("upsert", f"rfp:{rfp.pk}", data)
        replication._apply("delete", "media:999", {})
    assert BaseStation.objects.count() == 1


@pytest.mark.parametrize(
    ("op", "key", "data", "message"),
    [
        ("upsert", "rfp:1", {"id": 1, "name": "x"}, "needs a kind"),
        ("upsert", "rfp:1", {"kind": "rfp", "id": 1, "colour": "red"}, "does not know"),
        ("delete", "phone:1", {}, "must be rfp:<id> or media:<id>"),
    ],
)
def test_malformed_entries_are_refused(op, key, data, message):
    with pytest.raises(ApplyError, match=message):
        replication._apply(op, key, data)


def test_a_snapshot_restore_keeps_runtime_rows_and_handles_swapped_macs():
    a = basestation_create(actor="t", name="RFP A", mac="00:13:D1:0A:0B:01")
    b = basestation_create(actor="t", name="RFP B", mac="00:13:D1:0A:0B:02")
    BaseStationLink.objects.create(basestation=a, state="synced", last_contact_at=timezone.now())
    rows = replication._snapshot()
    for row in rows:  # the master swapped the two MACs and names meanwhile
        if row["kind"] == "rfp":
            row["mac"] = {"00:13:D1:0A:0B:01": "00:13:D1:0A:0B:02"}.get(
                row["mac"], "00:13:D1:0A:0B:01"
            )
            row["name"] = "RFP B" if row["name"] == "RFP A" else "RFP A"
    rows.append({"kind": "media", "id": 77, "name": "Media 7", "mac": "00:13:D1:0A:0C:07",
                 "channels": 16, "location": ""})  # fmt: skip
    replication._restore(rows)
    assert BaseStation.objects.get(pk=a.pk).mac == "00:13:D1:0A:0B:02"
    assert BaseStation.objects.get(pk=b.pk).name == "RFP A"
    assert BaseStationLink.objects.get(pk=a.pk).state == "synced"
    assert MediaResource.objects.get(pk=77).channels == 16
    replication._restore([])
    assert not BaseStation.objects.exists() and not BaseStationLink.objects.exists()
