"""What a device's signed keep-alive writes about it on this server: its runtime row (the
link: address, firmware, state, what it sees of the peer, when it was last heard and
attached) and, once it is accepted, where its handsets are.

Both keep-alive paths write through here: the Django view at once
(``services.device_keepalive``), and the web server's event loop in batches
(``basestations.attached``), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction

from basestations import protocol
from basestations.models import (
    BaseStation,
    BaseStationLink,
    HandsetSighting,
    MediaResource,
    MediaResourceLink,
)
from basestations.selectors import fresh_cutoff
from core.arrays import execute as arrays_execute
from core.services import refusals_forget

logger = logging.getLogger(__name__)

LINKS: dict[str, type[BaseStationLink] | type[MediaResourceLink]] = {
    "rfp": BaseStationLink,
    "media": MediaResourceLink,
}
# A handset that stays on one base station is re-stamped at most this often (seconds):
# a keep-alive then costs one read for its handsets, not one write per handset.
HANDSET_REFRESH = 30.0
_EXTENSION = re.compile(r"^\d{1,32}$")


def link_values(
    *,
    report: protocol.KeepAlive,
    stamp: float,
    remote: str,
    status: int,
    message: str,
    now: datetime,
    last_keepalive_at: datetime | None,
    attached_since: datetime | None,
) -> dict[str, Any]:
    """The runtime row's new values for a keep-alive answered with ``status`` (and the
    refusal or redirect ``message``), given the row's last accepted keep-alive and its
    attachment (None, None on a first contact)."""
    values: dict[str, Any] = {
        "ip": protocol.reported_ip(report, remote),
        "firmware": report["firmware"][:40],
        "state": report["state"][:40],
        "peer_reachable": report.get("peer_reachable"),
        "last_contact_at": now,
        "last_stamp": stamp,
        "servers": list(report.get("servers") or []),
        "refusal": message[:200],
    }
    if report["kind"] == "media":
        values["channels_in_use"] = report.get("channels_in_use")
    if status == 200:
        values["last_keepalive_at"] = now
        values["attached_since"] = attached_since if was_attached(last_keepalive_at, now) else now
    else:
        values["last_keepalive_at"] = None
        values["attached_since"] = None
    return values


def was_attached(last_keepalive_at: datetime | None, now: datetime) -> bool:
    """Whether a device last accepted at ``last_keepalive_at`` is still attached at ``now``."""
    return bool(last_keepalive_at and last_keepalive_at >= fresh_cutoff(now))


def link_write(kind: str, device_id: int, values: dict[str, Any], *, exists: bool) -> bool:
    """Write a device's runtime row unless it holds a newer contact (``last_stamp``), or
    create it on a first contact (``exists`` False); False: a newer contact was there
    (a replayed or out-of-order keep-alive), nothing written."""
    newer = LINKS[kind].objects.filter(pk=device_id, last_stamp__lt=values["last_stamp"])
    if newer.update(**values):
        return True
    if exists:
        return False
    device = BaseStation if kind == "rfp" else MediaResource
    if not device.objects.filter(pk=device_id).exists():
        return False  # deleted meanwhile
    field = "basestation_id" if kind == "rfp" else "media_resource_id"
    try:
        with transaction.atomic():
            LINKS[kind].objects.create(**{field: device_id}, **values)
    except IntegrityError:  # another keep-alive created it meanwhile, or the device is gone
        return bool(newer.update(**values))
    return True


_COLUMNS = (  # (column, PostgreSQL array type) of a runtime row written by a keep-alive
    ("ip", "text"), ("firmware", "text"), ("state", "text"), ("peer_reachable", "boolean"),
    ("last_contact_at", "timestamptz"), ("last_stamp", "float8"), ("servers", "text"),
    ("refusal", "text"), ("last_keepalive_at", "timestamptz"), ("attached_since", "timestamptz"),
)  # fmt: skip


def links_write(kind: str, rows: list[tuple[int, dict[str, Any]]]) -> set[int]:
    """Write the runtime rows of several devices (``(device id, link_values)``, one per
    device) that exist, each unless it holds a newer contact; return the ids written. One
    statement on PostgreSQL, where a failover's thousand arrivals are written at once; one
    per row elsewhere."""
    if not rows:
        return set()
    if connection.vendor != "postgresql":
        return {pk for pk, values in rows if link_write(kind, pk, values, exists=True)}
    model = LINKS[kind]
    columns = list(_COLUMNS) + ([("channels_in_use", "integer")] if kind == "media" else [])
    arrays = [[pk for pk, _ in rows]] + [
        [json.dumps(values[name]) if name == "servers" else _bound(kind_, values.get(name))
         for _, values in rows]
        for name, kind_ in columns
    ]  # fmt: skip
    sets = ", ".join(
        f"{name} = v.{name}::jsonb" if name == "servers" else f"{name} = v.{name}"
        for name, _ in columns
    )
    casts = ", ".join(["%b::integer[]"] + [f"%b::{kind_}[]" for _, kind_ in columns])
    names = ", ".join(["id"] + [name for name, _ in columns])
    table, pk = model._meta.db_table, model._meta.pk.column
    written = arrays_execute(
        f"UPDATE {table} AS link SET {sets} FROM unnest({casts}) AS v({names}) "  # noqa: S608
        f"WHERE link.{pk} = v.id AND link.last_stamp < v.last_stamp RETURNING link.{pk}",
        arrays,
        returning=True,
    )
    return {row[0] for row in written}  # type: ignore[union-attr]


def _bound(kind: str, value: Any) -> Any:
    """A value of a ``links_write`` array as bound in binary: one Python type per array."""
    return float(value) if kind == "float8" and value is not None else value


def links_create(kind: str, device_ids: list[int]) -> None:
    """Empty runtime rows for the first contacts of devices that have none here (a row
    another keep-alive created meanwhile is left alone; a device deleted meanwhile gets
    none), for ``links_write`` to fill: a failover's thousand first contacts at once."""
    device = BaseStation if kind == "rfp" else MediaResource
    field = "basestation_id" if kind == "rfp" else "media_resource_id"
    present = device.objects.filter(pk__in=device_ids).values_list("pk", flat=True)
    LINKS[kind].objects.bulk_create(
        [LINKS[kind](**{field: pk}) for pk in present], ignore_conflicts=True
    )


