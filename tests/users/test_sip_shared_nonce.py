"""A nonce the PBX sent to one account is borrowed by accounts that have none, so a
takeover costs one REGISTER per user; a PBX that binds its nonces to one registration
makes the client stop borrowing. Against a real Kamailio."""

import asyncio

from tests.users.test_sip_kamailio import client_for, subscribers
from users.sip.client import BORROW_MISSES, Credentials, RegState


def register_in_two_steps(pbx, first, rest, **kwargs):
    """Register ``first`` alone, then ``rest``; return the REGISTERs each step sent, how
    many tried a borrowed nonce, and the final states."""

    async def scenario():
        client = client_for(pbx, **kwargs)
        await client.start()
        client.set_accounts(first)
        await client.wait(lambda p: p.settled, timeout=10)
        before = client.sent["register"]
        client.set_accounts({**first, **rest})
        await client.wait(lambda p: p.settled, timeout=30)
        after, borrowed = client.sent["register"], client.sent["borrowed_nonce"]
        states = {user: client.status(user).state for user in {**first, **rest}}
        await client.stop()
        return before, after - before, borrowed, states

    return asyncio.run(scenario())


def test_accounts_taken_over_borrow_the_nonce_and_register_with_one_register_each(kamailio):
    accounts = subscribers(kamailio, 301)
    first = {"user00000": accounts.pop("user00000")}

    before, taken_over, borrowed, states = register_in_two_steps(kamailio, first, accounts)

    assert before == 2  # challenged, then answered
    assert borrowed == 300
    assert taken_over == 300  # no challenge: the first account's nonce is accepted
    assert set(states.values()) == {RegState.REGISTERED}
    assert kamailio.registered_users() == 301


def test_a_borrowed_nonce_with_a_wrong_password_is_refused_like_an_own_one(kamailio):
    accounts = subscribers(kamailio, 2)
    first = {"user00000": accounts["user00000"]}
    wrong = {"user00001": Credentials("user00001", "not-the-password")}

    _, _, _, states = register_in_two_steps(kamailio, first, wrong, backoff_initial=30)

    assert states == {"user00000": RegState.REGISTERED, "user00001": RegState.FAILED}
    assert set(kamailio.location()) == {"user00000"}


def test_a_pbx_that_binds_nonces_to_a_call_id_costs_nothing_and_stops_the_borrowing(
    kamailio_factory,
):
    # auth_checks_register 2: a nonce is good only with the Call-ID it was sent for.
    pbx = kamailio_factory(modparams={("auth", "auth_checks_register"): 2})
    accounts = subscribers(pbx, 31)
    first = {"user00000": accounts.pop("user00000")}

    # One attempt at a time, so each refusal is of the newest nonce and counts.
    _, taken_over, borrowed, states = register_in_two_steps(pbx, first, accounts, max_in_flight=1)

    assert set(states.values()) == {RegState.REGISTERED}
    assert pbx.registered_users() == 31
    # A refused borrowed nonce takes the place of the unauthenticated first REGISTER:
    # two each, as without borrowing; and after BORROW_MISSES refusals none is tried.
    assert taken_over == 2 * 30
    assert borrowed == BORROW_MISSES


def test_a_fresh_client_waits_for_the_first_challenge_and_then_registers_with_one_register_each(
    kamailio,
):
    accounts = subscribers(kamailio, 200)

    async def scenario():
        client = client_for(kamailio)  # unlimited rate, 200 in flight
        await client.start()
        client.set_accounts(accounts)
        progress = await client.wait(lambda p: p.settled, timeout=20)
        sent = dict(client.sent)
        await client.stop()
        return progress, sent

    progress, sent = asyncio.run(scenario())
    assert progress.registered == 200
    # The first user alone: challenged and answered; the other 199 borrow its nonce.
    assert sent["register"] == 2 + 199
    assert kamailio.registered_users() == 200


def test_without_borrowing_nobody_waits_and_every_user_is_challenged(kamailio):
    accounts = subscribers(kamailio, 50)

    async def scenario():
        client = client_for(kamailio, borrow_nonces=False)
        await client.start()
        client.set_accounts(accounts)
        progress = await client.wait(lambda p: p.settled, timeout=20)
        sent = dict(client.sent)
        await client.stop()
        return progress, sent

    progress, sent = asyncio.run(scenario())
    assert progress.registered == 50
    assert sent["register"] == 2 * 50
    assert "borrowed_nonce" not in sent
