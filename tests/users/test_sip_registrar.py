"""The demo's own registrar (users/sip/registrar.py) with the product's SIP client: what
the demo's users go through when no Kamailio is installed."""

import asyncio

from users.sip.client import Credentials, RegState, SipRegistrationClient
from users.sip.message import SipRequest
from users.sip.registrar import Registrar


def register(registrar: Registrar, accounts: dict[str, Credentials], **kwargs):
    async def scenario():
        client = SipRegistrationClient(server=(registrar.host, registrar.port), rate=None,
                                       timeout=4.0, **kwargs)  # fmt: skip
        await client.start()
        client.set_accounts(accounts)
        progress = await client.wait(lambda p: p.settled, timeout=10)
        statuses = {user: client.status(user) for user in accounts}
        contact = client._contact(client._accounts[next(iter(accounts))])
        await client.stop()
        return progress, statuses, contact

    return asyncio.run(scenario())


def test_the_demo_users_register_with_digest_and_their_bindings_are_kept():
    accounts = {f"{2000 + n}": Credentials(f"{2000 + n}", f"pw-{n}") for n in range(50)}
    with Registrar(credentials={u: c.password for u, c in accounts.items()}) as registrar:
        progress, statuses, contact = register(registrar, accounts, expires=300)
        bindings = registrar.registered()
    assert str(progress) == "registered 50 of 50 (0 failed)"
    assert set(bindings) == set(accounts)
    assert bindings["2000"] == [contact.strip("<>")]
    assert {s.state for s in statuses.values()} == {RegState.REGISTERED}


def test_a_wrong_password_or_an_unknown_user_is_refused_and_not_bound():
    accounts = {
        "2000": Credentials("2000", "right"),
        "2001": Credentials("2001", "wrong"),
        "9999": Credentials("9999", "whatever"),
    }
    with Registrar(credentials={"2000": "right", "2001": "right"}) as registrar:
        _, statuses, _ = register(registrar, accounts, backoff_initial=30.0)
        bindings = registrar.registered()
    assert set(bindings) == {"2000"}
    assert statuses["2001"].state == RegState.FAILED and "403" in statuses["2001"].reason
    assert statuses["9999"].state == RegState.FAILED


def test_a_request_without_credentials_is_challenged_and_other_methods_are_refused():
    registrar = Registrar(credentials={"2000": "pw"})
    try:
        request = SipRequest(method="REGISTER", uri="sip:127.0.0.1")
        for name, value in (("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1"),
                            ("From", "<sip:2000@127.0.0.1>;tag=1"), ("To", "<sip:2000@127.0.0.1>"),
                            ("Call-ID", "c1"), ("CSeq", "1 REGISTER"),
                            ("Contact", "<sip:2000@127.0.0.1:5999>")):  # fmt: skip
            request.add(name, value)
        challenge = registrar.answer(request)
        assert challenge.status == 401
        assert 'realm="kws-demo"' in challenge.get("WWW-Authenticate")
        request.add("Authorization", 'Digest username="2000", realm="kws-demo", nonce="forged.0",'
                    ' uri="sip:127.0.0.1", response="00"')  # fmt: skip
        assert registrar.answer(request).status == 401  # a nonce it did not give
        request.method = "INVITE"
        assert registrar.answer(request).status == 405
        assert registrar.registered() == {}
    finally:
        registrar.stop()
