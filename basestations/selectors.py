"""Reads of the base stations app: who serves devices, what is attached where, the witness.

``device_acceptance``, ``devices_heartbeat``, ``devices_per_node``,
``devices_moved_since``, ``witness_report`` and ``handset_last_seen`` are the
hooks the redundancy engine, the Status page and the Users list use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from basestations import protocol, udp
from basestations.models import (
    BaseStation,
    BaseStationLink,
    HandsetSighting,
    MediaResource,
    MediaResourceLink,
)
from core import config
from core.models import NodeState, Phase
from core.selectors import config_read
from licensing.selectors import system_ari_status

LINK_MODELS = {"rfp": BaseStationLink, "media": MediaResourceLink}


def keepalive_interval() -> float:
    """Seconds between a device's keep-alives, as this server tells its devices."""
    return float(getattr(settings, "DEVICE_KEEPALIVE_INTERVAL", protocol.KEEPALIVE_INTERVAL))


def fresh_cutoff(now: datetime | None = None) -> datetime:
    """Contacts since this moment are fresh: the device is still attached (or heard)."""
    now = now or timezone.now()
    return now - timedelta(seconds=protocol.fresh_window(keepalive_interval()))


def address_of(peer: str) -> str:
    """``redundancy.peer`` as the host:port a device connects to ('' if none)."""
    if not peer:
        return ""
    host, port = config.split_peer(peer)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def device_acceptance(values: dict[str, Any] | None = None) -> tuple[bool, str]:
    """Whether this server attaches devices now, and why (a sentence).

    The master (or a single server) serves the base stations and media
    resources; a backup serves them only while it has taken over from a lost
    master (phase ``failover``). A device that is turned away is told the
    master's address and goes back there.
    """
    values = values or config_read()
    mode = values["redundancy.mode"]
    if mode == "single":
        return True, "this server is a single server"
    if mode == "master":
        return True, "this server is the master"
    # The phase alone: the row's JSON (the peer's status, with every device it holds) is
    # not read for it, several times a second by the device and messaging watchers.
    if NodeState.objects.filter(pk=1).values_list("phase", flat=True).first() == Phase.FAILOVER:
        return True, "this backup serves the devices while the master is lost (failover)"
    return False, "this server is the backup: devices attach to the master"


