"""Reads of the users app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, Count, F, Func, IntegerField, Q, QuerySet, Subquery, Value, When

from core.assignment import BOTH, SLOTS, Assignment, other_slot
from core.health import engine_fresh
from core.models import NodeState
from core.selectors import config_read, node_mode_and_state
from users.models import DectUser, PbxLink, PeerRegistration, SipRegistration

LETTER = {"master": "M", "slave": "S", "single": "M"}
# Registration states a heartbeat carries at most: 10,000 users reach the peer in 5 beats.
REGISTRATIONS_PER_HEARTBEAT = 2000


def own_letter(mode: str | None = None) -> str:
    """The NODE letter of the users this server handles (``mode``: redundancy.mode, read
    if not given)."""
    return LETTER[config_read()["redundancy.mode"] if mode is None else mode]


def handled_users(state: NodeState | None = None) -> QuerySet[DectUser]:
    """The users this server registers now: every user on a single server; on a paired
    one the users of the homes its engine last said it registers (``NodeState.registering``,
    see ``redundancy.statemachine``; of ``state`` when given), and none while its engine is
    not deciding."""
    mode = config_read()["redundancy.mode"]
    if mode == "single":
        return DectUser.objects.all()
    state = NodeState.load() if state is None else state
    if not state.registering or not engine_fresh(state):
        return DectUser.objects.none()
    if state.registering == BOTH:
        return DectUser.objects.all()
    return DectUser.objects.filter(home=state.registering)


def node_column(mode: str | None = None, state: NodeState | None = None) -> Value | Case:
    """The NODE column (M: the master handles the user, S: the backup) as this server's
    assignment says, for annotating user querysets: ``.annotate(node=node_column())``.
    ``mode`` (redundancy.mode) and ``state`` are read if not given."""
    if mode is None:
        mode = config_read()["redundancy.mode"]
    if state is None:
        state = NodeState.load()
    assignment = Assignment.from_dict(state.assignment)
    if mode == "single" or not state.slot or assignment is None:
        return Value("M")
    master_slot = state.slot if mode == "master" else other_slot(state.slot)
    if assignment.serving != BOTH:
        return Value("M" if assignment.serving == master_slot else "S")
    return Case(When(home=master_slot, then=Value("M")), default=Value("S"))


def users_with_node(
    queryset: QuerySet[DectUser] | None = None, *, node: Value | Case | None = None
) -> QuerySet[DectUser]:
    """Users annotated with their NODE letter (``node``; ``node_column()`` if not given)."""
    queryset = DectUser.objects.all() if queryset is None else queryset
    return queryset.annotate(node=node_column() if node is None else node)


@dataclass(frozen=True)
class UserListNode:
    """What the Users list needs to know of this server, read once per request."""

    own_letter: str  # the NODE letter of the users this server handles
    column: Value | Case  # the NODE column, for users_with_node
    users: int  # how many users there are


def user_list_node() -> UserListNode:
    """The NODE facts of the Users list and how many users there are, in one query
    (redundancy.mode, the node state and the users' count)."""
    # COUNT(*), not COUNT(id): SQLite reads a whole table's count from its b-tree.
    count = Func(template="COUNT(*)", output_field=IntegerField())
    users = Subquery(DectUser.objects.order_by().annotate(n=count).values("n"))
    mode, state = node_mode_and_state(users=users)
    return UserListNode(
        own_letter=own_letter(mode), column=node_column(mode, state), users=state.users
    )


def user_list_rows(node: UserListNode) -> QuerySet[DectUser]:
    """The Users list's rows: every user with its registrations, its NODE letter (``node``)
    and its ``registration_state`` to sort by: this server's own state for the users it
    handles, else the one the peer's heartbeats reported."""
    queryset = DectUser.objects.select_related("registration", "peer_registration")
    return users_with_node(queryset, node=node.column).annotate(
        registration_state=Case(
            When(node=node.own_letter, then=F("registration__state")),
            default=F("peer_registration__state"),
        )
    )


@dataclass(frozen=True)
class UserListCounts:
    total: int  # every user
    matching: int  # the users the search and filters leave


def user_list_counts(matching: QuerySet[DectUser], *, filtered: bool, total: int) -> UserListCounts:
    """How many of the ``total`` users ``matching`` has: a query only if ``filtered``.
    The count reads only the matching rows (a count of the matches among all users
    would join every user's registrations for its sub-select)."""
    return UserListCounts(total=total, matching=matching.count() if filtered else total)


def home_counts() -> dict[str, int]:
    """How many users each home has: the split of the pair."""
    counts = dict(DectUser.objects.values_list("home").annotate(n=Count("id")))
    return {slot: counts.get(slot, 0) for slot in SLOTS}


def registration_progress() -> tuple[int, int]:
    """(registered, handled): how many of the users this server handles are registered."""
    users = handled_users()
    handled = users.count()
    registered = SipRegistration.objects.filter(
        user__in=users, state=SipRegistration.State.REGISTERED
    ).count()
    return registered, handled


@dataclass(frozen=True)
class SipSummary:
    """The registration state of the users this server handles, and the PBX it talks to."""

    registrar: str  # as configured (sip.registrar); '' none
    talking_to: str  # the PBX the SIP process uses now, host:port; '' none
    transport: str
    switched_from: str  # the PBX before the last switch ('' none: a first registration)
    since: datetime | None  # when the SIP process switched to ``talking_to``
    handled: int
    registered: int
    pending: int
    failed: int
    last_error: str  # the latest failure's reason ('' none)
    last_error_at: datetime | None
    # The REGISTER rate the SIP process uses now and why it last changed (PbxLink).
    rate_text: str = ""
    rate_changed_at: datetime | None = None

    @property
    def unregistered(self) -> int:
        return self.handled - self.registered - self.pending - self.failed

    @property
    def progress(self) -> str:
        """'re-registering with <registrar>: N of M registered' while users of this server
        are still waiting for the PBX's answer; '' once each has one."""
        if not self.pending or not self.talking_to:
            return ""
        verb = "re-registering" if self.switched_from else "registering"
        return f"{verb} with {self.talking_to}: {self.registered} of {self.handled} registered"


def sip_summary() -> SipSummary:
    """How many of the users this server handles are registered, registering, failed and
    not registered, the PBX its SIP process talks to, and the last error a PBX gave."""
    users = handled_users()
    state = SipRegistration.State
    counts = users.aggregate(
        handled=Count("id"),
        registered=Count("id", filter=Q(registration__state=state.REGISTERED)),
        pending=Count("id", filter=Q(registration__state=state.PENDING)),
        failed=Count("id", filter=Q(registration__state=state.FAILED)),
    )
    last = (
        SipRegistration.objects.filter(user__in=users, state=state.FAILED)
        .order_by("-changed_at")
        .values_list("reason", "changed_at")
        .first()
    )
    link = PbxLink.load()
    return SipSummary(
        rate_text=sip_rate_text(link),
        rate_changed_at=link.rate_changed_at,
        registrar=config_read()["sip.registrar"],
        talking_to=link.registrar,
        transport=link.transport,
        switched_from=link.previous,
        since=link.since,
        last_error=last[0] if last else "",
        last_error_at=last[1] if last else None,
        **counts,
    )


def sip_rate_text(link: PbxLink) -> str:
    """'425 REGISTERs per second (adaptive, up to 10000): backing off: 503 from the PBX', or
    the fixed rate, as the SIP process last recorded it ('' before it did or without a PBX)."""
    if not link.rate_reason or not link.registrar:
        return ""
    values = config_read()
    if link.rate is None:
        return "unlimited"
    if values["sip.rate"] == "auto" and not link.rate_reason.startswith("fixed"):
        return (
            f"{link.rate:.0f} REGISTERs per second (adaptive, up to {values['sip.rate_max']}): "
            f"{link.rate_reason}"
        )
    return f"{link.rate:.0f} registrations per second (fixed: sip.rate)"


def peer_registering() -> int:
    """How many users the peer is registering (waiting for the PBX's answer), as its
    heartbeats last said."""
    return PeerRegistration.objects.filter(state=SipRegistration.State.PENDING).count()


def registrations_changed_since(
    cursor: list[Any] | None, *, limit: int = REGISTRATIONS_PER_HEARTBEAT
) -> list[list[Any]]:
    """This server's registration states changed after ``cursor`` (``[changed_at ISO,
    user id]``, the last one the peer said it has), oldest first, at most ``limit``:
    rows ``[user id, state, reason, changed_at ISO]`` for the heartbeat."""
    rows = SipRegistration.objects.order_by("changed_at", "user_id")
    if cursor:
        at, user_id = datetime.fromisoformat(cursor[0]), cursor[1]
        rows = rows.filter(Q(changed_at__gt=at) | Q(changed_at=at, user_id__gt=user_id))
    return [
        [user_id, state, reason, changed_at.isoformat()]
        for user_id, state, reason, changed_at in rows.values_list(
            "user_id", "state", "reason", "changed_at"
        )[:limit]
    ]


def peer_registrations_cursor() -> list[Any] | None:
    """The last of the peer's registration states that arrived here, as the peer's
    heartbeat sends them after it: ``[changed_at ISO, user id]``, None before the first."""
    last = (
        PeerRegistration.objects.order_by("-changed_at", "-user_id")
        .values_list("changed_at", "user_id")
        .first()
    )
    return [last[0].isoformat(), last[1]] if last else None


def sip_credentials() -> list[tuple[str, str]]:
    """Every user's SIP username and password (for a registrar's table; never shown)."""
    return list(
        DectUser.objects.exclude(sip_username="").values_list("sip_username", "sip_password")
    )
