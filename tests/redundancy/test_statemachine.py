"""Every transition of the redundancy state machine, with a clock that moves only when told."""

from dataclasses import replace

import pytest

from redundancy.statemachine import (
    DEADLINE_MARGIN,
    FAILOVER,
    LOCK_BACKUP,
    LOCK_FAILOVER,
    NORMAL,
    PEER_LOST,
    REJECTED,
    SINGLE,
    WITNESS_RECHECK,
    WITNESS_RECHECK_FOR,
    AdoptDatabaseUUID,
    Claims,
    Observations,
    RecordEvent,
    State,
    TakeOver,
    Verdict,
    decide,
    join_verdict,
)

UUID = "123e4567-e89b-12d3-a456-426614174000"
OTHER_UUID = "99999999-e89b-12d3-a456-426614174000"
MASTER = Claims(node="kws-a", mode="master", firmware="PCS06B", database_uuid=UUID,
                features={"users": 500})  # fmt: skip
BACKUP = Claims(node="kws-b", mode="slave", firmware="PCS06B", database_uuid=UUID,
                features={"users": 500})  # fmt: skip


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Node:
    """Steps one node's state machine through a scenario."""

    def __init__(self, mode: str, *, failover_time: float = 15, window: float = 3, own=None):
        self.mode = mode
        self.failover_time = failover_time
        self.window = window
        self.own = own or (MASTER if mode == "master" else BACKUP)
        self.peer = BACKUP if mode == "master" else MASTER
        self.state = State()
        self.clock = FakeClock()
        self.peer_seen_at: float | None = None
        self.verdict: Verdict | None = Verdict(True) if mode == "slave" else None
        self.decision = None
        # Who handles which user: fed back from each decision, as the runner stores it.
        self.slot = ""
        self.registering = ""
        self.assignment = None
        # What the peer said of it (set by a test, or by Pair below).
        self.peer_slot = ""
        self.peer_assignment = None
        self.peer_registering = ""
        self.peer_phase = NORMAL  # the peer sees this server too, unless a test says not

    def hear_peer(self) -> None:
        self.peer_seen_at = self.clock.now

    def step(self, seconds: float = 0.0, *, heard: bool = False):
        self.clock.advance(seconds)
        if heard:
            self.hear_peer()
        obs = Observations(
            mode=self.mode,
            failover_time=self.failover_time,
            detection_window=self.window,
            own=self.own,
            peer=self.peer if self.peer_seen_at is not None else None,
            peer_seen_at=self.peer_seen_at,
            verdict=self.verdict,
            slot=self.slot,
            assignment=self.assignment,
            registering=self.registering,
            peer_slot=self.peer_slot,
            peer_assignment=self.peer_assignment,
            peer_registering=self.peer_registering,
            peer_phase=self.peer_phase if self.peer_seen_at is not None else "",
        )
        self.decision = decide(self.state, obs, self.clock.now)
        self.state = self.decision.state
        self.slot, self.assignment = self.decision.slot, self.decision.assignment
        self.registering = self.decision.registering
        return self.decision

    def paired(self):
        self.step(heard=True)
        assert self.state.phase == NORMAL
        return self


def kinds(decision):
    return [a.kind for a in decision.actions if isinstance(a, RecordEvent)]


def has(decision, action_type):
    return any(isinstance(a, action_type) for a in decision.actions)


# --- Single server -------------------------------------------------------------


def test_a_single_server_is_single_unlocked_and_does_nothing():
    d = Node("single").step()
    assert (d.state.phase, d.locked, d.actions) == (SINGLE, False, [])
    assert d.reason == "single server: no peer"


# --- Forming the pair ------------------------------------------------------------


def test_the_master_forms_the_pair_and_gives_the_backup_its_half_when_it_is_heard():
    d = Node("master").step(heard=True)
    assert d.state.phase == NORMAL and d.state.joined_before
    assert d.assignment.serving == "AB"
    assert kinds(d) == ["join", "assignment"]
    assert "Backup kws-b joined" in d.actions[0].message
    assert not d.locked


def test_the_backup_joins_without_deciding_the_split_and_is_locked():
    d = Node("slave").step(heard=True)
    assert d.state.phase == NORMAL
    assert "assignment" not in kinds(d)
    assert (d.locked, d.lock_reason) == (True, LOCK_BACKUP)
    assert d.handles_users


def test_a_formed_pair_stays_quiet_while_heartbeats_arrive():
    node = Node("master").paired()
    for _ in range(10):
        d = node.step(1.0, heard=True)
        assert d.actions == [] and d.state.phase == NORMAL


# --- Join rules (seed: same firmware, licensed features and database UUID) --------


