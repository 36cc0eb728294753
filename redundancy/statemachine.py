"""The redundancy engine's decisions, as a pure function of state, observations and time.

``decide(state, observations, now)`` returns the node's next state, the
actions to carry out and one readable sentence saying why. It does no I/O and
never reads the clock, so every rule of the application note is a unit test
with a fake clock. ``redundancy.runner`` collects the observations, calls it
and carries out the actions.

The rules, in the words of the application note:

- The backup joins the master only with the same firmware, the same licensed
  features and the same database UUID; otherwise it is rejected and an event
  names the cause on both servers. A backup with an empty UUID takes the
  master's.
- A failure of the peer is detected when no valid heartbeat arrived within the
  detection window (the note: within 15 s). The survivor then waits
  ``redundancy.failover_time`` seconds before it takes over the peer's users.
- When the pair forms, the master splits the users 50/50 at random.
- On a backup, configuration is locked (it is done on the master); during a
  failover on the backup nothing can be changed. A master is never locked: on
  a backup failure it runs as a single server. (The rule is ``core.rules``;
  a decision reports what it says for the new phase.)
- Split brain: the two servers may lose each other while both still run. A
  server takes over only when the base stations confirm the peer is lost too
  (60 % + 1 of them report it unreachable); otherwise it says "peer
  unreachable, no takeover" and keeps serving its own users.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The phases and the lock rule are core's: every writer asks the same rule.
from core.rules import (  # noqa: F401 (LOCK_* re-exported for the tests' tables)
    FAILOVER,
    LOCK_BACKUP,
    LOCK_FAILOVER,
    NORMAL,
    PEER_LOST,
    REJECTED,
    SINGLE,
    Scope,
    write_rule,
)


@dataclass(frozen=True)
class Claims:
    """What a server says of itself in every heartbeat."""

    node: str
    mode: str
    firmware: str
    database_uuid: str
    features: dict[str, Any] = field(default_factory=dict)
    # The server's own ARI (the backup acts under the master's with the ARI swap).
    ari: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claims:
        return cls(
            node=str(data.get("node", "")),
            mode=str(data.get("mode", "")),
            firmware=str(data.get("firmware", "")),
            database_uuid=str(data.get("database_uuid", "")),
            features=dict(data.get("features") or {}),
            ari=str(data.get("ari", "")),
        )


@dataclass(frozen=True)
class Verdict:
    """The master's judgement of a backup that wants to join."""

    accepted: bool
    reason: str = ""
    # The backup only lacks the master's database UUID: not a rejection.
    needs_uuid: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Verdict | None:
        if not data:
            return None
        return cls(
            accepted=bool(data.get("accepted")),
            reason=str(data.get("reason", "")),
            needs_uuid=bool(data.get("needs_uuid")),
        )


def _feature_difference(master: dict[str, Any], backup: dict[str, Any]) -> str:
    parts = []
    for name in sorted(set(master) | set(backup)):
        if master.get(name) != backup.get(name):
            m = master.get(name, "none")
            b = backup.get(name, "none")
            parts.append(f"{name}: master {m}, backup {b}")
    return "; ".join(parts)


def join_verdict(master: Claims, backup: Claims) -> Verdict:
    """The master's rules for a joining backup (firmware, features, UUID, role)."""
    if backup.mode != "slave":
        return Verdict(
            False, f"{backup.node} is configured as {backup.mode}, not as backup (slave)"
        )
    if backup.firmware != master.firmware:
        return Verdict(
            False,
            f"firmware differs: master {master.firmware}, backup {backup.firmware}",
        )
    if backup.features != master.features:
        difference = _feature_difference(master.features, backup.features)
        return Verdict(False, f"licensed features differ: {difference}")
    if not backup.database_uuid:
        return Verdict(False, "the backup has no database UUID yet: it takes the master's", True)
    if backup.database_uuid != master.database_uuid:
        return Verdict(
            False,
            f"database UUID differs: master {master.database_uuid}, backup "
            f"{backup.database_uuid} (reset the backup's UUID to fetch the master's)",
        )
    return Verdict(True)


