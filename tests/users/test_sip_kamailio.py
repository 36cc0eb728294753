"""The SIP registration client against a real Kamailio (deploy/kamailio/kamailio.cfg).

What Kamailio holds is read from its own location table (JSON-RPC ``ul.dump`` /
``ul.lookup`` through users/pbx.py), not from the client's view.
"""

import asyncio
import time

from users.pbx import Kamailio
from users.sip.client import Credentials, RegistrationStatus, RegState, SipRegistrationClient

SHORT = {("registrar", "min_expires"): 1}  # lets tests register for a few seconds only


def subscribers(pbx: Kamailio, count: int, prefix: str = "user") -> dict[str, Credentials]:
    """``count`` accounts, also written to Kamailio's subscriber table."""
    accounts = {
        f"{prefix}{i:05d}": Credentials(f"{prefix}{i:05d}", f"pw-{i}") for i in range(count)
    }
    pbx.add_subscribers((user, pbx.host, c.password) for user, c in accounts.items())
    return accounts


def client_for(pbx: Kamailio, **kwargs) -> SipRegistrationClient:
    kwargs.setdefault("rate", None)
    return SipRegistrationClient(server=(pbx.host, pbx.port), **kwargs)


def test_200_users_register_over_udp_and_all_appear_in_the_location_table(kamailio):
    accounts = subscribers(kamailio, 200)
    changes: list[tuple[str, RegistrationStatus]] = []

    async def scenario():
        client = client_for(kamailio, on_change=lambda user, s: changes.append((user, s)))
        await client.start()
        client.set_accounts(accounts)
        progress = await client.wait(lambda p: p.settled, timeout=20)
        contact = client._contact(client._accounts["user00007"])
        await client.stop()
        return progress, contact

    progress, contact = asyncio.run(scenario())
    assert str(progress) == "registered 200 of 200 (0 failed)"
    table = kamailio.location()
    assert set(table) == set(accounts)
    assert [c["Address"] for c in table["user00007"]] == [contact]
    assert all(c["Socket"].startswith("udp:") for contacts in table.values() for c in contacts)
    assert kamailio.registered_users() == 200
    # Each account went pending -> registered, and the hook saw it.
    assert {s.state for _, s in changes} == {RegState.PENDING, RegState.REGISTERED}
    assert len(changes) == 400


def test_tcp_registers_over_one_connection(kamailio):
    accounts = subscribers(kamailio, 30)

    async def scenario():
        client = client_for(kamailio, transport="tcp")
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.settled, timeout=20)
        status = client.status("user00003")
        await client.stop()
        return status

    status = asyncio.run(scenario())
    assert status.state == RegState.REGISTERED
    contacts = kamailio.location()
    assert set(contacts) == set(accounts)
    sockets = {c["Socket"] for cs in contacts.values() for c in cs}
    assert sockets == {f"tcp:{kamailio.host}:{kamailio.port}"}
    assert len({c["Tcpconn-Id"] for cs in contacts.values() for c in cs}) == 1
    assert all(c["Address"].endswith(";transport=tcp") for cs in contacts.values() for c in cs)


def test_a_wrong_password_fails_with_the_pbx_reason_and_recovers_when_corrected(kamailio):
    accounts = subscribers(kamailio, 3)
    accounts["user00001"] = Credentials("user00001", "wrong")
    accounts["nobody"] = Credentials("nobody", "x")  # not in the subscriber table

    async def scenario():
        client = client_for(kamailio, backoff_initial=0.2, backoff_max=0.5)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.settled, timeout=10)
        failed = {u: client.status(u) for u in ("user00001", "nobody")}
        # The PBX's table changes while it runs: the retry with backoff gets through.
        kamailio.set_password("user00001", "wrong")
        await client.wait(lambda p: p.registered == 3, timeout=10)
        await client.stop()
        return failed

    failed = asyncio.run(scenario())
    assert failed["user00001"].state == RegState.FAILED
    assert failed["user00001"].reason == "403 Forbidden"
    assert abs(failed["user00001"].at - time.time()) < 10
    # Kamailio challenges an unknown user again instead of refusing it.
    assert failed["nobody"].reason == "401 Unauthorized"
    assert kamailio.contacts("user00001") and not kamailio.contacts("nobody")


def test_new_credentials_register_at_once_without_waiting_for_the_backoff(kamailio):
    accounts = subscribers(kamailio, 1)
    right = accounts["user00000"]

    async def scenario():
        client = client_for(kamailio, backoff_initial=60)
        await client.start()
        client.set_accounts({"user00000": Credentials("user00000", "old")})
        await client.wait(lambda p: p.failed == 1, timeout=10)
        client.set_accounts({"user00000": right})
        await client.wait(lambda p: p.registered == 1, timeout=5)
        await client.stop()

    asyncio.run(scenario())
    assert len(kamailio.contacts("user00000")) == 1


