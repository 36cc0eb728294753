"""Status > Statistics: the counters an administrator watches, for this server and its peer.

Each server counts its own events (``core.counters``: registrations, refused devices,
delivered messages, failovers), records each failover it carried out (``FailoverRecord``:
detection, users taken over, users registered, devices moved) and samples what it serves
every few minutes for the chart of the last 24 hours (``StatisticsSample``, kept two
days). Nothing here is replicated: the peer's figures come in its heartbeat
(``heartbeat_statistics``, a few hundred bytes) and the page shows what it last said;
the peer's samples are asked over the peer API (``GET statistics``) when the page opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from basestations.selectors import attached_ids, devices_moved_since, devices_per_node
from core.counters import NAMES, count, counters_flush, counters_read, counters_reset
from core.models import NodeState
from core.peer import PeerClient
from core.selectors import config_read, peer_name
from core.services import event_record
from redundancy.models import FailoverRecord, StatisticsSample
from redundancy.selectors import replication_status
from users.models import DectUser, SipRegistration
from users.selectors import registration_progress

# Samples for the chart: one every settings.STATISTICS_SAMPLE_EVERY seconds (beat), kept
# SAMPLES_KEPT; the peer is asked for at most SAMPLES_SENT of its last 24 hours.
SAMPLES_SENT = 1000
SAMPLES_KEPT = timedelta(days=2)
CHART_SPAN = timedelta(hours=24)
# The chart's colours (SVG attributes: the page's policy allows no inline style).
BLUE, AMBER = "#00457c", "#b26a00"
# Failovers kept for the page; the counter ``failovers`` counts them all.
FAILOVERS_KEPT = 20
# How long after a takeover (seconds) the last moved user may take to register and still
# be timed; a refresh (after half the expiry at the earliest) would move the time later.
REGISTERED_WAIT = 120.0


# --- Failovers ------------------------------------------------------------------------


def _moment(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def failover_begin(*, lost_at: float | None, started_at: float, users_moved: int) -> int:
    """Record a failover this server has just carried out (``started_at``: when its engine
    took the users over) and count it; return the record's id."""
    # The users are this server's from the engine's decision on (its new assignment: the
    # SIP process registers them from then on), not from when this task runs.
    record = FailoverRecord.objects.create(
        lost_at=_moment(lost_at),
        started_at=_moment(started_at),
        taken_over_at=_moment(started_at),
        users_moved=users_moved,
        peer=peer_name()[:100],
    )
    stale = FailoverRecord.objects.values_list("pk", flat=True)[FAILOVERS_KEPT:]
    FailoverRecord.objects.filter(pk__in=list(stale)).delete()
    count("failovers")
    counters_flush(force=True)
    return record.pk


def failover_devices_done(record_id: int, *, moved: int) -> None:
    """The peer's devices have come here (``moved`` of them), or the wait for them ended."""
    record = FailoverRecord.objects.filter(pk=record_id).first()
    if record is None:
        return
    last = _moved_devices_last(record.started_at)
    FailoverRecord.objects.filter(pk=record_id).update(devices_moved=moved, devices_at=last)


def _moved_devices_last(since: datetime) -> datetime | None:
    return devices_moved_since(since).get("last_at")


def failovers_registered_check(*, now: datetime | None = None) -> int:
    """Record when the last user of a recent failover (within ``REGISTERED_WAIT`` of its
    takeover) registered with the PBX, once every user this server took over is
    registered; return how many failovers were completed so. Run at every engine beat:
    one small query while no failover waits, and no worker thread held meanwhile. The
    time is the last registration's own, however late the check."""
    now = now or timezone.now()
    waiting = list(
        FailoverRecord.objects.filter(
            registered_at=None, taken_over_at__gte=now - timedelta(seconds=REGISTERED_WAIT)
        )
    )
    if not waiting or not config_read()["sip.registrar"]:
        return 0
    moved = DectUser.objects.exclude(home=NodeState.load().slot)
    total = moved.count()
    done = 0
    for record in waiting:
        registered = SipRegistration.objects.filter(
            user__in=moved,
            state=SipRegistration.State.REGISTERED,
            changed_at__gte=record.lost_at or record.started_at,
        )
        if total and registered.count() >= total:
            last = registered.aggregate(last=Max("changed_at"))["last"]
            done += FailoverRecord.objects.filter(pk=record.pk).update(registered_at=last)
    return done


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(max(0.0, (later - earlier).total_seconds()), 2)


