from __future__ import annotations

from django.db import models


class Node(models.TextChoices):
    """The NODE column: the server that handles a user now, the master or the backup."""

    MASTER = "M", "M"
    BACKUP = "S", "S"


class Home(models.TextChoices):
    """A user's home: the slot of the pair (core.assignment) that handles it while both
    servers serve; chosen at random once, when the user is created."""

    A = "A", "A"
    B = "B", "B"


class DectUser(models.Model):
    """A handset user of the DECT system. Which server handles it (the NODE column) follows
    from its ``home`` and the pair's assignment (``users.selectors``)."""

    class Subscription(models.TextChoices):
        NONE = "none", "not subscribed"
        ENABLED = "enabled", "subscription enabled"
        SUBSCRIBED = "subscribed", "subscribed"

    extension = models.CharField(max_length=32, unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    ipei = models.CharField("IPEI", max_length=13, unique=True, null=True, blank=True)
    access_code = models.CharField(max_length=8, blank=True)
    sip_username = models.CharField("SIP user", max_length=64, blank=True)
    sip_password = models.CharField("SIP password", max_length=128, blank=True)
    subscription = models.CharField(
        max_length=12, choices=Subscription.choices, default=Subscription.NONE
    )
    home = models.CharField(max_length=1, choices=Home.choices, default=Home.A)

    class Meta:
        ordering = ["extension"]
        # The Users list sorted by name, ties broken by id (users.tables), either way.
        indexes = [models.Index(fields=["display_name", "id"], name="dectuser_name")]

    def __str__(self) -> str:
        return f"{self.extension} {self.display_name}".strip()


class SipRegistration(models.Model):
    """This server's SIP registration of one user with the PBX (runtime state, not replicated)."""

    class State(models.TextChoices):
        PENDING = "pending", "registering"
        REGISTERED = "registered", "registered"
        FAILED = "failed", "failed"
        UNREGISTERED = "unregistered", "not registered"

    user = models.OneToOneField(
        DectUser, on_delete=models.CASCADE, primary_key=True, related_name="registration"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The heartbeat sends the peer the rows changed after its cursor, in this order.
            models.Index(fields=["changed_at", "user"], name="sipreg_changed"),
            # The Users list's registration filter: the few failed or registering users.
            models.Index(fields=["state"], name="sipreg_state"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.state}"


class PeerRegistration(models.Model):
    """The peer's SIP registration of a user it handles, as its heartbeats reported it
    (runtime state, not replicated), so either server's Users list shows every user.
    ``changed_at`` is the peer's own time: the latest row is the cursor of what arrived."""

    user = models.OneToOneField(
        DectUser, on_delete=models.CASCADE, primary_key=True, related_name="peer_registration"
    )
    state = models.CharField(max_length=12, choices=SipRegistration.State.choices)
    reason = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["changed_at", "user"], name="peerreg_changed"),
            models.Index(fields=["state"], name="peerreg_state"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.state} (peer)"


class PbxLink(models.Model):
    """The PBX this server's SIP process registers its users with now (runtime state, not
    replicated; one row): written when the process switches PBX, so the pages say which
    PBX this server talks to and whether a change of PBX is still re-registering."""

    registrar = models.CharField(max_length=300, blank=True)  # host:port; '' none
    transport = models.CharField(max_length=3, blank=True)
    domain = models.CharField(max_length=253, blank=True)
    # The PBX before the switch ('' at the process's first switch): a change of PBX.
    previous = models.CharField(max_length=300, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    # The REGISTER rate in use (None: unlimited), why it last changed (an adaptive rate's
    # "backing off: 503 from the PBX", or "fixed (sip.rate)") and when.
    rate = models.FloatField(null=True, blank=True)
    rate_reason = models.CharField(max_length=200, blank=True)
    rate_changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.registrar or "no PBX"

    @classmethod
    def load(cls) -> PbxLink:
        link, _ = cls.objects.get_or_create(pk=1)
        return link
