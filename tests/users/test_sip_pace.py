"""The adaptive REGISTER rate (users/sip/pace.py), driven by a fake clock."""

from __future__ import annotations

import pytest

from users.sip.pace import RateController


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def answer(pace: RateController, clock: FakeClock, n: int, *, per_second: float, rtt=0.002):
    for _ in range(n):
        clock.advance(1 / per_second)
        pace.on_success(rtt)


def test_an_idle_pbx_is_used_at_the_ceiling_after_a_few_prompt_answers(clock):
    pace = RateController(ceiling=8000, clock=clock)
    assert pace.rate == 100
    assert pace.last.reason.startswith("starting")
    answer(pace, clock, 20, per_second=1000, rtt=0.001)
    assert pace.rate == 8000
    assert pace.last.reason == "at the ceiling: the PBX answers promptly"
    answer(pace, clock, 1000, per_second=5000)
    assert pace.rate == 8000  # never above the ceiling


def test_a_slow_pbx_raises_the_rate_slower_than_a_fast_one(clock):
    slow = RateController(ceiling=10000, clock=clock)
    fast = RateController(ceiling=10000, clock=clock)
    for _ in range(20):
        clock.advance(0.01)
        slow.on_success(0.2)
        fast.on_success(0.002)
    assert slow.rate < fast.rate
    assert slow.rate == 100 + 20 * 5


def test_a_503_cuts_the_rate_to_a_share_of_what_the_pbx_answered_in_the_last_second(clock):
    pace = RateController(ceiling=10000, clock=clock)
    answer(pace, clock, 500, per_second=5000)  # 500 answered within 0.1 s
    assert pace.rate == 10000
    rate = pace.on_503(retry_after=None)
    assert rate == pytest.approx(0.85 * 500)
    assert pace.last.reason == "backing off: 503 from the PBX"
    assert not pace.slow_start


def test_a_burst_of_503s_from_one_overloaded_second_cuts_once(clock):
    pace = RateController(ceiling=10000, clock=clock)
    answer(pace, clock, 500, per_second=5000)
    first = pace.on_503(None)
    for _ in range(200):
        clock.advance(0.001)
        assert pace.on_503(None) == first
    clock.advance(1.0)
    assert pace.on_503(None) < first  # a later overload cuts again


def test_after_a_cut_the_rate_grows_back_by_a_fixed_step_per_second(clock):
    pace = RateController(ceiling=10000, clock=clock)
    answer(pace, clock, 500, per_second=5000)
    cut = pace.on_503(None)  # 425, step 0.2 * 500 = 100/s
    answer(pace, clock, 400, per_second=400)  # 1 s of answers, within the hold: no growth
    assert pace.rate == pytest.approx(cut, abs=1)
    answer(pace, clock, 400, per_second=400)  # one more second
    assert pace.rate == pytest.approx(cut + 100, abs=2)
    assert pace.last.reason == "raising: the PBX answers promptly again"


def test_the_rate_settles_near_a_pbx_that_refuses_above_its_limit(clock):
    """A PBX taking 500 requests per second and refusing the rest with 503: the rate
    saws between the cut and the limit, its mean within 20 % of the limit."""
    limit = 500
    pace = RateController(ceiling=10000, clock=clock)
    window_start, taken, rates = clock.now, 0, []
    t_end = clock.now + 30
    while clock.now < t_end:
        clock.advance(1 / pace.rate)
        if clock.now >= window_start + 1:
            window_start, taken = window_start + 1, 0
        if taken < limit:
            taken += 1
            pace.on_success(0.002)
        else:
            pace.on_503(None)
        if clock.now > t_end - 20:
            rates.append(pace.rate)
    mean = sum(rates) / len(rates)
    assert 0.8 * limit <= mean <= 1.2 * limit
    assert max(rates) < 2 * limit


def test_retry_after_pauses_new_requests_and_is_capped(clock):
    pace = RateController(ceiling=1000, clock=clock)
    pace.on_503(retry_after=2)
    assert pace.paused_until == clock.now + 2
    assert pace.last.reason == "backing off: 503 from the PBX, retry after 2 s"
    clock.advance(5)
    pace.on_503(retry_after=3600)
    assert pace.paused_until == clock.now + RateController.RETRY_AFTER_MAX


def test_a_timeout_halves_the_rate_and_the_window(clock):
    pace = RateController(ceiling=1000, clock=clock, max_window=100)
    answer(pace, clock, 300, per_second=300)
    assert pace.in_flight_limit == 100
    pace.on_timeout()
    assert pace.rate == pytest.approx(150)
    assert pace.in_flight_limit == 25  # 0.5 of 0.5: the cut and the timeout's halving
    assert pace.last.reason == "backing off: the PBX did not answer"


def test_the_rate_never_falls_below_the_floor(clock):
    pace = RateController(ceiling=1000, clock=clock, floor=5)
    for _ in range(20):
        clock.advance(1.5)
        pace.on_timeout()
    assert pace.rate == 5
    assert pace.in_flight_limit == 4


def test_a_retransmission_backs_off_less_than_a_timeout(clock):
    pace = RateController(ceiling=1000, clock=clock)
    answer(pace, clock, 400, per_second=400)
    assert pace.on_retransmit() == pytest.approx(0.7 * 400)
    assert pace.last.reason == "backing off: a REGISTER was lost"


def test_the_seconds_of_a_retry_after_are_read_with_or_without_a_comment():
    from users.sip.client import _retry_after
    from users.sip.message import parse_message

    def response(header: str) -> object:
        return parse_message(
            b"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
            b"Call-ID: c\r\nCSeq: 1 REGISTER\r\n" + header.encode() + b"Content-Length: 0\r\n\r\n"
        )

    assert _retry_after(response("Retry-After: 120 (busy);duration=60\r\n")) == 120
    assert _retry_after(response("Retry-After: 5\r\n")) == 5
    assert _retry_after(response("")) is None
    assert _retry_after(response("Retry-After: soon\r\n")) is None


def test_a_pbx_that_went_away_is_caught_up_with_quickly_once_it_answers_again(clock):
    """Timeouts with no answer at all: the floor, then slow start back to the rate known
    good before, and from there additive increase."""
    pace = RateController(ceiling=10000, clock=clock)
    answer(pace, clock, 2000, per_second=2000)
    pace.on_503(None)  # a limit found at about 2000/s: 1700
    known_good = pace.rate
    clock.advance(5)  # the PBX stops answering
    assert pace.on_timeout() == pace.floor
    assert pace.last.reason == "backing off: the PBX does not answer"
    clock.advance(1.5)
    pace.on_timeout()  # still nothing: what was known good is kept
    answer(pace, clock, 15, per_second=1000)
    assert pace.rate == pytest.approx(known_good)
    assert not pace.slow_start
    assert pace.last.reason == "raising: the PBX answers again"
