"""Base stations and media resources as one replicated entity, ``device``.

An entry's key is ``rfp:<id>`` or ``media:<id>``; its data is every column of
the row plus its ``kind``. Rows keep their ids on the backup, so this server's
runtime rows (``*Link``, handset sightings) survive a snapshot resync.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from basestations.models import BaseStation, MediaResource
from core.changelog import ApplyError, Entity, entity_register

ENTITY = "device"
MODELS: dict[str, type[models.Model]] = {"rfp": BaseStation, "media": MediaResource}
FIELDS = {kind: [f.attname for f in model._meta.concrete_fields] for kind, model in MODELS.items()}


def device_data(device: BaseStation | MediaResource) -> dict[str, Any]:
    """A device's configuration as the change log and the snapshot carry it."""
    return {"kind": device.kind, **{name: getattr(device, name) for name in FIELDS[device.kind]}}


def device_key(device: BaseStation | MediaResource) -> str:
    return f"{device.kind}:{device.pk}"


def _fields(data: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(data, dict) or data.get("kind") not in MODELS or "id" not in data:
        raise ApplyError("device data needs a kind (rfp or media) and an id")
    kind = data["kind"]
    fields = {k: v for k, v in data.items() if k != "kind"}
    unknown = set(fields) - set(FIELDS[kind])
    if unknown:
        raise ApplyError(f"device data has fields this server does not know: {sorted(unknown)}")
    return kind, fields


def _apply(op: str, key: str, data: Any) -> None:
    if op == "upsert":
        kind, fields = _fields(data)
        fields = dict(fields)
        MODELS[kind].objects.update_or_create(id=fields.pop("id"), defaults=fields)
        return
    kind, _, pk = key.partition(":")
    if kind not in MODELS or not pk.isdigit():
        raise ApplyError(f"device key must be rfp:<id> or media:<id>, not {key!r:.100}")
    MODELS[kind].objects.filter(id=int(pk)).delete()


def _snapshot() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind, model in MODELS.items():
        values = model.objects.order_by("id").values(*FIELDS[kind])
        rows += [{"kind": kind, **row} for row in values]
    return rows


def _restore(rows: list[dict[str, Any]]) -> None:
    wanted: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in MODELS}
    for row in rows:
        kind, fields = _fields(row)
        wanted[kind][int(fields["id"])] = fields
    for kind, model in MODELS.items():
        rows_wanted = wanted[kind]
        model.objects.exclude(id__in=list(rows_wanted)).delete()
        current = {row["id"]: row for row in model.objects.values(*FIELDS[kind])}
        changed = [pk for pk, row in current.items() if row != rows_wanted[pk]]
        if changed:
            # Free the unique names and MACs first, so devices that swapped them do not
            # collide half way ("~id" is neither a MAC nor a name the services accept).
            model.objects.bulk_update(
                [model(id=pk, name=f"~{pk}", mac=f"~{pk}") for pk in changed], ["name", "mac"]
            )
            model.objects.bulk_update(
                [model(**rows_wanted[pk]) for pk in changed],
                [name for name in FIELDS[kind] if name != "id"],
                batch_size=1000,
            )
        model.objects.bulk_create(
            [model(**row) for pk, row in rows_wanted.items() if pk not in current], batch_size=1000
        )


def _row_label(row: dict[str, Any]) -> str:
    kind = "base station" if row["kind"] == "rfp" else "media resource"
    return f"{kind} {row['name']} ({row['mac']})"


def register() -> None:
    entity_register(
        Entity(
            ENTITY,
            frozenset({"upsert", "delete"}),
            _apply,
            _snapshot,
            _restore,
            sequence_models=(BaseStation, MediaResource),
            title="base stations and media resources",
            row_key=lambda row: f"{row['kind']}:{row['id']}",
            row_label=_row_label,
        )
    )
