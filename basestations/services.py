"""Writes of the base stations app.

Configuration (base stations, media resources) is written on the master only:
each write is one transaction with its change-log entry (entity ``device``)
and its event-log entry; a backup or a locked node refuses with
``core.locks.Locked``; bad input raises ``ValidationError`` naming the
field and the rule, and writes nothing.

``device_keepalive`` handles a device's authenticated keep-alive and writes
only this server's runtime rows (never replicated).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from basestations import attached, protocol
from basestations.contacts import accepted_note, link_values, link_write, was_attached
from basestations.models import (
    BaseStation,
    MediaResource,
)
from basestations.replication import ENTITY, device_data, device_key
from basestations.selectors import (
    devices_moved_since,
    keepalive_answer,
)
from core.audit import audit_record
from core.changelog import changelog_append
from core.counters import count
from core.locks import write_check
from core.selectors import config_read
from core.services import event_record, refusal_record

logger = logging.getLogger(__name__)

Device = BaseStation | MediaResource
MODELS: dict[str, type[BaseStation] | type[MediaResource]] = {
    "rfp": BaseStation,
    "media": MediaResource,
}
LABEL = {"rfp": "Base station", "media": "Media resource"}
EDITABLE = {"rfp": ("name", "mac", "location"), "media": ("name", "mac", "channels", "location")}
CHANNELS_MAX = 128
# The statistics counter of each refusal cause (the first part of its key); the causes of
# core.signing (signature, replay, no device secret, ...) count as authentication.
REFUSAL_COUNTERS = {"firmware": "firmware", "unknown": "unknown"}


# --- Configuration -----------------------------------------------------------


def _fields_check(kind: str, fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE[kind])
    if unknown:
        label = protocol.KIND_LABELS[kind]
        raise TypeError(f"not a field of a {label}: {', '.join(sorted(unknown))}")


def _normalized(device: Device) -> dict[str, str]:
    errors: dict[str, str] = {}
    device.name = str(device.name or "").strip()
    if not device.name:
        errors["name"] = "a name is required"
    elif len(device.name) > 64:
        errors["name"] = "the name is at most 64 characters"
    elif device.name.startswith("~"):
        errors["name"] = "a name cannot start with ~"
    try:
        device.mac = protocol.mac_normalize(device.mac or "")
    except ValueError as exc:
        errors["mac"] = str(exc)
    device.location = str(device.location or "").strip()
    if len(device.location) > 100:
        errors["location"] = "the location is at most 100 characters"
    if isinstance(device, MediaResource):
        try:
            device.channels = int(device.channels)
        except (TypeError, ValueError):
            errors["channels"] = f"{device.channels!r} is not a number of channels"
        else:
            if not 1 <= device.channels <= CHANNELS_MAX:
                errors["channels"] = f"a media resource has 1 to {CHANNELS_MAX} channels"
    return errors


def _uniqueness_errors(device: Device) -> dict[str, str]:
    errors: dict[str, str] = {}
    model = type(device)
    label = protocol.KIND_LABELS[device.kind]
    same_kind = model.objects.exclude(pk=device.pk) if device.pk else model.objects.all()
    taken = same_kind.filter(name=device.name).first()
    if taken:
        errors["name"] = f"the name {device.name} is already used by {label} {taken}"
    for kind, other_model in MODELS.items():
        others = other_model.objects.all()
        if other_model is model and device.pk:
            others = others.exclude(pk=device.pk)
        taken = others.filter(mac=device.mac).first()
        if taken:
            other = protocol.KIND_LABELS[kind]
            errors["mac"] = f"MAC {device.mac} is already used by {other} {taken}"
    return errors


def device_validate(device: Device) -> None:
    """Normalize and check a base station or media resource; raise ValidationError."""
    errors = _normalized(device)
    if not errors:
        errors.update(_uniqueness_errors(device))
    if not errors:
        try:
            device.full_clean(validate_unique=False)
        except ValidationError as exc:
            errors.update({name: " ".join(msgs) for name, msgs in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)


def _save(device: Device) -> None:
    # The checks above race with a concurrent save; the unique indexes have the last word.
    try:
        with transaction.atomic():
            device.save()
    except IntegrityError:
        raise ValidationError(
            "the name or MAC was just taken by another device; try again"
        ) from None


def _record(device: Device) -> int:
    return changelog_append(
        entity=ENTITY, op="upsert", key=device_key(device), data=device_data(device)
    )


# The audit trail's object kinds (core.audit.KINDS).
AUDIT_KIND = {"rfp": "basestation", "media": "media_resource"}


def _audit(
    device: Device, action: str, before: dict | None, after: dict | None, *, actor: str
) -> None:
    audit_record(
        kind=AUDIT_KIND[device.kind],
        object_id=device_key(device),
        object_repr=str(device),
        action=action,
        summary=f"{LABEL[device.kind]} {device} {action}.",
        before=before,
        after=after,
        actor=actor,
    )


def _device_create(kind: str, *, actor: str, fields: dict[str, Any]) -> Device:
    _fields_check(kind, fields)
    write_check()
    device = MODELS[kind](**fields)
    with transaction.atomic():
        device_validate(device)
        _save(device)
        _record(device)
        event_record(kind="device", message=f"{LABEL[kind]} {device} added.", actor=actor)
        _audit(device, "created", None, device_data(device), actor=actor)
    return device


def _device_update(device: Device, *, actor: str, fields: dict[str, Any]) -> Device:
    _fields_check(device.kind, fields)
    write_check()
    try:
        with transaction.atomic():
            before = device_data(device)
            for name, value in fields.items():
                setattr(device, name, value)
            device_validate(device)
            after = device_data(device)
            changed = [name for name, value in after.items() if before[name] != value]
            if not changed:
                return device
            _save(device)
            _record(device)
            # Its next keep-alive goes through Django again (basestations.attached).
            transaction.on_commit(lambda: attached.forget(before["mac"]))
            event_record(
                kind="device",
                message=f"{LABEL[device.kind]} {device} changed: {', '.join(changed)}.",
                actor=actor,
            )
            _audit(device, "changed", before, after, actor=actor)
    except Exception:
        device.refresh_from_db()
        raise
    return device


def _device_delete(device: Device, *, actor: str) -> None:
    write_check()
    with transaction.atomic():
        key, shown = device_key(device), str(device)
        _audit(device, "deleted", device_data(device), None, actor=actor)
        device.delete()
        transaction.on_commit(lambda: attached.forget(device.mac))
        changelog_append(entity=ENTITY, op="delete", key=key, data={})
        event_record(kind="device", message=f"{LABEL[device.kind]} {shown} deleted.", actor=actor)


def basestation_create(*, actor: str, **fields: Any) -> BaseStation:
    """Add a base station (name, mac, location); return it.

    Raises ValidationError (nothing written) or Locked (not the master / locked)."""
    return _device_create("rfp", actor=actor, fields=fields)  # type: ignore[return-value]


def basestation_update(*, basestation: BaseStation, actor: str, **fields: Any) -> BaseStation:
    """Change a base station's name, mac or location. Same errors as basestation_create;
    on an error the instance is reloaded, so it never shows unsaved values."""
    return _device_update(basestation, actor=actor, fields=fields)  # type: ignore[return-value]


def basestation_delete(*, basestation: BaseStation, actor: str) -> None:
    """Delete a base station (its keep-alives are refused from then on). Raises Locked."""
    _device_delete(basestation, actor=actor)


def media_resource_create(*, actor: str, **fields: Any) -> MediaResource:
    """Add a media resource (name, mac, channels, location); same errors as basestation_create."""
    return _device_create("media", actor=actor, fields=fields)  # type: ignore[return-value]


def media_resource_update(
    *, media_resource: MediaResource, actor: str, **fields: Any
) -> MediaResource:
    """Change a media resource; same errors as basestation_update."""
    return _device_update(media_resource, actor=actor, fields=fields)  # type: ignore[return-value]


def media_resource_delete(*, media_resource: MediaResource, actor: str) -> None:
    """Delete a media resource. Raises Locked."""
    _device_delete(media_resource, actor=actor)


def devices_provision(*, basestations: int, media: int, actor: str) -> dict[str, int]:
    """Configure the simulators' devices (``protocol.sim_mac``/``sim_name`` 1..N) that are
    missing; return how many of each kind were added. Safe to re-run; one transaction.
    Raises Locked on a backup, ValidationError when a name or MAC is taken otherwise."""
    write_check()
    added = {"rfp": 0, "media": 0}
    with transaction.atomic():
        for kind, count in (("rfp", basestations), ("media", media)):
            model = MODELS[kind]
            have = set(model.objects.values_list("mac", flat=True))
            new = []
            for index in range(1, count + 1):
                mac = protocol.sim_mac(kind, index)  # type: ignore[arg-type]
                if mac in have:
                    continue
                device = model(name=protocol.sim_name(kind, index), mac=mac)  # type: ignore[arg-type]
                device_validate(device)
                new.append(device)
            model.objects.bulk_create(new)
            # bulk_create gives ids on PostgreSQL and SQLite; the change log needs them.
            for device in model.objects.filter(mac__in=[d.mac for d in new]):
                _record(device)
            added[kind] = len(new)
        if added["rfp"] or added["media"]:
            event_record(
                kind="device",
                message=f"Simulated devices added: {added['rfp']} base stations, "
                f"{added['media']} media resources.",
                actor=actor,
            )
            audit_record(
                kind="basestation",
                action="created",
                summary=f"Simulated devices added: {added['rfp']} base stations, "
                f"{added['media']} media resources.",
                actor=actor,
            )
    return added


# --- Runtime: keep-alives ----------------------------------------------------


def device_refusal_record(*, key: str, message: str, now: datetime | None = None) -> bool:
    """Remember a refused device contact, logged once per key (``core.services.
    refusal_record``), and counted (``core.counters``) by its cause; return whether it
    was new."""
    cause = key.split("|", 1)[0]
    count(f"devices.refused.{REFUSAL_COUNTERS.get(cause, 'authentication')}")
    return refusal_record(kind="device_refused", key=key, message=message, now=now)


def device_keepalive(
    *,
    report: protocol.KeepAlive,
    stamp: float,
    remote: str,
    now: datetime | None = None,
    config: dict[str, Any] | None = None,
    accepted: Callable[[int], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Handle a device's signed keep-alive (already verified); return (status, answer).

    403: unknown device (MAC not configured as that kind) or firmware older
    than ``protocol.MIN_FIRMWARE`` (an event names the device and its version,
    once per device and version). 409: this server does not serve devices now
    (``selectors.device_acceptance``); the answer names the master's address.
    401: a keep-alive not newer than the last one of this device (a replay).
    200: attached here; the answer gives the peer's address and the interval.

    Every signed contact of a configured device (200, 409, firmware 403)
    updates this server's runtime row, which the page and the witness read.
    ``config`` is this server's configuration if the caller has just read it;
    ``accepted`` is called with the device's id on a 200, once it is written.
    """
    kind, mac = report["kind"], report["mac"]
    label = protocol.KIND_LABELS[kind]
    device = MODELS[kind].objects.select_related("link").filter(mac=mac).first()
    if device is None:
        message = f"Refused {label} {mac}: unknown device (no {label} with this MAC is configured)."
        device_refusal_record(key=f"unknown|{kind}|{mac}", message=message, now=now)
        return 403, {"error": message}
    previous = getattr(device, "link", None)
    config = config or config_read()
    refusal = protocol.firmware_refusal(report["firmware"])
    if refusal:
        status = 403
        message = (
            f"Refused {label} {device.name} ({mac}): {refusal}; update it to "
            f"{protocol.MIN_FIRMWARE} or newer."
        )
        answer: dict[str, Any] = {"error": message}
    else:
        status, answer = keepalive_answer(config)
        message = answer.get("error", "")
    # The clock is read after the phase: a device accepted by a backup that has just
    # begun its takeover is then stamped after the takeover's start, and counted as moved.
    now = now or timezone.now()
    values = link_values(
        report=report, stamp=stamp, remote=remote, status=status, message=message, now=now,
        last_keepalive_at=previous.last_keepalive_at if previous else None,
        attached_since=previous.attached_since if previous else None,
    )  # fmt: skip
    if not link_write(kind, device.pk, values, exists=previous is not None):
        message = f"Refused {label} {device.name} ({mac}): replayed or out-of-order keep-alive."
        device_refusal_record(key=f"replay|{mac}", message=message, now=now)
        return 401, {"error": message}
    if status == 403:
        device_refusal_record(key=f"firmware|{mac}|{values['firmware']}", message=message, now=now)
        return status, answer
    if status == 200:
        accepted_note(
            kind=kind, device_id=device.pk, mac=mac, name=device.name, values=values,
            handsets=list(report.get("handsets") or []),
            refused_before=bool(previous is not None and previous.refusal),
            attached_before=bool(previous) and was_attached(previous.last_keepalive_at, now),
        )  # fmt: skip
        if accepted is not None:
            accepted(device.pk)
    return status, answer


def devices_takeover_report(*, started_at: float, wait: float = 30.0) -> dict[str, int]:
    """Wait (bounded) until the devices the peer had attached have come here, after a
    takeover decided at ``started_at`` (epoch); record how many moved and how long it took."""
    # Every configured device should end up here (what the peer last reported may be stale).
    expected = BaseStation.objects.count() + MediaResource.objects.count()
    started = datetime.fromtimestamp(started_at, UTC)
    deadline = time.monotonic() + wait
    while True:
        moved = devices_moved_since(started)
        count = moved.get("rfp", 0) + moved.get("media", 0)
        if count >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if expected or count:
        last = moved.get("last_at")
        took = (last - started).total_seconds() if last else 0.0
        event_record(
            kind="failover_devices",
            message=f"{moved.get('rfp', 0)} base stations and {moved.get('media', 0)} media "
            f"resources moved to {settings.NODE_NAME} in {took:.2f} s"
            f"{'' if count >= expected else f' ({expected - count} of the peer did not come)'}",
        )
    return {"rfp": moved.get("rfp", 0), "media": moved.get("media", 0)}
