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

from core.assignment import BOTH, SLOTS, Assignment, newest, other_slot

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
    # A master handing its role to its backup (a switchover between the backup's
    # promotion and the master's own step to backup).
    handing_over: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claims:
        return cls(
            node=str(data.get("node", "")),
            mode=str(data.get("mode", "")),
            firmware=str(data.get("firmware", "")),
            database_uuid=str(data.get("database_uuid", "")),
            features=dict(data.get("features") or {}),
            ari=str(data.get("ari", "")),
            handing_over=data.get("handing_over") is True,
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
    # Who handles which user (core.assignment): this server's slot and the newest
    # assignment it knows, and the peer's as its last heartbeat said them.
    slot: str = ""
    assignment: Assignment | None = None
    # The homes whose users this server registered after the last decision.
    registering: str = ""
    peer_slot: str = ""
    peer_assignment: Assignment | None = None
    # The homes whose users the peer said it registers.
    peer_registering: str = ""
    # Health (core.health): whether this server can serve its users (its SIP process
    # works), why the peer cannot ('' if it can, as its last heartbeat said), and the
    # phase the peer said it is in (the pair is whole when it sees this server too).
    own_healthy: bool = True
    peer_unserved: str = ""
    peer_phase: str = ""


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
    # When the engine (re)started: until the peer is heard, or the detection window has
    # passed, this server cannot tell whether the peer took its users over meanwhile.
    started_at: float | None = None

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
class StepDown:
    """This master becomes the backup of the other master, which holds a newer
    assignment (a backup promoted while this server was away): nothing else changes."""

    reason: str


@dataclass(frozen=True)
class AdoptDatabaseUUID:
    """Backup: store the master's database UUID (ours was reset)."""

    database_uuid: str


Action = RecordEvent | TakeOver | StepDown | AdoptDatabaseUUID


@dataclass(frozen=True)
class Decision:
    state: State
    actions: list[Action]
    reason: str
    locked: bool
    lock_reason: str
    # Whether this server may register users at all: a rejected backup, or one that
    # never joined, handles none.
    handles_users: bool
    # This server's slot and the newest assignment (None: none yet, a backup that has not
    # heard its master), and the homes whose users it registers now: those it owns under
    # the assignment, less those the peer may still hold ("" none, "A", "B" or "AB").
    slot: str = ""
    assignment: Assignment | None = None
    registering: str = ""
    # When this decision runs out with nothing new heard (``recheck_at``): the detection
    # deadline of the peer, the end of the failover time, or the next look at the base
    # stations' witness. The runner decides again then, not only at the next beat, so a
    # lost peer is found the window after it was last heard, not up to a beat later.
    recheck_at: float | None = None


# How soon to look at the base stations again while a takeover waits for their witness
# (they report the lost peer within their own keep-alive interval), and for how long
# after the detection (then at each beat: a split brain lasts).
WITNESS_RECHECK = 0.2
WITNESS_RECHECK_FOR = 5.0
# A deadline is checked just after it: the peer is alive while ``now - seen <= window``.
DEADLINE_MARGIN = 0.01


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
        d = _decision(obs, State(phase=SINGLE), [], "single server: no peer")
        return replace(d, registering=BOTH)

    peer_name = obs.peer.node if obs.peer else "the peer"
    alive = obs.peer_seen_at is not None and now - obs.peer_seen_at <= obs.detection_window
    if alive and obs.peer_unserved:
        # It answers, but cannot serve its users: lost like a silent peer, by its own word
        # (no split brain to fear, so the base stations need not confirm).
        d = _decide_peer_silent(
            state, obs, now, peer_name, why=f"cannot serve its users: {obs.peer_unserved}"
        )
    elif alive:
        d = _decide_peer_alive(state, obs, now, peer_name)
    else:
        d = _decide_peer_silent(state, obs, now, peer_name)
    # Only the accepted pair ends in phase normal: then the peer's word on the
    # assignment counts. A peer that answers and shares our database may hold users even
    # when it cannot serve them all: what it holds is respected.
    talking = alive and obs.peer is not None and obs.peer.database_uuid == obs.own.database_uuid
    d = _ownership(obs, d, now, trusted=alive and d.state.phase == NORMAL, talking=talking)
    return replace(d, recheck_at=_recheck_at(obs, d.state, now, alive=alive))


def _recheck_at(obs: Observations, state: State, now: float, *, alive: bool) -> float | None:
    """When to decide again though nothing new was heard (None: at the next beat)."""
    if alive and not obs.peer_unserved and obs.peer_seen_at is not None:
        return obs.peer_seen_at + obs.detection_window + DEADLINE_MARGIN
    if state.phase != PEER_LOST or state.lost_at is None:
        return None
    if now - state.lost_at < obs.failover_time:
        return state.lost_at + obs.failover_time
    if state.held_back and now - state.lost_at < obs.failover_time + WITNESS_RECHECK_FOR:
        return now + WITNESS_RECHECK
    return None


def _owned(assignment: Assignment | None, slot: str) -> set[str]:
    """The homes whose users ``slot`` owns under ``assignment``."""
    if assignment is None or not slot or not assignment.serves(slot):
        return set()
    return {slot} if assignment.serving == BOTH else set(SLOTS)


def _ownership(
    obs: Observations, d: Decision, now: float, *, trusted: bool, talking: bool
) -> Decision:
    """This server's slot, the newest assignment, and the homes it registers now.

    - A master without a slot takes A; a backup takes the slot its master does not hold.
    - A newer assignment of the accepted peer is adopted (a later epoch; of the same
      epoch, the master's).
    - The survivor of a failure (a TakeOver) raises the epoch above every assignment it
      knows and serves every user; the master gives the users back to their homes
      (epoch + 1, both) once the pair is whole: the backup has joined and says it sees
      the master too (phase normal), and the master can serve its own half.
    - It registers what it owns; with the peer in the pair, a home it gains only once
      the peer has reported this assignment's epoch and does not register that home
      (a lost peer holds nothing). So the two never register the same user: who loses
      users lets go at once, who gains them waits for the loser to say so.
    - After a (re)start it registers nothing until it has heard the peer or the
      detection window has passed without it.
    """
    slot = obs.slot
    peer_a = obs.peer_assignment if trusted else None
    if obs.mode == "master" and not slot:
        slot = "B" if trusted and obs.peer_slot == "A" else "A"
    elif obs.mode == "slave" and trusted and obs.peer_slot:
        slot = other_slot(obs.peer_slot)
    assignment = obs.assignment
    if obs.mode == "master" and assignment is None:
        assignment = Assignment(epoch=0, by_master=True, serving=slot)
    if peer_a is not None:
        assignment = newest(assignment, peer_a)
    actions = list(d.actions)
    if any(isinstance(a, TakeOver) for a in actions) and slot:
        base = newest(assignment, obs.peer_assignment)
        assignment = Assignment(base.epoch + 1, obs.mode == "master", slot)
    elif (
        obs.mode == "master"
        and trusted
        and obs.peer_phase == NORMAL
        and obs.own_healthy
        and assignment is not None
        and assignment.serving != BOTH
    ):
        assignment = Assignment(assignment.epoch + 1, True, BOTH)
        peer_name = obs.peer.node if obs.peer else "the backup"
        actions.append(
            RecordEvent(
                "assignment",
                f"Users back on both servers ({assignment.describe()}): each user on its "
                f"home server, {obs.own.node} and {peer_name}",
            )
        )
    registering: set[str] = set()
    starting = (
        d.state.started_at is not None
        and obs.peer_seen_at is None
        and now - d.state.started_at < obs.detection_window
    )
    stepping_down = any(isinstance(a, StepDown) for a in actions)
    if d.handles_users and not starting and not stepping_down:
        owned = _owned(assignment, slot)
        registering = owned
        if (trusted or talking) and assignment is not None:
            # The peer has seen this assignment (or a newer one) only if its epoch is at
            # least ours; until then it may still hold what it held, or take it again.
            # A peer without any assignment (a backup joining) holds nothing.
            peer = obs.peer_assignment
            caught_up = peer is None or peer.epoch >= assignment.epoch
            held = set(obs.peer_registering) if caught_up else set()
            before = set(obs.registering)
            kept = (owned & before) - held
            gained = (owned - before - set(obs.peer_registering)) if caught_up else set()
            registering = kept | gained
    return replace(
        d,
        actions=actions,
        slot=slot,
        assignment=assignment,
        registering="".join(sorted(registering)),
    )


def _two_masters(state: State, obs: Observations, peer_name: str) -> Decision:
    """Both servers say they are master: one was promoted while the other was away. The
    one with the older assignment steps down to backup; neither takes the other's users
    over. (Of equal assignments, the server with the greater ARI steps down.)"""
    assert obs.peer is not None
    ours = obs.assignment
    theirs = obs.peer_assignment
    older = theirs is not None and (
        ours is None or theirs > ours or (theirs == ours and obs.own.ari > obs.peer.ari)
    )
    if older:
        why = (
            f"{peer_name} is the master now (its assignment {theirs.describe()} is newer "
            "than this server's): this server steps down to backup and changes nothing"
        )
        actions: list[Action] = [RecordEvent("step_down", f"Stepped down: {why}", "warning"),
                                 StepDown(why)]  # fmt: skip
        new = replace(state, phase=REJECTED, rejection=why)
        return _decision(obs, new, actions, f"stepping down: {why}")
    why = f"{peer_name} says it is master too; its assignment is older: it must step down"
    actions = []
    if state.rejection != why:
        actions.append(RecordEvent("two_masters", f"Another master is back: {why}", "warning"))
    new = replace(state, phase=REJECTED, rejection=why, lost_at=None)
    return _decision(obs, new, actions, f"two masters: {why}")


def _decide_peer_alive(state: State, obs: Observations, now: float, peer_name: str) -> Decision:
    assert obs.peer is not None
    actions: list[Action] = []
    if obs.mode == "master" and obs.peer.mode == "master":
        if obs.peer.handing_over:
            # A switchover made this server master a moment before the old master steps
            # to backup: it is not a master that came back, and nobody steps down.
            return _decision(obs, state, [], f"{peer_name} is handing the master role to "
                                             "this server")  # fmt: skip
        return _two_masters(state, obs, peer_name)
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


def _decide_peer_silent(
    state: State, obs: Observations, now: float, peer_name: str, *, why: str = ""
) -> Decision:
    actions: list[Action] = []
    if why:
        silent_for = why
    elif obs.peer_seen_at is None:
        silent_for = "never heard"
    else:
        silent_for = f"silent for {now - obs.peer_seen_at:.1f} s"

    starting = state.started_at is not None and now - state.started_at < obs.detection_window
    if obs.peer_seen_at is None and starting and state.phase == SINGLE:
        # Just (re)started: the peer has not had the detection window to answer yet.
        return _decision(obs, state, actions, f"starting: waiting to hear {peer_name}")
    if state.phase in (SINGLE, NORMAL, REJECTED):
        new = replace(state, phase=PEER_LOST, lost_at=now, rejection="")
        if state.phase == NORMAL:
            actions.append(
                RecordEvent(
                    "peer_lost",
                    f"{peer_name} lost: {why or 'no valid heartbeat, ' + silent_for} "
                    f"(detection window {obs.detection_window:g} s); failover in "
                    f"{obs.failover_time:g} s",
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
    if witness is not None and witness.known and not witness.confirmed and not why:
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
