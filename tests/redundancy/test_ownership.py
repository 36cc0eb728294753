"""Who handles which user: the epoch rules of the assignment, with both servers' state
machines stepped together on one fake clock, heartbeats between them as the link allows.

The invariant every scenario checks at every beat: two servers that are running never
register the users of the same home at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from core.assignment import Assignment, home_for_new, newest
from redundancy.statemachine import (
    FAILOVER,
    NORMAL,
    PEER_LOST,
    Claims,
    Observations,
    State,
    Verdict,
    Witness,
    decide,
    join_verdict,
)

UUID = "123e4567-e89b-12d3-a456-426614174000"
MASTER = Claims(node="kws-a", mode="master", firmware="PCS06B", database_uuid=UUID)
BACKUP = Claims(node="kws-b", mode="slave", firmware="PCS06B", database_uuid=UUID)
WINDOW, BEAT = 2.0, 0.5


@dataclass
class Server:
    """One server's state machine and what it stores between beats."""

    claims: Claims
    failover_time: float
    state: State = field(default_factory=State)
    slot: str = ""
    assignment: Assignment | None = None
    registering: str = ""
    running: bool = True
    peer_seen_at: float | None = None
    # The peer's status as its last heartbeat here said it.
    heard: dict = field(default_factory=dict)
    witness: Witness | None = None
    reasons: list[str] = field(default_factory=list)
    # Its SIP process works (core.health); what its heartbeat says when it does not.
    healthy: bool = True

    @property
    def mode(self) -> str:
        return self.claims.mode

    def status(self) -> dict:
        unserved = "" if self.healthy else "its SIP process has done no work for 5.0 s"
        return {"slot": self.slot, "assignment": self.assignment, "phase": self.state.phase,
                "unserved": unserved,
                "registering": self.registering, "claims": self.claims}  # fmt: skip

    def step(self, now: float) -> None:
        peer = self.heard.get("claims")
        verdict = None
        if self.mode == "slave" and peer is not None:
            verdict = join_verdict(peer, self.claims)
        obs = Observations(
            mode=self.mode, failover_time=self.failover_time, detection_window=WINDOW,
            own=self.claims, peer=peer, peer_seen_at=self.peer_seen_at, verdict=verdict,
            witness=self.witness, slot=self.slot, assignment=self.assignment,
            registering=self.registering,
            peer_slot=self.heard.get("slot", ""), peer_assignment=self.heard.get("assignment"),
            peer_registering=self.heard.get("registering", ""),
            peer_phase=self.heard.get("phase", ""), own_healthy=self.healthy,
            peer_unserved=self.heard.get("unserved", ""),
        )  # fmt: skip
        d = decide(self.state, obs, now)
        self.state, self.slot, self.assignment = d.state, d.slot, d.assignment
        self.registering = d.registering
        self.reasons.append(d.reason)

    def restart(self, now: float) -> None:
        """A new process: the phase is forgotten, the slot and assignment are kept."""
        self.state = State(joined_before=self.state.joined_before, started_at=now)
        self.registering = ""
        self.peer_seen_at = None
        self.running = True


class Pair:
    def __init__(self, *, failover_time: float = 2.0) -> None:
        self.now = 1000.0
        self.a = Server(MASTER, failover_time)
        self.b = Server(BACKUP, failover_time)
        self.link = True
        self.overlaps: list[tuple[float, str, str]] = []

    def beat(self, count: int = 1) -> None:
        for _ in range(count):
            self.now += BEAT
            a_status, b_status = self.a.status(), self.b.status()
            if self.link and self.a.running and self.b.running:
                for server, other in ((self.a, b_status), (self.b, a_status)):
                    server.heard, server.peer_seen_at = other, self.now
            for server in (self.a, self.b):
                if server.running:
                    server.step(self.now)
            if self.a.running and self.b.running:
                both = set(self.a.registering) & set(self.b.registering)
                if both:
                    self.overlaps.append((self.now, self.a.registering, self.b.registering))

    def seconds(self, seconds: float) -> None:
        self.beat(int(seconds / BEAT))

    def formed(self) -> Pair:
        self.seconds(3)
        assert (self.a.registering, self.b.registering) == ("A", "B")
        assert self.a.assignment.serving == "AB" == self.b.assignment.serving
        return self


def test_the_pair_forms_with_each_user_on_its_home_server():
    pair = Pair().formed()
    assert (pair.a.slot, pair.b.slot) == ("A", "B")
    assert pair.a.assignment == pair.b.assignment
    assert pair.overlaps == []


def test_a_backup_registers_nothing_until_its_master_has_let_go_of_its_half():
    pair = Pair()
    seen = []
    for _ in range(6):  # the master alone serves everything, then gives the backup its half
        pair.beat()
        seen.append((pair.a.registering, pair.b.registering))
    assert seen[0] == ("AB", "")
    assert seen[-1] == ("A", "B")
    assert pair.overlaps == []