def failover_summary(record: FailoverRecord) -> dict[str, Any]:
    """A failover in the words of the page and the heartbeat: when, and seconds from the
    detection (the peer found lost) to the takeover, to the users registered and to the
    devices here (None: not yet, or never)."""
    detected = record.lost_at or record.started_at
    return {
        "at": detected.isoformat(),
        "peer": record.peer,
        "users": record.users_moved,
        "taken_over_s": _seconds(record.taken_over_at, detected),
        "registered_s": _seconds(record.registered_at, detected),
        "devices_s": _seconds(record.devices_at, detected),
        "devices": record.devices_moved,
    }


# The failovers the heartbeat carries (and the page shows) of each server, newest first.
FAILOVERS_SHOWN = 3


def failovers_recent(limit: int = FAILOVERS_SHOWN) -> list[dict[str, Any]]:
    return [failover_summary(r) for r in FailoverRecord.objects.all()[:limit]]


# --- Samples for the chart --------------------------------------------------------------


def statistics_sample(*, now: datetime | None = None) -> StatisticsSample:
    """Record what this server serves now (one sample) and drop samples older than
    ``SAMPLES_KEPT``; also writes this process's counters."""
    now = now or timezone.now()
    registered, handled = registration_progress()
    attached = attached_ids(now)
    sample = StatisticsSample.objects.create(
        at=now,
        users_handled=handled,
        users_registered=registered,
        basestations=len(attached.get("rfp", [])),
        media_resources=len(attached.get("media", [])),
    )
    StatisticsSample.objects.filter(at__lt=now - SAMPLES_KEPT).delete()
    counters_flush(force=True)
    return sample


def samples_recent(*, now: datetime | None = None) -> list[StatisticsSample]:
    """This server's samples of the last 24 hours, oldest first."""
    now = now or timezone.now()
    return list(StatisticsSample.objects.filter(at__gte=now - CHART_SPAN, at__lte=now))


def samples_answer() -> tuple[int, dict[str, Any]]:
    """The peer API's statistics: this server's samples of the last 24 hours as rows
    ``[epoch, users handled, users registered, base stations, media resources]`` (about
    30 bytes a sample), for the peer's Statistics page."""
    rows = [
        [round(s.at.timestamp(), 1), s.users_handled, s.users_registered, s.basestations,
         s.media_resources]
        for s in samples_recent()[-SAMPLES_SENT:]
    ]  # fmt: skip
    return 200, {"node": settings.NODE_NAME, "samples": rows}


def samples_parse(answer: Any) -> list[StatisticsSample]:
    """The samples of a peer's answer (``samples_answer``), unsaved; ValueError names what
    is wrong."""
    rows = answer.get("samples") if isinstance(answer, dict) else None
    if not isinstance(rows, list) or len(rows) > SAMPLES_SENT:
        raise ValueError(f"samples must be a list of at most {SAMPLES_SENT} rows")
    samples = []
    for n, row in enumerate(rows):
        if not (
            isinstance(row, list)
            and len(row) == 5
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
            and all(isinstance(v, int) and v >= 0 for v in row[1:])
        ):
            raise ValueError(f"samples[{n}] must be [time, handled, registered, rfp, media]")
        try:
            at = datetime.fromtimestamp(row[0], UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"samples[{n}]: {row[0]!r} is not a time") from None
        samples.append(
            StatisticsSample(at=at, users_handled=row[1], users_registered=row[2],
                             basestations=row[3], media_resources=row[4])
        )  # fmt: skip
    return samples


def peer_samples(*, timeout: float = 2.0) -> tuple[str, list[StatisticsSample]]:
    """The peer's name and its samples of the last 24 hours, asked over the peer API;
    PeerError (it does not answer, or refuses) or ValueError (a malformed answer)."""
    answer = PeerClient.from_config(timeout=timeout).call("GET", "/api/peer/statistics")
    samples = samples_parse(answer)
    return str(answer.get("node") or peer_name())[:100], samples


