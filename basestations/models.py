"""Base stations (RFPs) and media resources: their configuration, and what this server
knows of them at run time.

``BaseStation`` and ``MediaResource`` are configuration: written on the master
through ``basestations.services`` with a change-log entry, replicated to the
backup (entity ``device``). Their ``*Link`` rows are this server's runtime view
of the device (keep-alives, reported firmware and state): never replicated,
each server keeps its own, like ``users.SipRegistration``.
"""

from django.db import models


class BaseStation(models.Model):
    """A KIRK IP base station (RFP) configured in the system."""

    name = models.CharField(max_length=64, unique=True)
    mac = models.CharField("MAC", max_length=17, unique=True)
    location = models.CharField(max_length=100, blank=True)

    kind = "rfp"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.mac})"


class MediaResource(models.Model):
    """A KIRK media resource (conference and media channels) configured in the system."""

    name = models.CharField(max_length=64, unique=True)
    mac = models.CharField("MAC", max_length=17, unique=True)
    channels = models.PositiveSmallIntegerField(default=32)
    location = models.CharField(max_length=100, blank=True)

    kind = "media"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.mac})"


class DeviceLink(models.Model):
    """This server's runtime view of one device (not replicated).

    ``last_keepalive_at`` is the last keep-alive this server accepted: the
    device is attached here while it is fresh. ``last_contact_at`` is the
    last signed keep-alive of any outcome (accepted, redirected to the master,
    refused for its firmware), which is what the split-brain witness counts.
    """

    ip = models.CharField("IP", max_length=45, blank=True)
    firmware = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=40, blank=True)
    # What the device last said of the other server (None: it knows of none).
    peer_reachable = models.BooleanField(null=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    last_keepalive_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attached_since = models.DateTimeField(null=True, blank=True)
    # Why the last contact was not accepted: "Refused ..." (403: its firmware), or the
    # reason a 409 sent it to the master; '' when accepted.
    refusal = models.CharField(max_length=200, blank=True)
    # The signing timestamp of the last contact: a keep-alive must be newer (no replay).
    last_stamp = models.FloatField(default=0.0)
    # The server addresses the device said it knows, at its last contact.
    servers = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True


class BaseStationLink(DeviceLink):
    basestation = models.OneToOneField(
        BaseStation, on_delete=models.CASCADE, primary_key=True, related_name="link"
    )

    def __str__(self) -> str:
        return f"link of base station {self.basestation_id}"


class MediaResourceLink(DeviceLink):
    media_resource = models.OneToOneField(
        MediaResource, on_delete=models.CASCADE, primary_key=True, related_name="link"
    )
    channels_in_use = models.PositiveSmallIntegerField(null=True)

    def __str__(self) -> str:
        return f"link of media resource {self.media_resource_id}"


class HandsetSighting(models.Model):
    """Where this server last saw a handset (by its user's extension): runtime, not replicated."""

    extension = models.CharField(max_length=32, primary_key=True)
    basestation = models.ForeignKey(BaseStation, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"handset {self.extension} on base station {self.basestation_id}"