def test_a_short_cut_of_the_link_moves_nobody():
    pair = Pair(failover_time=30).formed()
    before = pair.a.assignment
    pair.link = False
    pair.seconds(3)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    pair.link = True
    pair.seconds(2)
    assert pair.a.assignment == before == pair.b.assignment
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []


def test_a_lost_master_is_taken_over_with_a_new_epoch_then_its_users_come_back():
    pair = Pair(failover_time=1).formed()
    epoch = pair.a.assignment.epoch
    pair.a.running = False  # kill -9
    pair.seconds(WINDOW + 1 + 1)
    assert pair.b.state.phase == FAILOVER
    assert pair.b.assignment == Assignment(epoch + 1, False, "B")
    assert pair.b.registering == "AB"

    pair.a.restart(pair.now)
    pair.beat()
    assert pair.a.registering == ""  # it heard that the backup holds everything
    assert pair.a.assignment.epoch >= epoch + 1
    pair.seconds(2)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.a.assignment == pair.b.assignment == Assignment(epoch + 2, True, "AB")
    assert pair.overlaps == []


def test_a_paused_master_lets_go_at_once_when_it_resumes_and_takes_its_half_back():
    pair = Pair(failover_time=2).formed()
    pair.a.running = False  # SIGSTOP: its state stays as it was
    pair.seconds(3 * WINDOW)
    assert pair.b.registering == "AB"
    pair.a.running = True  # SIGCONT: it never noticed it was away
    pair.beat()
    assert pair.a.registering == "" and pair.overlaps == []
    pair.seconds(2)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []


def test_a_lost_backup_is_taken_over_by_the_master_and_rejoins_with_its_half():
    pair = Pair(failover_time=1).formed()
    pair.b.running = False
    pair.seconds(WINDOW + 2)
    assert pair.a.registering == "AB" and pair.a.assignment.serving == "A"
    pair.b.restart(pair.now)
    pair.seconds(2)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []


def test_both_servers_restarted_together_move_nobody():
    pair = Pair().formed()
    kept = pair.a.assignment
    pair.a.restart(pair.now)
    pair.b.restart(pair.now)
    pair.beat()
    pair.seconds(2)
    assert pair.a.assignment == kept == pair.b.assignment
    assert (pair.a.registering, pair.b.registering) == ("A", "B")


def test_a_restarted_server_that_hears_no_peer_waits_the_detection_window_first():
    pair = Pair(failover_time=30).formed()
    pair.link = False
    pair.a.restart(pair.now)
    pair.beat()
    assert pair.a.registering == ""
    pair.seconds(WINDOW)
    assert pair.a.registering == "A"  # its own half, as before; no takeover yet


def test_a_split_brain_without_the_base_stations_confirmation_moves_nobody():
    pair = Pair(failover_time=1).formed()
    for server in (pair.a, pair.b):
        server.witness = Witness(known=4, confirmed=False, summary="0 of 4")
    pair.link = False
    pair.seconds(10)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.a.assignment == pair.b.assignment


def test_a_stale_assignment_arriving_after_a_newer_one_changes_nothing():
    node = Server(BACKUP, 15, slot="B", assignment=Assignment(5, True, "AB"))
    node.heard = {"claims": MASTER, "slot": "A", "assignment": Assignment(4, True, "A"),
                  "registering": "A"}  # fmt: skip
    node.peer_seen_at = 1000.0
    node.state = State(phase=NORMAL, joined_before=True)
    node.step(1000.0)
    assert node.assignment == Assignment(5, True, "AB")


def test_of_two_decisions_of_one_epoch_the_masters_wins():
    masters, backups = Assignment(7, True, "A"), Assignment(7, False, "B")
    assert newest(backups, masters) == masters == newest(masters, backups)
    assert newest(Assignment(8, False, "B"), masters).serving == "B"


def test_a_backup_that_never_heard_its_master_registers_nobody():
    node = Server(BACKUP, 0)
    for t in range(10):
        node.step(1000.0 + t)
    assert node.assignment is None and node.registering == ""


def test_a_backup_takes_the_slot_its_master_does_not_hold():
    pair = Pair()
    pair.a.slot = "B"  # a promoted backup keeps its slot as master
    pair.seconds(3)
    assert pair.b.slot == "A"
    assert (pair.a.registering, pair.b.registering) == ("B", "A")


@pytest.mark.parametrize(
    ("counts", "coin", "home"),
    [({"A": 3, "B": 5}, 0.9, "A"), ({"A": 5, "B": 3}, 0.1, "B"), ({"A": 4, "B": 4}, 0.1, "A"),
     ({"A": 4, "B": 4}, 0.7, "B"), ({}, 0.2, "A")],
)  # fmt: skip
def test_a_new_user_goes_to_the_smaller_half(counts, coin, home):
    assert home_for_new(counts, coin) == home