def test_join_verdict_accepts_an_identical_backup():
    assert join_verdict(MASTER, BACKUP) == Verdict(True)


@pytest.mark.parametrize(
    ("backup", "reason"),
    [
        (replace(BACKUP, firmware="PCS06A"), "firmware differs: master PCS06B, backup PCS06A"),
        (replace(BACKUP, features={"users": 100}),
         "licensed features differ: users: master 500, backup 100"),
        (replace(BACKUP, features={"users": 500, "messaging": True}),
         "licensed features differ: messaging: master none, backup True"),
        (replace(BACKUP, database_uuid=OTHER_UUID), f"database UUID differs: master {UUID}, backup {OTHER_UUID}"),
        (replace(BACKUP, mode="master"), "kws-b is configured as master, not as backup (slave)"),
    ],
)  # fmt: skip
def test_join_verdict_rejects_and_names_the_cause(backup, reason):
    verdict = join_verdict(MASTER, backup)
    assert not verdict.accepted and not verdict.needs_uuid
    assert reason in verdict.reason


def test_a_backup_without_uuid_is_not_rejected_but_takes_the_masters():
    verdict = join_verdict(MASTER, replace(BACKUP, database_uuid=""))
    assert verdict.needs_uuid and not verdict.accepted

    node = Node("slave", own=replace(BACKUP, database_uuid=""))
    node.verdict = verdict
    d = node.step(heard=True)
    assert d.actions == [AdoptDatabaseUUID(UUID)]
    assert d.state.phase != REJECTED and kinds(d) == []


def test_the_master_rejects_once_and_serves_every_user_itself():
    node = Node("master")
    node.peer = replace(BACKUP, firmware="PCS05A")
    d = node.step(heard=True)
    assert d.state.phase == REJECTED
    assert kinds(d) == ["rejected"]
    assert "firmware differs" in d.actions[0].message and d.actions[0].severity == "error"
    assert has(d, TakeOver)
    d = node.step(1, heard=True)
    assert d.actions == []  # recorded once, taken over once
    assert not d.locked


def test_the_backup_follows_the_masters_verdict_and_handles_no_users():
    node = Node("slave")
    node.verdict = Verdict(False, "licensed features differ: users: master 500, backup 100")
    d = node.step(heard=True)
    assert d.state.phase == REJECTED
    assert kinds(d) == ["rejected"]
    assert "master 500, backup 100" in d.actions[0].message
    assert not d.handles_users
    assert node.step(1, heard=True).actions == []


def test_a_rejected_backup_joins_once_the_cause_is_fixed():
    node = Node("slave")
    node.verdict = Verdict(False, "firmware differs: master PCS06B, backup PCS06A")
    node.step(heard=True)
    node.verdict = Verdict(True)
    d = node.step(1, heard=True)
    assert d.state.phase == NORMAL and kinds(d) == ["join"]


def test_a_backup_refuses_a_peer_that_is_not_a_master():
    node = Node("slave")
    node.peer = replace(MASTER, mode="slave")
    d = node.step(heard=True)
    assert d.state.phase == REJECTED
    assert "is configured as slave, not as master" in d.reason


# --- Detection window and failover time (seed: detected within 15 s, then wait) ----


@pytest.mark.parametrize(("silence", "phase"), [(2.9, NORMAL), (3.0, NORMAL), (3.1, PEER_LOST)])
def test_the_peer_is_lost_only_after_the_detection_window(silence, phase):
    node = Node("slave").paired()
    d = node.step(silence)
    assert d.state.phase == phase


def test_master_failure_backup_waits_failover_time_then_takes_over_and_locks():
    node = Node("slave", failover_time=15, window=3).paired()
    d = node.step(3.5)
    assert d.state.phase == PEER_LOST and kinds(d) == ["peer_lost"]
    assert "failover in 15 s" in d.actions[0].message
    assert not has(d, TakeOver)
    d = node.step(14.9)
    assert d.state.phase == PEER_LOST and not has(d, TakeOver)
    assert "failover in 0.1 s" in d.reason
    d = node.step(0.1)
    assert d.state.phase == FAILOVER
    assert has(d, TakeOver) and kinds(d) == ["failover_started"]
    assert (d.locked, d.lock_reason) == (True, LOCK_FAILOVER)
    assert d.handles_users
    d = node.step(5)
    assert d.state.phase == FAILOVER and d.actions == []


def test_failover_time_zero_takes_over_at_detection():
    node = Node("slave", failover_time=0).paired()
    d = node.step(3.1)
    assert d.state.phase == FAILOVER and has(d, TakeOver)
    assert kinds(d) == ["peer_lost", "failover_started"]


