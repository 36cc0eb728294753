"""The adaptive REGISTER rate (``rate="auto"``) against a real Kamailio: one that takes
everything, and one that answers 503 above 500 REGISTERs per second (pipelimit,
deploy/kamailio/kamailio.cfg's REGISTER_LIMIT)."""

import asyncio
import time
from collections import Counter

import pytest

from tests.users.test_sip_kamailio import client_for, subscribers

# Timing-sensitive (a rate against a real PBX): run alone, in the serial system phase.
# Bounds on seconds: run while the machine has nothing else to do (the Makefile).
pytestmark = [pytest.mark.system, pytest.mark.alone]

LIMIT = 500


def test_an_unlimited_pbx_is_used_at_the_ceiling_at_once(kamailio):
    accounts = subscribers(kamailio, 1000)

    async def scenario():
        client = client_for(kamailio, rate="auto", rate_max=5000)
        await client.start()
        started = time.monotonic()
        client.set_accounts(accounts)
        seen = set()
        while client.progress().registered < 1000:
            assert time.monotonic() - started < 20, client.progress()
            seen.add(client.rate_now())
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        await client.stop()
        return elapsed, seen

    elapsed, seen = asyncio.run(scenario())
    # At the ceiling after a few answers (a REGISTER lost on a loaded machine may cut it
    # later, which is not what this test is about).
    assert (5000, "at the ceiling: the PBX answers promptly") in seen
    # 1000 REGISTERs (the first nonce is shared): 10 s at the note's fixed 100 per second.
    assert elapsed < 5, elapsed
    assert kamailio.registered_users() == 1000


def test_a_pbx_that_refuses_above_its_limit_gets_every_user_at_about_its_limit(
    kamailio_factory,
):
    pbx = kamailio_factory(defines={"REGISTER_LIMIT": LIMIT, "REGISTER_LOG": True})
    # A REGISTER each (the first challenge's nonce is shared) and the refused ones
    # again: over 10 s at the limit.
    accounts = subscribers(pbx, 5000)

    async def scenario():
        client = client_for(pbx, rate="auto", rate_max=10000)
        await client.start()
        started = time.monotonic()
        client.set_accounts(accounts)
        rates, reasons = [], set()
        while client.progress().registered < len(accounts):
            if time.monotonic() - started > 60:
                reasons = Counter(client.status(u).reason for u in accounts)
                raise AssertionError(f"{client.progress()}: {reasons}")
            await asyncio.sleep(0.1)
            rate, reason = client.rate_now()
            rates.append((time.monotonic() - started, rate))
            reasons.add(reason)
        sent = dict(client.sent)
        await client.stop()
        return rates, reasons, sent

    rates, reasons, sent = asyncio.run(scenario())
    # Every user registered, none given up on.
    assert pbx.registered_users() == len(accounts)
    assert "backing off: 503 from the PBX" in reasons
    # After the first 3 s the client's rate stays around the limit.
    settled = [r for t, r in rates if t > 3]
    mean = sum(settled) / len(settled)
    print(f"adaptive rate after 3 s: mean {mean:.0f}/s, {min(settled):.0f}..{max(settled):.0f}")
    assert 0.8 * LIMIT <= mean <= 1.2 * LIMIT, mean
    # What the PBX saw: no second with more than twice its limit after the first one.
    times = pbx.register_times()
    assert len(times) >= len(accounts)
    first, worst, j = times[0], 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        if t - first > 2.0:  # a full second after the first one
            worst = max(worst, i - j + 1)
    print(f"PBX saw at most {worst} REGISTERs in one second after the first; sent {sent}")
    assert worst <= 2 * LIMIT, worst
