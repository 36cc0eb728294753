from django.db import models

from redundancy import statemachine as sm


class Phase(models.TextChoices):
    """The phases of redundancy.statemachine, with their labels for the GUI."""

    SINGLE = sm.SINGLE, "single"
    NORMAL = sm.NORMAL, "normal"
    PEER_LOST = sm.PEER_LOST, "peer lost"
    FAILOVER = sm.FAILOVER, "failover"
    REJECTED = sm.REJECTED, "rejected"


class NodeState(models.Model):
    """The runtime state of this node as the redundancy engine last decided it (one row)."""

    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.SINGLE)
    locked = models.BooleanField(default=False)
    lock_reason = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    last_tick = models.DateTimeField(null=True, blank=True)
    # The last valid message of the peer and what it said (its heartbeat status).
    peer_seen_at = models.DateTimeField(null=True, blank=True)
    peer_status = models.JSONField(default=dict, blank=True)
    # The state machine's own memory (redundancy.statemachine.EngineState as JSON).
    engine = models.JSONField(default=dict, blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.phase}{' (locked)' if self.locked else ''}"

    @classmethod
    def load(cls) -> "NodeState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state


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


# Replication has its own module; Django finds models through this one.
from redundancy.replication_models import *  # noqa: E402, F401, F403


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
