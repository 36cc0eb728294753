"""The redundancy app's own data: where replication stands on this node."""

from __future__ import annotations

from django.db import models


class ReplicationState(models.Model):
    """Where replication stands on this node (one row).

    As a backup: the master's log it follows (``master_log_id``), the last
    applied entry of it (``position``) and what it last heard. As a master: the
    position the backup last acknowledged (``peer_position``).
    """

    # --- this node as the backup
    master_uuid = models.CharField(max_length=36, blank=True)
    master_log_id = models.CharField(max_length=36, blank=True)
    position = models.BigIntegerField(default=0)
    # Our own log when we last followed: a different one means we wrote as a master since.
    local_log_id = models.CharField(max_length=36, blank=True)
    master_head = models.BigIntegerField(default=0)
    master_head_at = models.DateTimeField(null=True, blank=True)
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_applied_at = models.DateTimeField(null=True, blank=True)
    # When the newest applied entry was written on the master.
    last_applied_created = models.DateTimeField(null=True, blank=True)
    applied_count = models.BigIntegerField(default=0)
    snapshot_count = models.IntegerField(default=0)
    last_snapshot_at = models.DateTimeField(null=True, blank=True)
    # Since when this backup is known to be behind the master's head (None: caught up).
    behind_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # --- this node as the master
    peer_position = models.BigIntegerField(default=0)
    peer_acked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"at #{self.position} of {self.master_log_id or 'no master log'}"

    @classmethod
    def load(cls) -> ReplicationState:
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class FailoverRecord(models.Model):
    """One failover this server carried out, for the Statistics page: when the peer was
    found lost (``lost_at``, the detection), when the takeover began (after the failover
    time), when the users were this server's (``taken_over_at``), when the last of them
    was registered with the PBX and when the last of the peer's devices came here."""

    lost_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    taken_over_at = models.DateTimeField(null=True, blank=True)
    users_moved = models.IntegerField(default=0)
    registered_at = models.DateTimeField(null=True, blank=True)
    devices_at = models.DateTimeField(null=True, blank=True)
    devices_moved = models.IntegerField(default=0)
    peer = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"failover of {self.started_at:%Y-%m-%d %H:%M:%S}"


class StatisticsSample(models.Model):
    """What this server served at one moment, sampled every few minutes for the
    Statistics page's chart of the last 24 hours; kept about two days."""

    at = models.DateTimeField(db_index=True)
    users_handled = models.IntegerField(default=0)
    users_registered = models.IntegerField(default=0)
    basestations = models.IntegerField(default=0)
    media_resources = models.IntegerField(default=0)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"sample of {self.at:%Y-%m-%d %H:%M}"
