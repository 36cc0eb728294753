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
