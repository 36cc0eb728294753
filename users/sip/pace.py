"""How fast to send REGISTERs to a PBX whose capacity nobody told us: an adaptive rate.

``RateController`` works like TCP's congestion control. It starts in slow start: every
prompt answer raises the rate by what one more request in flight would add (``1/rtt``),
so an idle PBX is used at the ceiling after a few answers. The first sign of overload
(a ``503 Service Unavailable``, a retransmission, a timeout) ends slow start and cuts
the rate to a fraction of what the PBX answered in the last second (multiplicative
decrease); from there it grows by a fixed step per second while answers come
(additive increase). A PBX that answers nothing at all is not overloaded but away: its
timeouts drop the rate to the floor and slow start again, which climbs back to the last
rate known good once it answers. A ``Retry-After`` pauses every new request until then (RFC 3261
21.5.4). A cut happens at most once per ``hold`` seconds, so a burst of refusals from one
overloaded second counts once. Transactions in flight are bounded by ``window``, which
halves on a timeout and grows back by one per answer.

Pure: no I/O, and the clock is given (a fake one in tests)::

    pace = RateController(ceiling=10000, clock=time.monotonic)
    pace.on_sent(); ...; pace.on_success(rtt=0.004)    # pace.rate grows
    pace.on_503(retry_after=None)                      # pace.rate, pace.reason
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateChange:
    """The last change of regime: the rate then, why, and when (the controller's clock)."""

    rate: float
    reason: str
    at: float


class RateController:
    """Adaptive REGISTER rate (requests per second) and in-flight window; see the module."""

    # Multiplicative decrease by signal: a 503 says exactly "too much", a lost answer
    # may also be the network, a timeout is the PBX gone quiet.
    BETA_503 = 0.85
    BETA_RETRANSMIT = 0.7
    BETA_TIMEOUT = 0.5
    RETRY_AFTER_MAX = 60.0

    def __init__(
        self,
        *,
        ceiling: float,
        clock: Callable[[], float],
        initial: float = 100.0,
        floor: float = 5.0,
        max_window: int = 200,
        min_window: int = 4,
        hold: float = 1.0,
        increase: float = 0.2,
    ) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError("need 0 < floor <= ceiling")
        self.ceiling = float(ceiling)
        self.floor = float(floor)
        self.clock = clock
        self.rate = min(max(initial, floor), self.ceiling)
        self.max_window = max_window
        self.min_window = min(min_window, max_window)
        self.window = float(max_window)
        self.hold = hold
        # Additive step per second, as a share of the rate at the last cut (CUBIC's
        # W_max): a PBX limited at 500/s is found again within a second or two.
        self.increase = increase
        self.slow_start = True
        # Where slow start ends: the ceiling, or the rate known good before the PBX went quiet.
        self.threshold = self.ceiling
        self.paused_until = 0.0
        self._answered: deque[float] = deque()  # answer times of the last second
        self._cut_at = -float("inf")
        self._step = 0.0
        self._grown_at = clock()
        self.last = RateChange(self.rate, "starting: no answer from the PBX yet", clock())

    # -- what the client asks -----------------------------------------------------------

    @property
    def in_flight_limit(self) -> int:
        return max(self.min_window, int(self.window))

    def answered_per_second(self) -> int:
        """Answers of the PBX in the last second (its delivery rate, as measured here)."""
        self._forget(self.clock())
        return len(self._answered)

    # -- what the client reports --------------------------------------------------------

    def on_success(self, rtt: float) -> float:
        """A final answer other than 503 (a 401 challenge counts: the PBX kept up)."""
        now = self.clock()
        self._answered.append(now)
        self._forget(now)
        if self.slow_start:
            was, top = self.rate, min(self.ceiling, self.threshold)
            self.rate = min(top, self.rate + min(self.rate, 1.0 / max(rtt, 0.001)))
            if self.rate >= self.ceiling:
                if was < self.ceiling:
                    self._note("at the ceiling: the PBX answers promptly", now)
            elif self.rate >= top:
                self.slow_start = False  # from here, carefully: additive increase
                self._step = max(self.floor, self.increase * top)
                self._note("raising: the PBX answers again", now)
            elif not self.last.reason.startswith("raising"):
                self._note("raising: the PBX answers promptly", now)
        elif now >= self._cut_at + self.hold and self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate + self._step * (now - self._grown_at))
            if not self.last.reason.startswith("raising"):
                self._note("raising: the PBX answers promptly again", now)
        self._grown_at = now
        self.window = min(
            self.max_window, self.window + (1 if self.slow_start else 1 / self.window)
        )
        return self.rate

    def on_503(self, retry_after: float | None) -> float:
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            self.paused_until = max(self.paused_until, now + min(retry_after, self.RETRY_AFTER_MAX))
        suffix = f", retry after {retry_after:g} s" if retry_after else ""
        return self._cut(now, self.BETA_503, f"backing off: 503 from the PBX{suffix}")

    def on_retransmit(self) -> float:
        return self._cut(self.clock(), self.BETA_RETRANSMIT, "backing off: a REGISTER was lost")

    def on_timeout(self) -> float:
        now = self.clock()
        if self.answered_per_second() == 0 and now >= self._cut_at + self.hold:
            # Nothing answered: away, not overloaded. Keep what was known good.
            if not self.slow_start:
                self.threshold = max(self.floor, self.rate)
            self.rate, self.slow_start, self._cut_at = self.floor, True, now
            self.window = max(self.min_window, self.window / 2)
            self._note("backing off: the PBX does not answer", now)
            return self.rate
        rate = self._cut(now, self.BETA_TIMEOUT, "backing off: the PBX did not answer")
        self.window = max(self.min_window, self.window / 2)
        return rate

    # -- inside -------------------------------------------------------------------------

    def _cut(self, now: float, beta: float, reason: str) -> float:
        if now < self._cut_at + self.hold:
            return self.rate  # the same overload: cut once
        self._forget(now)
        # What the PBX took in the last second, unless we were sending slower than that.
        base = min(self.rate, max(len(self._answered), self.floor))
        self.rate = max(self.floor, min(self.ceiling, beta * base))
        self._step = max(self.floor, self.increase * base)
        self.window = max(self.min_window, self.window * beta)
        self.slow_start = False
        self._cut_at = self._grown_at = now
        self._note(reason, now)
        return self.rate

    def _forget(self, now: float) -> None:
        answered = self._answered
        while answered and answered[0] <= now - 1.0:
            answered.popleft()

    def _note(self, reason: str, now: float) -> None:
        self.last = RateChange(self.rate, reason, now)