@dataclass(frozen=True)
class Witness:
    """What the base stations say of the peer: the split-brain witness.

    ``confirmed`` when enough of them (60 % + 1) report the peer unreachable;
    ``known`` base stations configured (none: nothing can witness, and the
    survivor takes over on the heartbeat alone)."""

    known: int
    confirmed: bool
    summary: str = ""


@dataclass(frozen=True)
class Observations:
    """What the runner knows at a tick: this server's settings and claims, and the peer."""

    mode: str
    failover_time: float
    detection_window: float
    own: Claims
    peer: Claims | None = None
    # When the last valid message of the peer arrived (seconds, same clock as ``now``).
    peer_seen_at: float | None = None
    # The master's verdict on this backup, as the master last sent it.
    verdict: Verdict | None = None
    # The base stations' view of the peer; None: not consulted.
    witness: Witness | None = None


@dataclass(frozen=True)
class State:
    phase: str = SINGLE
    # When the peer was declared lost, and when this server took over its users.
    lost_at: float | None = None
    took_over_at: float | None = None
    # The last rejection's reason, so it is recorded once, not at every heartbeat.
    rejection: str = ""
    # The pair has formed at least once (a backup that never joined has nothing to serve).
    joined_before: bool = False
    # A takeover is held back because the base stations do not confirm the peer is lost
    # (recorded once, not at every beat).
    held_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


# --- Actions: what the runner carries out -------------------------------------


@dataclass(frozen=True)
class RecordEvent:
    kind: str
    message: str
    severity: str = "info"


@dataclass(frozen=True)
class TakeOver:
    """Take over every user (and device) of the lost peer."""


@dataclass(frozen=True)
class Rebalance:
    """Master: split the users 50/50 at random between master and backup."""


@dataclass(frozen=True)
class AdoptDatabaseUUID:
    """Backup: store the master's database UUID (ours was reset)."""

    database_uuid: str


Action = RecordEvent | TakeOver | Rebalance | AdoptDatabaseUUID


@dataclass(frozen=True)
class Decision:
    state: State
    actions: list[Action]
    reason: str
    locked: bool
    lock_reason: str
    # Whether this server registers its share of the users: a rejected backup,
    # or one that never joined, handles none.
    handles_users: bool


def _decision(obs: Observations, state: State, actions: list[Action], reason: str) -> Decision:
    rule = write_rule(Scope.SHARED, mode=obs.mode, phase=state.phase)
    locked, lock_reason = not rule.allowed, rule.reason
    idle_backup = obs.mode == "slave" and (
        state.phase == REJECTED or (state.phase != NORMAL and not state.joined_before)
    )
    return Decision(state, actions, reason, locked, lock_reason, handles_users=not idle_backup)


def decide(state: State, obs: Observations, now: float) -> Decision:
    """The node's next state, the actions to carry out, and why (one sentence)."""
    if obs.mode == "single":
        return _decision(obs, State(phase=SINGLE), [], "single server: no peer")

    peer_name = obs.peer.node if obs.peer else "the peer"
    alive = obs.peer_seen_at is not None and now - obs.peer_seen_at <= obs.detection_window
    if alive:
        return _decide_peer_alive(state, obs, now, peer_name)
    return _decide_peer_silent(state, obs, now, peer_name)