def keepalive_answer(config: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What this server answers a known device with acceptable firmware now: 200 and the
    attachment (the peer's address, the interval, the ARI), or 409 naming the master."""
    accepted, reason = device_acceptance(config)
    if not accepted:
        answer = {"error": reason, "server": address_of(config["redundancy.peer"])}
        return 409, _inviting(answer)
    single = config["redundancy.mode"] == "single"
    answer = {
        "server": settings.NODE_NAME,
        "peer": "" if single else address_of(config["redundancy.peer"]),
        "interval": keepalive_interval(),
        "missed": protocol.MISSED_KEEPALIVES,
        # What a base station broadcasts: the master's ARI on a backup with the
        # ARI swap, so handsets stay subscribed whichever server they reach.
        "ari": system_ari_status(config).system,
    }
    return 200, _inviting(answer)


def _inviting(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` inviting keep-alive datagrams while this web server answers them
    (``basestations.udp``): a device redirected here during a failover's detection keeps
    alive in them too."""
    if udp.listening():
        answer[udp.ADVERT] = True
    return answer


def peer_attached_ids() -> dict[str, set[int]]:
    """The devices the peer said (in its last heartbeat) are attached to it, by kind;
    none once the peer has gone silent (beyond the detection window): a device is never
    shown attached to a server that no longer answers."""
    state = NodeState.load()
    if state.peer_seen_at is None or (
        (timezone.now() - state.peer_seen_at).total_seconds() > settings.DETECTION_WINDOW
    ):
        return {kind: set() for kind in protocol.KINDS}
    devices = (state.peer_status or {}).get("devices") or {}
    return {kind: {int(i) for i in devices.get(kind) or []} for kind in protocol.KINDS}


def attached_ids(now: datetime | None = None) -> dict[str, list[int]]:
    """The devices attached to this server now (a fresh accepted keep-alive), by kind."""
    cutoff = fresh_cutoff(now)
    return {
        kind: sorted(
            model.objects.filter(last_keepalive_at__gte=cutoff).values_list("pk", flat=True)
        )
        for kind, model in LINK_MODELS.items()
    }


def devices_heartbeat() -> dict[str, Any]:
    """What the heartbeat tells the peer of our devices: the ids attached here, by kind
    (ids are the same on both servers: replication keeps them). About 6 bytes a device."""
    return attached_ids()


def devices_per_node() -> dict[str, dict[str, int] | None]:
    """Devices attached to each server, for the Status page: ``{node: {"rfp": n, "media": m}}``.

    This server counts its own; the peer's count is what its last heartbeat said
    (None if it never said: an older peer, or no heartbeat yet). A single server
    has one entry.
    """
    own = {kind: len(ids) for kind, ids in attached_ids().items()}
    result: dict[str, dict[str, int] | None] = {settings.NODE_NAME: own}
    values = config_read()
    if values["redundancy.mode"] == "single":
        return result
    status = NodeState.load().peer_status or {}
    name = (status.get("claims") or {}).get("node") or address_of(values["redundancy.peer"])
    devices = status.get("devices")
    result[name] = (
        {kind: len(devices.get(kind) or []) for kind in protocol.KINDS}
        if isinstance(devices, dict)
        else None
    )
    return result


def devices_moved_since(started: datetime, now: datetime | None = None) -> dict[str, Any]:
    """Devices that attached here since ``started`` (a takeover began) and are still
    attached: ``{"rfp": n, "media": m, "last_at": datetime | None}``, ``last_at`` being
    when the last of them attached. For the takeover's event: how many moved, how long."""
    cutoff = fresh_cutoff(now)
    result: dict[str, Any] = {"last_at": None}
    for kind, model in LINK_MODELS.items():
        moved = model.objects.filter(last_keepalive_at__gte=cutoff, attached_since__gte=started)
        result[kind] = moved.count()
        last = moved.order_by("-attached_since").values_list("attached_since", flat=True).first()
        if last and (result["last_at"] is None or last > result["last_at"]):
            result["last_at"] = last
    return result


def witness_report(now: datetime | None = None) -> dict[str, Any]:
    """What this server's base stations say of the peer (the split-brain witness).

    Of the configured base stations (``known``): ``attached`` here now,
    ``peer_unreachable`` (heard from recently, accepted or redirected, and
    they report they cannot reach the other server), ``heard`` recently at
    all, and ``silent`` (no keep-alive here within the fresh window).
    ``confirmed`` when at least ``needed`` (60 % + 1 of ``known``) report the
    peer unreachable: the devices confirm the peer is lost.

    In a split brain (the link between the servers cut, both still reaching
    the devices) the devices attached to the master still reach the backup and
    the backup hears from none of them, so neither side is confirmed. When the
    master dies, its base stations come to the backup reporting the master
    unreachable; when the backup dies, the master's base stations report it.
    """
    cutoff = fresh_cutoff(now)
    known = BaseStation.objects.count()
    fresh = BaseStationLink.objects.filter(last_contact_at__gte=cutoff)
    heard = fresh.count()
    attached = BaseStationLink.objects.filter(last_keepalive_at__gte=cutoff).count()
    unreachable = fresh.filter(peer_reachable=False).count()
    needed = protocol.witness_needed(known)
    return {
        "known": known,
        "attached": attached,
        "peer_unreachable": unreachable,
        # Heard recently and still reaching the other server.
        "peer_reachable": fresh.filter(peer_reachable=True).count(),
        "heard": heard,
        "silent": known - heard,
        "needed": needed,
        "confirmed": known > 0 and unreachable >= needed,
    }


@dataclass(frozen=True)
class HandsetSeen:
    """Where this server last saw a handset."""

    extension: str
    basestation: str  # the base station's name
    mac: str
    seen_at: datetime


def handsets_last_seen(extensions: list[str]) -> dict[str, HandsetSeen]:
    """Where each of these handsets was last seen (one query; unseen ones are left out).

    Precise to ``contacts.HANDSET_REFRESH`` seconds: a handset that stays on one
    base station is re-stamped at most that often."""
    rows = HandsetSighting.objects.filter(extension__in=list(extensions)).values_list(
        "extension", "basestation__name", "basestation__mac", "seen_at"
    )
    return {ext: HandsetSeen(ext, name, mac, seen) for ext, name, mac, seen in rows}


def handset_last_seen(extension: str) -> HandsetSeen | None:
    """Where the handset of this extension was last seen, or None."""
    return handsets_last_seen([extension]).get(extension)


def basestation_queryset():
    return BaseStation.objects.select_related("link")


def media_resource_queryset():
    return MediaResource.objects.select_related("link")


def device_search(queryset, text: str):
    text = text.strip()
    if not text:
        return queryset
    compact = text.replace("-", ":").upper()
    return queryset.filter(
        Q(name__icontains=text)
        | Q(mac__icontains=compact)
        | Q(location__icontains=text)
        | Q(link__ip__startswith=text)
    )


@dataclass(frozen=True)
class Attachment:
    """Where a device is attached, as this server can tell: ``where`` is here, peer,
    refused, redirected or none; ``server`` names the server (or says why not)."""

    where: str
    server: str
    detail: str = ""


@dataclass(frozen=True)
class AttachmentView:
    """What the list pages need to say where each device is attached (read once per page)."""

    own: str
    peer: str
    cutoff: datetime
    peer_ids: dict[str, set[int]]

    def of(self, device: BaseStation | MediaResource) -> Attachment:
        link = getattr(device, "link", None)
        if link is not None and link.last_keepalive_at and link.last_keepalive_at >= self.cutoff:
            return Attachment("here", self.own)
        if device.pk in self.peer_ids.get(device.kind, set()):
            return Attachment("peer", self.peer)
        if link is not None and link.refusal.startswith("Refused"):
            # Its last word, however old: a refused device retries only now and then.
            return Attachment("refused", "refused", link.refusal)
        if link is not None and link.refusal and link.last_contact_at:
            if link.last_contact_at >= self.cutoff:
                return Attachment("redirected", "sent to the master", link.refusal)
        return Attachment("none", "not attached")


def attachment_view() -> AttachmentView:
    values = config_read()
    status = NodeState.load().peer_status or {}
    peer = (status.get("claims") or {}).get("node") or address_of(values["redundancy.peer"])
    return AttachmentView(
        own=settings.NODE_NAME,
        peer=peer if values["redundancy.mode"] != "single" else "",
        cutoff=fresh_cutoff(),
        peer_ids=peer_attached_ids() if values["redundancy.mode"] != "single" else {},
    )


def attachment_filter(queryset, where: str, view: AttachmentView):
    """Devices of ``queryset`` attached ``here``, to the ``peer``, ``refused`` or ``none``."""
    kind = queryset.model.kind
    here = Q(link__last_keepalive_at__gte=view.cutoff)
    peer = Q(pk__in=view.peer_ids.get(kind, set()))
    refused = Q(link__refusal__startswith="Refused")
    if where == "here":
        return queryset.filter(here)
    if where == "peer":
        return queryset.filter(peer).exclude(here)
    if where == "refused":
        return queryset.filter(refused)
    if where == "none":
        return queryset.exclude(here).exclude(peer)
    return queryset


def devices_summary(view: AttachmentView) -> dict[str, dict[str, int]]:
    """How many devices of each kind are configured, attached here and to the peer."""
    summary = {}
    for kind, model in (("rfp", BaseStation), ("media", MediaResource)):
        total = model.objects.count()
        here = model.objects.filter(link__last_keepalive_at__gte=view.cutoff).count()
        peer = len(view.peer_ids.get(kind, set()))
        summary[kind] = {"total": total, "here": here, "peer": peer,
                         "none": max(0, total - here - peer)}  # fmt: skip
    return summary
