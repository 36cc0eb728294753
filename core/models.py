"""The infrastructure every app reads: configuration, the node's state and events,
refusals and seen nonces, and the change log."""

from __future__ import annotations

import uuid

from django.db import models

from core import rules


class ConfigValue(models.Model):
    """One configuration key of this node, stored in its canonical text form."""

    key = models.CharField(max_length=100, primary_key=True)
    value = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class Phase(models.TextChoices):
    """The phases of ``core.rules``, with their labels for the GUI."""

    SINGLE = rules.SINGLE, rules.PHASE_LABELS[rules.SINGLE]
    NORMAL = rules.NORMAL, rules.PHASE_LABELS[rules.NORMAL]
    PEER_LOST = rules.PEER_LOST, rules.PHASE_LABELS[rules.PEER_LOST]
    FAILOVER = rules.FAILOVER, rules.PHASE_LABELS[rules.FAILOVER]
    REJECTED = rules.REJECTED, rules.PHASE_LABELS[rules.REJECTED]


def new_log_id() -> str:
    return str(uuid.uuid4())


class NodeState(models.Model):
    """The runtime state of this node as the redundancy engine last decided it (one row).

    ``locked`` and ``lock_reason`` record what ``core.rules.write_rule`` said at the last
    decision, for observers; a write asks the rule itself (``core.locks``)."""

    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.SINGLE)
    locked = models.BooleanField(default=False)
    lock_reason = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    last_tick = models.DateTimeField(null=True, blank=True)
    # The last valid message of the peer and what it said (its heartbeat status).
    peer_seen_at = models.DateTimeField(null=True, blank=True)
    peer_status = models.JSONField(default=dict, blank=True)
    # The state machine's own memory (redundancy.statemachine.State as JSON).
    engine = models.JSONField(default=dict, blank=True)
    # Since when this master is handing its role to the backup (a switchover); no write
    # is accepted meanwhile.
    switchover_since = models.DateTimeField(null=True, blank=True)
    # Who handles which user (core.assignment): this server's slot (A or B, kept through
    # role changes), the newest assignment it knows, and the homes whose users it
    # registers now ("" none, "A", "B", "AB"), as the engine last decided.
    slot = models.CharField(max_length=1, blank=True)
    assignment = models.JSONField(default=dict, blank=True)
    registering = models.CharField(max_length=2, blank=True)
    # This server's id in signed messages (core.signing): made once, never replicated.
    node_id = models.CharField(max_length=36, default=new_log_id)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.phase}{' (locked)' if self.locked else ''}"

    @classmethod
    def load(cls) -> NodeState:
        state, _ = cls.objects.get_or_create(pk=1)
        return state

    @classmethod
    def load_light(cls) -> NodeState:
        """The row without its large JSON fields (the peer's status, with every device the
        peer holds, and the engine's state), read only if used: for readers that run
        several times a second."""
        state = cls.objects.defer("peer_status", "engine").filter(pk=1).first()
        return state if state is not None else cls.load()


class Event(models.Model):
    """An entry of the event log; each node keeps its own."""

    class Severity(models.TextChoices):
        INFO = "info", "info"
        WARNING = "warning", "warning"
        ERROR = "error", "error"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=40, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    message = models.TextField()
    actor = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class SeenNonce(models.Model):
    """Nonces of accepted peer messages, kept while their timestamps are fresh."""

    nonce = models.CharField(max_length=64, primary_key=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.nonce


class Refusal(models.Model):
    """A refused contact (a peer message, a device keep-alive), kept so each cause is
    logged once, not at every retry. ``key`` names the cause and who was refused
    (``wrong-signature|10.0.0.2``, ``firmware|<MAC>|PCS05B``); ``kind`` is the kind of the
    event it wrote."""

    key = models.CharField(max_length=200, primary_key=True)
    kind = models.CharField(max_length=40)
    message = models.TextField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return self.key


class ChangeLogHead(models.Model):
    """This node's change log counter (one row).

    ``seq`` is the last sequence number handed out; a writer locks this row, so
    transactions that append commit in ``seq`` order and no number is skipped
    (a rolled-back transaction rolls its number back too). ``log_id`` names
    this node's log: it changes whenever the node's data is replaced by a
    snapshot of another node, so a follower never continues an unrelated log.
    """

    log_id = models.CharField(max_length=36, default=new_log_id)
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


class ProcessBeat(models.Model):
    """The liveness stamp of one of this node's processes (web, worker, beat, sip): when it
    last did its work and what it said. The engine's own stamp is ``NodeState.last_tick``."""

    role = models.CharField(max_length=20, primary_key=True)
    pid = models.PositiveIntegerField(default=0)
    stamped_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)
    # Whether the last health check found it stale (so the event is written once).
    down = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.role} at {self.stamped_at:%H:%M:%S}"


class Counter(models.Model):
    """One of this node's statistics counters (core.counters): how often something happened
    here since the counters were reset. Each server counts its own; never replicated."""

    name = models.CharField(max_length=60, primary_key=True)
    value = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class AuditRecord(models.Model):
    """One change of the audit trail (``core.audit``): who (account and client address),
    when, on which server, what object, and its fields before and after (a secret only
    as "changed"). Replicated by ``uid``; only ever added."""

    uid = models.CharField(max_length=36, unique=True)
    created = models.DateTimeField(db_index=True)
    server = models.CharField(max_length=100)
    account = models.CharField(max_length=150, blank=True, db_index=True)
    address = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=40, db_index=True)
    object_id = models.CharField(max_length=200, blank=True, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=40)
    summary = models.TextField()
    changes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.summary