@dataclass(frozen=True)
class Series:
    """One line of the chart: its points in the chart's coordinates and its scale."""

    label: str
    color: str
    points: str
    top: int
    last: int | None


@dataclass(frozen=True)
class Chart:
    """An inline SVG chart of the last 24 hours (drawn by the template, no script)."""

    width: int
    height: int
    left: int
    plot_width: int
    plot_height: int
    series: list[Series]
    ticks: list[tuple[float, str]] = field(default_factory=list)
    empty: bool = False


def _scale_top(value: int) -> int:
    """A round top for the y axis at or above ``value``."""
    if value <= 0:
        return 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if value <= step:
            return step
    magnitude = 10 ** (len(str(value)) - 1)
    return -(-value // magnitude) * magnitude


def chart_build(samples: list[StatisticsSample], *, now: datetime,
                width: int = 640, height: int = 160) -> list[Chart]:  # fmt: skip
    """Two charts of the last 24 hours from ``samples``: users registered (of handled),
    and devices attached (base stations, media resources). Each line is a polyline over
    the hours, its y axis from 0 to a round top."""
    left, bottom, top_margin = 44, 20, 8
    plot_width, plot_height = width - left - 8, height - bottom - top_margin
    start = now - CHART_SPAN
    window = [s for s in samples if start <= s.at <= now]
    span = CHART_SPAN.total_seconds()

    def x_of(moment: datetime) -> float:
        return round(left + (moment - start).total_seconds() / span * plot_width, 1)

    ticks = []
    for hours_ago in (24, 18, 12, 6, 0):
        moment = now - timedelta(hours=hours_ago)
        ticks.append((x_of(moment), "now" if hours_ago == 0 else f"−{hours_ago} h"))

    def series(label: str, color: str, values: list[int], top: int) -> Series:
        points = " ".join(
            f"{x_of(s.at)},{round(top_margin + plot_height * (1 - v / top), 1)}"
            for s, v in zip(window, values, strict=True)
        )
        return Series(label, color, points, top, values[-1] if values else None)

    charts = []
    groups = (
        (
            ("Users registered", BLUE, [s.users_registered for s in window]),
            ("Users handled", AMBER, [s.users_handled for s in window]),
        ),
        (
            ("Base stations attached", BLUE, [s.basestations for s in window]),
            ("Media resources attached", AMBER, [s.media_resources for s in window]),
        ),
    )
    for group in groups:
        top = _scale_top(max((v for _, _, values in group for v in values), default=0))
        charts.append(
            Chart(
                width=width,
                height=height,
                left=left,
                plot_width=plot_width,
                plot_height=plot_height,
                series=[series(label, color, values, top) for label, color, values in group],
                ticks=ticks,
                empty=not window,
            )
        )
    return charts


# --- The page and the heartbeat ---------------------------------------------------------


def heartbeat_statistics() -> dict[str, Any]:
    """What the heartbeat carries of this server's statistics: its counters and its last
    last failovers (about 250 bytes, and 150 a failover)."""
    return {"counters": counters_read(), "failovers": failovers_recent()}


def heartbeat_statistics_parse(payload: dict[str, Any]) -> None:
    """Check the statistics of a peer's heartbeat (absent in an older peer's: fine);
    ValueError names what is wrong."""
    counters = payload.get("counters")
    if counters is not None:
        if not isinstance(counters, dict) or len(counters) > 64:
            raise ValueError("counters must be an object of at most 64 counters")
        for name, value in counters.items():
            if len(name) > 60 or not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"counters.{name[:60]} must be a whole number")
    failovers = payload.get("failovers", [])
    if not isinstance(failovers, list) or len(failovers) > 10:
        raise ValueError("failovers must be a list of at most 10 failovers")
    for n, failover in enumerate(failovers):
        if not isinstance(failover, dict):
            raise ValueError(f"failovers[{n}] must be an object")
        for name in ("taken_over_s", "registered_s", "devices_s"):
            value = failover.get(name)
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"failovers[{n}].{name} must be a number of seconds")
        for name in ("users", "devices"):
            if not isinstance(failover.get(name, 0), int):
                raise ValueError(f"failovers[{n}].{name} must be a whole number")
        for name in ("at", "peer"):
            if not isinstance(failover.get(name, ""), str):
                raise ValueError(f"failovers[{n}].{name} must be a string")