def test_kamailio_stopped_fails_then_retries_with_backoff_and_recovers_when_back(
    kamailio_factory,
):
    pbx = kamailio_factory(modparams=SHORT)
    accounts = subscribers(pbx, 20)
    failures: list[tuple[str, float, str]] = []

    def on_change(user: str, status: RegistrationStatus) -> None:
        if status.state == RegState.FAILED:
            failures.append((user, status.at, status.reason))

    async def scenario():
        client = client_for(
            pbx, expires=2, timeout=1.0, t1=0.2, backoff_initial=0.3, backoff_max=0.6,
            on_change=on_change,
        )  # fmt: skip
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 20, timeout=10)
        pbx.stop()
        # The refresh (about 1 s in) gets no answer: Timer F after 1 s.
        await client.wait(lambda p: p.failed == 20, timeout=10)
        await asyncio.sleep(1.0)  # retries while the PBX is away
        retransmits = client.sent["retransmit"]
        pbx.start()  # same port; usrloc is in memory, so it starts empty
        await client.wait(lambda p: p.registered == 20, timeout=10)
        await client.stop()
        return retransmits

    retransmits = asyncio.run(scenario())
    assert set(pbx.location()) == set(accounts)
    assert retransmits > 0
    assert all("no response from" in reason for _, _, reason in failures)
    # Retried: several failures per account, spaced by the backoff (0.3 s growing to 0.6 s).
    times = sorted(at for user, at, _ in failures if user == "user00000")
    assert len(times) >= 2
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.0 + 0.3 * 0.8 - 0.05  # timeout + the smallest jittered backoff


def test_tcp_with_kamailio_down_fails_with_the_connect_error_and_recovers(kamailio):
    accounts = subscribers(kamailio, 5)
    kamailio.stop()

    async def scenario():
        client = client_for(kamailio, transport="tcp", backoff_initial=0.2, backoff_max=0.4)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.failed == 5, timeout=10)
        reason = client.status("user00000").reason
        kamailio.start()
        await client.wait(lambda p: p.registered == 5, timeout=10)
        await client.stop()
        return reason

    reason = asyncio.run(scenario())
    assert reason.startswith(f"cannot connect to {kamailio.host}:{kamailio.port} over TCP")
    assert "refused" in reason.lower()
    assert set(kamailio.location()) == set(accounts)


def test_removing_an_account_unregisters_only_our_contact(kamailio):
    accounts = subscribers(kamailio, 5)

    async def scenario():
        ours = client_for(kamailio)
        peer = client_for(kamailio)  # the other server of the pair, its own socket
        await ours.start()
        await peer.start()
        ours.set_accounts(accounts)
        peer.set_accounts({"user00002": accounts["user00002"]})
        await ours.wait(lambda p: p.registered == 5, timeout=10)
        await peer.wait(lambda p: p.registered == 1, timeout=10)
        assert len(kamailio.contacts("user00002")) == 2
        # user00001 deleted, user00002 handed to the peer.
        ours.set_accounts(
            {u: c for u, c in accounts.items() if u not in ("user00001", "user00002")}
        )
        progress = await ours.wait(lambda p: p.settled, timeout=10)
        statuses = ours.status("user00001"), ours.status("user00002")
        peer_contact = peer._contact(peer._accounts["user00002"])
        await ours.stop()
        await peer.stop()
        return progress, statuses, peer_contact

    progress, statuses, peer_contact = asyncio.run(scenario())
    assert (progress.total, progress.registered, progress.unregistering) == (3, 3, 0)
    assert all(s.state == RegState.UNREGISTERED and s.reason == "un-registered" for s in statuses)
    assert kamailio.contacts("user00001") == []
    assert [c["Address"] for c in kamailio.contacts("user00002")] == [peer_contact]
    assert set(kamailio.location()) == {"user00000", "user00002", "user00003", "user00004"}


def test_stop_can_unregister_everything(kamailio):
    accounts = subscribers(kamailio, 50)

    async def scenario():
        client = client_for(kamailio)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 50, timeout=10)
        await client.stop(unregister=True)

    asyncio.run(scenario())
    assert kamailio.location() == {}


def test_the_granted_expiry_is_honoured_and_refreshed_before_it_runs_out(kamailio_factory):
    pbx = kamailio_factory(modparams=SHORT)
    accounts = subscribers(pbx, 3)

    async def scenario():
        client = client_for(pbx, expires=2)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 3, timeout=10)
        first = pbx.contacts("user00000")[0]
        status = client.status("user00000")
        await asyncio.sleep(3.2)  # well past the expiry
        later = pbx.contacts("user00000")[0]
        sent = dict(client.sent)
        await client.stop()
        return first, status, later, sent

    first, status, later, sent = asyncio.run(scenario())
    assert status.expires_at is not None and 1.5 < status.expires_at - status.at <= 2.1
    assert first["Expires"] <= 2
    # Refreshed about every second (half the expiry), in place, reusing the nonce.
    assert later["Address"] == first["Address"] and later["Call-ID"] == first["Call-ID"]
    assert later["CSeq"] >= first["CSeq"] + 2
    assert 0 < later["Expires"] <= 2
    assert sent["register"] <= 3 * 2 + 3 * 5  # refreshes need no new challenge