def _decide_peer_alive(state: State, obs: Observations, now: float, peer_name: str) -> Decision:
    assert obs.peer is not None
    actions: list[Action] = []
    if obs.mode == "master":
        verdict = join_verdict(obs.own, obs.peer)
    else:
        verdict = _backup_view(obs)
        if verdict.needs_uuid and obs.peer.database_uuid and not obs.own.database_uuid:
            actions.append(AdoptDatabaseUUID(obs.peer.database_uuid))
            return _decision(
                obs,
                state,
                actions,
                f"taking the database UUID {obs.peer.database_uuid} of master {peer_name}",
            )

    if verdict.needs_uuid:
        return _decision(obs, state, actions, f"waiting for {peer_name} to take this database UUID")

    if not verdict.accepted:
        if state.rejection != verdict.reason:
            who = f"backup {peer_name}" if obs.mode == "master" else "this backup"
            actions.append(RecordEvent("rejected", f"Rejected {who}: {verdict.reason}", "error"))
        new = replace(state, phase=REJECTED, rejection=verdict.reason, lost_at=None)
        if obs.mode == "master":
            # A master whose backup is rejected serves every user itself.
            if state.took_over_at is None:
                actions.append(TakeOver())
                new = replace(new, took_over_at=now)
        else:
            # A rejected backup is no part of the pair: it must not take over later.
            new = replace(new, took_over_at=None, joined_before=False)
        return _decision(obs, new, actions, f"rejected: {verdict.reason}")

    if state.phase != NORMAL:
        if state.phase in (PEER_LOST, FAILOVER) and state.joined_before:
            ended = state.phase.replace("_", " ")
            actions.append(RecordEvent("peer_returned", f"{peer_name} is back ({ended} ended)"))
        if obs.mode == "master":
            joined = f"Backup {peer_name} joined"
        else:
            joined = f"Joined master {peer_name}"
        actions.append(RecordEvent("join", joined))
        if obs.mode == "master":
            actions.append(Rebalance())
    new = State(phase=NORMAL, joined_before=True)
    return _decision(obs, new, actions, f"pair formed with {peer_name}: heartbeats arrive")


def _backup_view(obs: Observations) -> Verdict:
    """A backup trusts the master's verdict; it checks only that the peer is a master."""
    assert obs.peer is not None
    if obs.peer.mode != "master":
        mode = obs.peer.mode
        return Verdict(False, f"peer {obs.peer.node} is configured as {mode}, not as master")
    if not obs.own.database_uuid:
        return Verdict(False, "this backup has no database UUID yet", True)
    if obs.verdict is None:
        return Verdict(False, "no verdict from the master yet", True)
    return obs.verdict


def _decide_peer_silent(state: State, obs: Observations, now: float, peer_name: str) -> Decision:
    actions: list[Action] = []
    if obs.peer_seen_at is None:
        silent_for = "never heard"
    else:
        silent_for = f"silent for {now - obs.peer_seen_at:.1f} s"

    if state.phase in (SINGLE, NORMAL, REJECTED):
        new = replace(state, phase=PEER_LOST, lost_at=now, rejection="")
        if state.phase == NORMAL:
            actions.append(
                RecordEvent(
                    "peer_lost",
                    f"{peer_name} lost: no valid heartbeat, {silent_for} (detection window "
                    f"{obs.detection_window:g} s); failover in {obs.failover_time:g} s",
                    "warning",
                )
            )
        state = new
    if state.phase == FAILOVER:
        reason = f"failover: serving every user, {peer_name} {silent_for}"
        return _decision(obs, state, actions, reason)

    # PEER_LOST: wait failover_time, then take over if there is something to serve.
    assert state.lost_at is not None
    if obs.mode == "slave" and not state.joined_before:
        reason = (
            f"waiting for master {peer_name} ({silent_for}); never joined, nothing to take over"
        )
        return _decision(obs, state, actions, reason)
    waited = now - state.lost_at
    if waited < obs.failover_time:
        return _decision(
            obs,
            state,
            actions,
            f"{peer_name} {silent_for}; failover in {obs.failover_time - waited:.1f} s",
        )
    witness = obs.witness
    if witness is not None and witness.known and not witness.confirmed:
        # Split brain: the peer may be running and serving; only the devices can tell.
        if not state.held_back:
            actions.append(
                RecordEvent(
                    "no_takeover",
                    f"Peer unreachable, no takeover: {peer_name} {silent_for}, but the base "
                    f"stations do not confirm it is lost ({witness.summary}); serving this "
                    "server's own users",
                    "warning",
                )
            )
            state = replace(state, held_back=True)
        reason = (
            f"peer unreachable, no takeover: {peer_name} {silent_for}; "
            f"base stations: {witness.summary}"
        )
        return _decision(obs, state, actions, reason)
    actions.append(
        RecordEvent(
            "failover_started",
            f"Failover started: taking over the users of {peer_name} "
            f"({silent_for}, waited failover time {obs.failover_time:g} s)",
            "warning",
        )
    )
    actions.append(TakeOver())
    new = replace(state, phase=FAILOVER, took_over_at=now, held_back=False)
    return _decision(obs, new, actions, f"failover: taking over the users of {peer_name}")