@dataclass(frozen=True)
class NodeStatistics:
    """One server's column of the Statistics page."""

    name: str
    is_self: bool
    known: bool  # False: the peer has not sent statistics (an older peer, or none yet)
    stale: bool
    users_handled: int | None
    users_registered: int | None
    counters: dict[str, int]
    recent_failovers: list[dict[str, Any]]
    devices: dict[str, int] | None
    replication: dict[str, Any]
    mode: str

    @property
    def failover(self) -> dict[str, Any] | None:
        """The last failover this server carried out (None: none)."""
        return self.recent_failovers[0] if self.recent_failovers else None

    @property
    def registration_attempts(self) -> int:
        return self.counters.get("sip.registrations", 0) + self.counters.get(
            "sip.registration_failures", 0
        )

    @property
    def refusals(self) -> int:
        return sum(v for k, v in self.counters.items() if k.startswith("devices.refused."))

    @property
    def registration_failures(self) -> int:
        return self.counters.get("sip.registration_failures", 0)

    @property
    def failovers(self) -> int:
        return self.counters.get("failovers", 0)

    @property
    def refused_firmware(self) -> int:
        return self.counters.get("devices.refused.firmware", 0)

    @property
    def refused_authentication(self) -> int:
        return self.counters.get("devices.refused.authentication", 0)

    @property
    def refused_unknown(self) -> int:
        return self.counters.get("devices.refused.unknown", 0)

    @property
    def messages_delivered(self) -> int:
        return self.counters.get("messages.delivered", 0)


def _dated(failover: dict[str, Any]) -> dict[str, Any]:
    """A failover summary with its moment as a time (``when``) for the page."""
    try:
        when = datetime.fromisoformat(failover.get("at", ""))
    except (TypeError, ValueError):
        when = None
    return {**failover, "when": when}


def statistics_overview() -> tuple[NodeStatistics, NodeStatistics | None]:
    """This server's statistics and its peer's (as its last heartbeat said; None for a
    single server)."""
    values = config_read()
    mode = values["redundancy.mode"]
    registered, handled = registration_progress()
    devices = devices_per_node()
    own = NodeStatistics(
        name=settings.NODE_NAME,
        is_self=True,
        known=True,
        stale=False,
        users_handled=handled,
        users_registered=registered,
        counters=counters_read(),
        recent_failovers=[_dated(f) for f in failovers_recent()],
        devices=devices.get(settings.NODE_NAME),
        replication=replication_status(),
        mode=mode,
    )
    if mode == "single":
        return own, None
    state = NodeState.load()
    status = state.peer_status or {}
    claims = status.get("claims") or {}
    age = (timezone.now() - state.peer_seen_at).total_seconds() if state.peer_seen_at else None
    stale = age is None or age > settings.DETECTION_WINDOW
    counters = status.get("counters")
    peer = NodeStatistics(
        name=claims.get("node") or values["redundancy.peer"],
        is_self=False,
        known=isinstance(counters, dict),
        stale=stale,
        users_handled=status.get("users_handled"),
        users_registered=status.get("users_registered"),
        counters={**dict.fromkeys(NAMES, 0), **counters} if isinstance(counters, dict) else {},
        recent_failovers=[_dated(f) for f in status.get("failovers") or [] if isinstance(f, dict)],
        devices=None
        if stale
        else next((v for k, v in devices.items() if k != settings.NODE_NAME), None),
        replication=status.get("replication") or {},
        mode=claims.get("mode", ""),
    )
    return own, peer


def statistics_reset(*, actor: str) -> None:
    """Start this server's counters from 0 again (the peer keeps its own); the failovers
    and the chart's samples are kept."""
    counters_reset()
    event_record(kind="statistics", message="Statistics counters reset", actor=actor)