def test_a_shorter_expiry_granted_by_the_pbx_wins(kamailio_factory):
    pbx = kamailio_factory(modparams={("registrar", "max_expires"): 60})
    accounts = subscribers(pbx, 1)

    async def scenario():
        client = client_for(pbx, expires=3600)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 1, timeout=10)
        status = client.status("user00000")
        await client.stop()
        return status

    status = asyncio.run(scenario())
    assert 59 <= status.expires_at - status.at <= 60
    assert pbx.contacts("user00000")[0]["Expires"] <= 60


def test_interval_too_brief_is_retried_with_the_min_expires(kamailio_factory):
    pbx = kamailio_factory(
        modparams={("registrar", "min_expires"): 30, ("registrar", "min_expires_mode"): 1}
    )
    accounts = subscribers(pbx, 1)

    async def scenario():
        client = client_for(pbx, expires=5)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.settled, timeout=10)
        status = client.status("user00000")
        await client.stop()
        return status

    status = asyncio.run(scenario())
    assert status.state == RegState.REGISTERED
    assert 29 <= status.expires_at - status.at <= 30


def test_the_rate_limit_spaces_registrations(kamailio):
    accounts = subscribers(kamailio, 40)

    async def scenario():
        client = client_for(kamailio, rate=100)
        await client.start()
        started = time.monotonic()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 40, timeout=10)
        elapsed = time.monotonic() - started
        await client.stop()
        return elapsed

    elapsed = asyncio.run(scenario())
    # 40 at 100/s with a burst of 5: at least 0.35 s, and not much more.
    assert 0.33 <= elapsed < 1.5


def test_over_tcp_a_restarted_kamailio_gets_the_registrations_back_at_once(kamailio):
    accounts = subscribers(kamailio, 10)

    async def scenario():
        client = client_for(kamailio, transport="tcp", keepalive=0.1, backoff_initial=0.2)
        await client.start()
        client.set_accounts(accounts)
        await client.wait(lambda p: p.registered == 10, timeout=10)
        await asyncio.sleep(0.3)  # a few CRLF keep-alives
        kamailio.stop()
        kamailio.start()  # forgets every contact (usrloc in memory)
        # The closed connection triggers a new registration; expiry is an hour away.
        deadline = time.monotonic() + 10
        while kamailio.registered_users() < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        progress = client.progress()
        await client.stop()
        return progress

    progress = asyncio.run(scenario())
    assert progress.registered == 10
    assert set(kamailio.location()) == set(accounts)


def test_removing_an_account_that_never_registered_sends_nothing(kamailio):
    subscribers(kamailio, 1)

    async def scenario():
        client = client_for(kamailio, backoff_initial=30)
        await client.start()
        client.set_accounts({"user00000": Credentials("user00000", "wrong")})
        await client.wait(lambda p: p.failed == 1, timeout=10)
        client.set_accounts({})
        progress = await client.wait(lambda p: p.settled, timeout=1)
        status, sent = client.status("user00000"), dict(client.sent)
        await client.stop()
        return progress, status, sent

    progress, status, sent = asyncio.run(scenario())
    assert (progress.total, progress.unregistering) == (0, 0)
    assert (status.state, status.reason) == (
        RegState.UNREGISTERED,
        "removed (it was not registered)",
    )
    assert "unregister" not in sent


def test_a_pbx_challenging_with_sha_256_is_answered_with_sha_256(kamailio_factory):
    """RFC 8760: Kamailio's auth module set to SHA-256 advertises it in the 401."""
    pbx = kamailio_factory(modparams={("auth", "algorithm"): "SHA-256"})
    accounts = subscribers(pbx, 20)
    accounts["user00003"] = Credentials("user00003", "not-the-password")

    async def scenario():
        client = client_for(pbx)
        await client.start()
        client.set_accounts(accounts)
        progress = await client.wait(lambda p: p.settled, timeout=20)
        challenge = client._accounts["user00000"].challenge
        reason = client._accounts["user00003"].status.reason
        await client.stop()
        return progress, challenge, reason

    progress, challenge, reason = asyncio.run(scenario())
    assert challenge.algorithm == "SHA-256" and "auth" in challenge.qop
    assert str(progress) == "registered 19 of 20 (1 failed)"
    assert set(pbx.location()) == set(accounts) - {"user00003"}
    assert "403" in reason  # a wrong password is still told apart
