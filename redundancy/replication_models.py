"""Models of replication (the change log and the backup's position)."""

from __future__ import annotations

import uuid

from django.db import models

__all__ = ["ChangeLogEntry", "ChangeLogHead", "ReplicationState"]


def _new_log_id() -> str:
    return str(uuid.uuid4())


class ChangeLogHead(models.Model):
    """This node's change log counter (one row).

    ``seq`` is the last sequence number handed out; a writer locks this row, so
    transactions that append commit in ``seq`` order and no number is skipped
    (a rolled-back transaction rolls its number back too). ``log_id`` names
    this node's log: it changes whenever the node's data is replaced by a
    snapshot of another node, so a follower never continues an unrelated log.
    """

    log_id = models.CharField(max_length=36, default=_new_log_id)
    seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"log {self.log_id} at #{self.seq}"


class ChangeLogEntry(models.Model):
    """One change of replicated configuration, written with the change itself."""

    seq = models.BigIntegerField(primary_key=True)
    created = models.DateTimeField()
    entity = models.CharField(max_length=40)
    op = models.CharField(max_length=20)
    key = models.CharField(max_length=200)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.entity} {self.op} {self.key}"


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