def test_the_split_of_many_new_users_stays_within_one_of_half():
    counts = {"A": 0, "B": 0}
    for n in range(1001):
        counts[home_for_new(counts, (n * 0.618) % 1)] += 1
        assert abs(counts["A"] - counts["B"]) <= 1


def test_every_scenario_keeps_the_reasons_readable():
    pair = Pair(failover_time=0).formed()
    pair.a.running = False
    pair.seconds(WINDOW + 1)
    assert any("failover" in r for r in pair.b.reasons)
    assert all(r for r in pair.a.reasons + pair.b.reasons)


def test_assignments_round_trip_through_json_and_refuse_malformed_ones():
    a = Assignment(3, False, "B")
    assert Assignment.from_dict(a.as_dict()) == a
    for bad in ({"epoch": -1, "by_master": True, "serving": "AB"},
                {"epoch": 1, "by_master": "yes", "serving": "AB"},
                {"epoch": 1, "by_master": True, "serving": "C"}, [], None, {"epoch": True}):  # fmt: skip
        assert Assignment.from_dict(bad) is None
    assert replace(a, epoch=4) > a
    assert Verdict(True).accepted


def test_a_master_whose_sip_process_stopped_is_taken_over_and_gets_its_users_back():
    pair = Pair(failover_time=1).formed()
    for server in (pair.a, pair.b):  # no split brain to fear: the master says so itself
        server.witness = Witness(known=4, confirmed=False, summary="0 of 4")
    pair.a.healthy = False
    pair.seconds(WINDOW + 1)
    assert pair.b.state.phase == FAILOVER and pair.b.registering == "AB"
    assert "cannot serve its users" in pair.b.reasons[-1]
    pair.seconds(3)
    assert pair.a.registering == "" and pair.a.assignment.serving == "B"  # it waits
    pair.a.healthy = True
    pair.seconds(3)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []


def test_a_backup_whose_sip_process_stopped_hands_its_half_to_the_master():
    pair = Pair(failover_time=0).formed()
    pair.b.healthy = False
    pair.seconds(2)
    assert pair.a.registering == "AB" and pair.b.registering == ""
    pair.b.healthy = True
    pair.seconds(3)
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []


def test_a_server_that_just_started_declares_nobody_lost_before_the_window_has_passed():
    pair = Pair(failover_time=0)
    pair.link = False
    pair.a.restart(pair.now)
    pair.beat()
    assert pair.a.state.phase != FAILOVER and "starting" in pair.a.reasons[-1]
    pair.seconds(WINDOW + 0.5)
    assert pair.a.state.phase == FAILOVER  # then the lone master serves every user


def test_an_old_master_that_finds_a_promoted_one_steps_down_and_serves_nobody_next_to_it():
    from redundancy.statemachine import StepDown

    pair = Pair(failover_time=0).formed()
    pair.a.running = False  # the master is lost; the backup takes over and is promoted
    pair.seconds(WINDOW + 1)
    assert pair.b.registering == "AB"
    pair.b.claims = replace(pair.b.claims, mode="master")
    pair.b.assignment = Assignment(pair.b.assignment.epoch + 1, True, "B")  # the promotion
    pair.b.state = State(phase=FAILOVER, joined_before=True, took_over_at=pair.now)
    pair.beat()
    pair.a.restart(pair.now)  # the old master comes back, still configured as master
    stepped = False
    for _ in range(6):
        pair.beat()
        last = pair.a.reasons[-1]
        if last.startswith("stepping down") and not stepped:
            stepped = True
            pair.a.claims = replace(pair.a.claims, mode="slave")  # what StepDown does
        assert pair.a.registering == "" or stepped
    assert stepped and pair.overlaps == []
    pair.seconds(3)  # it joins the promoted master as backup and gets its half
    assert (pair.a.slot, pair.b.slot) == ("A", "B")
    assert (pair.a.registering, pair.b.registering) == ("A", "B")
    assert pair.overlaps == []
    assert StepDown  # the action the runner carries out


def test_the_new_master_of_a_switchover_does_not_step_down_for_the_master_handing_over():
    pair = Pair(failover_time=0).formed()
    # The backup accepted the switchover (scenarios.switchover_accept): master, a fresh
    # engine. The old master has not stepped to backup yet and says it is handing over;
    # its assignment is newer than the new master's (it raised it last).
    pair.b.claims = replace(pair.b.claims, mode="master")
    pair.b.state = State(phase=PEER_LOST, joined_before=True)
    pair.a.claims = replace(pair.a.claims, handing_over=True)
    pair.a.assignment = Assignment(pair.a.assignment.epoch + 1, True, "AB")
    pair.beat()
    assert "handing the master role" in pair.b.reasons[-1]
    assert not any(reason.startswith("stepping down") for reason in pair.b.reasons)
    # Without the mark, the same claims are a master that came back: one steps down.
    pair.a.claims = replace(pair.a.claims, handing_over=False)
    pair.beat()
    assert pair.b.reasons[-1].startswith("stepping down")