def test_a_decision_runs_out_at_the_peers_detection_deadline_not_at_the_next_beat():
    node = Node("slave", failover_time=0, window=3).paired()
    heard = node.clock.now
    d = node.step(1.3)
    assert d.state.phase == NORMAL
    assert d.recheck_at == pytest.approx(heard + 3 + DEADLINE_MARGIN)
    # Deciding again at that moment finds the peer lost: 3.01 s after it was last heard,
    # where a beat every second would have found it up to a second later.
    d = node.step(d.recheck_at - node.clock.now)
    assert d.state.phase == FAILOVER and kinds(d) == ["peer_lost", "failover_started"]


def test_a_lost_peer_is_taken_over_when_the_failover_time_ends_and_then_nothing_is_due():
    node = Node("slave", failover_time=15, window=3).paired()
    d = node.step(3.5)
    assert d.state.phase == PEER_LOST
    assert d.recheck_at == pytest.approx(d.state.lost_at + 15)
    d = node.step(d.recheck_at - node.clock.now)
    assert d.state.phase == FAILOVER and has(d, TakeOver)
    assert d.recheck_at is None  # the beat goes on; nothing runs out


def test_a_single_server_and_a_healthy_pair_need_no_early_decision():
    assert Node("single").step().recheck_at is None
    node = Node("slave", window=3).paired()
    d = node.step(0.5, heard=True)
    assert d.recheck_at == pytest.approx(node.clock.now + 3 + DEADLINE_MARGIN)


def test_backup_failure_master_runs_alone_and_unlocked():
    node = Node("master", failover_time=15).paired()
    node.step(4)
    d = node.step(15)
    assert d.state.phase == FAILOVER and has(d, TakeOver)
    assert not d.locked


def test_a_peer_that_returns_before_failover_time_causes_no_failover():
    node = Node("slave").paired()
    assert node.step(4).state.phase == PEER_LOST
    d = node.step(5, heard=True)
    assert d.state.phase == NORMAL
    assert kinds(d) == ["peer_returned", "join"]
    assert not has(d, TakeOver)


def test_flapping_peer_never_triggers_a_takeover_while_each_gap_is_short():
    node = Node("slave", failover_time=10).paired()
    for _ in range(20):
        node.step(4)  # lost
        node.step(4, heard=True)  # back before failover time
    assert node.state.took_over_at is None


# --- The master returns; the backup returns --------------------------------------------


def test_master_returns_backup_ends_failover_and_unlocks_configuration_of_the_pair():
    node = Node("slave", failover_time=0).paired()
    node.step(4)
    assert node.state.phase == FAILOVER
    d = node.step(30, heard=True)
    assert d.state.phase == NORMAL and d.state.took_over_at is None
    assert kinds(d) == ["peer_returned", "join"]
    assert d.lock_reason == LOCK_BACKUP


def test_backup_returns_master_gives_it_its_half_back():
    node = Node("master", failover_time=0).paired()
    node.step(4)
    assert node.decision.assignment.serving == "A"
    d = node.step(60, heard=True)
    assert d.state.phase == NORMAL and d.assignment.serving == "AB"
    assert kinds(d) == ["peer_returned", "join", "assignment"]


def test_a_restarted_master_keeps_the_split_it_had():
    node = Node("master").paired()
    kept = node.decision.assignment
    node.state = State(joined_before=True)  # the engine resets its phase at start
    d = node.step(heard=True)
    assert d.assignment == kept and "assignment" not in kinds(d)


# --- Start-up without a peer -------------------------------------------------------------


def test_a_master_without_backup_takes_every_user_after_failover_time():
    node = Node("master", failover_time=5)
    d = node.step()
    assert d.state.phase == PEER_LOST and "never heard" in d.reason
    assert kinds(d) == []  # nothing was lost: the pair never formed
    d = node.step(5)
    assert d.state.phase == FAILOVER and has(d, TakeOver)


def test_a_backup_that_never_joined_waits_and_takes_nothing_over():
    node = Node("slave", failover_time=0)
    for _ in range(5):
        d = node.step(10)
    assert d.state.phase == PEER_LOST
    assert not has(d, TakeOver)
    assert "never joined, nothing to take over" in d.reason
    assert not d.handles_users


def test_a_rejected_backup_does_not_take_over_when_the_master_disappears():
    node = Node("slave", failover_time=0).paired()
    node.verdict = Verdict(False, "database UUID differs")
    node.step(1, heard=True)
    d = node.step(10)
    assert d.state.phase == PEER_LOST and not has(d, TakeOver)