def accepted_note(
    *,
    kind: str,
    device_id: int,
    mac: str,
    name: str,
    values: dict[str, Any],
    handsets: list[str],
    refused_before: bool,
    attached_before: bool,
) -> None:
    """What follows a written 200: a refusal of the device forgotten (logged again if it
    returns), the attachment logged, the handsets' sightings recorded."""
    if refused_before:
        refusals_forget(kind="device_refused", who=mac)
    if not attached_before:
        logger.info("%s %s (%s) attached here (%s)", protocol.KIND_LABELS[kind], name, mac,
                    values["ip"])  # fmt: skip
    if kind == "rfp" and handsets:
        handsets_record(device_id, handsets, values["last_contact_at"])


def handsets_record(basestation_id: int, extensions: list[str], now: datetime) -> int:
    """Record where handsets were seen; return how many rows were written."""
    wanted = list(dict.fromkeys(e for e in extensions if _EXTENSION.match(e)))
    if not wanted:
        return 0
    stale = now - timedelta(seconds=HANDSET_REFRESH)
    known = {
        ext: (bs, seen)
        for ext, bs, seen in HandsetSighting.objects.filter(extension__in=wanted).values_list(
            "extension", "basestation_id", "seen_at"
        )
    }
    rows = [
        HandsetSighting(extension=ext, basestation_id=basestation_id, seen_at=now)
        for ext in wanted
        if ext not in known or known[ext][0] != basestation_id or known[ext][1] < stale
    ]
    if rows:
        HandsetSighting.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["extension"],
            update_fields=["basestation", "seen_at"],
        )
    return len(rows)