def test_state_survives_a_round_trip_through_json():
    node = Node("slave", failover_time=0).paired()
    node.step(4)
    assert State.from_dict(node.state.as_dict()) == node.state
    assert State.from_dict({"phase": "normal", "unknown": 1}) == State(phase=NORMAL)


# --- Split brain: the base stations witness -----------------------------------------------


def witness(confirmed: bool, known: int = 10):
    from redundancy.statemachine import Witness

    return Witness(known=known, confirmed=confirmed, summary=f"{7 if confirmed else 0} of {known}")


def step_with_witness(node, seconds, w):
    """One step of ``node`` with a witness observation."""
    from redundancy.statemachine import Observations

    node.clock.advance(seconds)
    obs = Observations(mode=node.mode, failover_time=node.failover_time,
                       detection_window=node.window, own=node.own, peer=node.peer,
                       peer_seen_at=node.peer_seen_at, verdict=node.verdict, witness=w)  # fmt: skip
    node.decision = decide(node.state, obs, node.clock.now)
    node.state = node.decision.state
    return node.decision


@pytest.mark.parametrize("mode", ["master", "slave"])
def test_without_the_base_stations_confirmation_there_is_no_takeover(mode):
    node = Node(mode, failover_time=0).paired()
    d = step_with_witness(node, 3.1, witness(False))
    assert d.state.phase == PEER_LOST and not has(d, TakeOver)
    assert "peer unreachable, no takeover" in d.reason
    assert kinds(d) == ["peer_lost", "no_takeover"]
    d = step_with_witness(node, 5, witness(False))
    assert d.actions == []  # recorded once
    assert d.handles_users  # it keeps serving its own users


def test_the_takeover_follows_once_the_base_stations_confirm():
    node = Node("slave", failover_time=0).paired()
    step_with_witness(node, 3.1, witness(False))
    d = step_with_witness(node, 1, witness(True))
    assert d.state.phase == FAILOVER and has(d, TakeOver)


def test_a_takeover_awaiting_the_witness_looks_again_soon_then_only_at_the_beats():
    node = Node("slave", failover_time=0).paired()
    d = step_with_witness(node, 3.1, witness(False))
    assert d.recheck_at == pytest.approx(node.clock.now + WITNESS_RECHECK)
    d = step_with_witness(node, WITNESS_RECHECK, witness(True))
    assert d.state.phase == FAILOVER and has(d, TakeOver)
    # A split brain lasts: after a few seconds the beat alone looks again.
    node = Node("slave", failover_time=0).paired()
    step_with_witness(node, 3.1, witness(False))
    lost_at = node.state.lost_at
    d = step_with_witness(node, WITNESS_RECHECK_FOR + 0.1, witness(False))
    assert node.clock.now - lost_at > WITNESS_RECHECK_FOR and d.recheck_at is None


def test_the_link_returns_after_a_split_and_the_pair_forms_without_a_takeover():
    node = Node("slave", failover_time=0).paired()
    step_with_witness(node, 3.1, witness(False))
    node.hear_peer()
    d = step_with_witness(node, 1, witness(False))
    assert d.state.phase == NORMAL and d.state.took_over_at is None
    assert not d.state.held_back


def test_without_configured_base_stations_the_heartbeat_alone_decides():
    node = Node("slave", failover_time=0).paired()
    d = step_with_witness(node, 3.1, None)
    assert d.state.phase == FAILOVER


# --- The runner's one-off ticks (redundancy.runner.recheck_plan) -----------------------


def test_a_recheck_before_the_next_beat_is_queued_once_and_a_later_one_is_left_to_the_beat():
    from redundancy.runner import recheck_plan

    assert recheck_plan(100.4, None, 100.0, beat=1.0) == (100.4, 100.4)
    # Queued already for that moment (or sooner): the beat that follows queues no other.
    assert recheck_plan(100.4, 100.4, 100.1, beat=1.0) == (None, 100.4)
    assert recheck_plan(100.6, 100.4, 100.1, beat=1.0) == (None, 100.4)
    # One queued for later than now needed: a sooner one is queued beside it.
    assert recheck_plan(100.2, 100.4, 100.1, beat=1.0) == (100.2, 100.2)
    # One that ran (its moment passed) no longer counts.
    assert recheck_plan(100.9, 100.4, 100.5, beat=1.0) == (100.9, 100.9)
    # Not before the next beat, or nothing due: nothing queued.
    assert recheck_plan(101.5, None, 100.0, beat=1.0) == (None, None)
    assert recheck_plan(None, 100.4, 100.0, beat=1.0) == (None, 100.4)
    assert recheck_plan(100.4, "garbage", 100.0, beat=1.0) == (100.4, 100.4)
