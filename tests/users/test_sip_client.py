"""The SIP client against a scripted fake registrar: lost datagrams, garbage, odd challenges.

Kamailio never misbehaves like this, so these cases need a server we control.
"""

import asyncio
import socket
from collections.abc import Callable

import pytest

from users.sip.client import Credentials, RegState, SipRegistrationClient
from users.sip.message import SipRequest, build_response, parse_message

Reply = Callable[[SipRequest, int], list[bytes]]


class FakeRegistrar(asyncio.DatagramProtocol):
    """Answers each REGISTER with what ``reply(request, count)`` returns (count from 1)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[SipRequest] = []
        self.responses: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        message = parse_message(data)
        if not isinstance(message, SipRequest):
            self.responses.append(data)
            return
        self.requests.append(message)
        for out in self.reply(message, len(self.requests)):
            self.transport.sendto(out, addr)


def ok(request: SipRequest, expires: int = 60) -> bytes:
    response = build_response(request, 200, "OK", to_tag="x")
    response.headers.append(("Contact", f"{request.get('Contact')};expires={expires}"))
    return response.to_bytes()


def respond(request: SipRequest, status: int, reason: str, *extra: tuple[str, str]) -> bytes:
    response = build_response(request, status, reason, to_tag="x")
    response.headers.extend(extra)
    return response.to_bytes()


async def run_against(reply: Reply, until: Callable, **kwargs):
    loop = asyncio.get_running_loop()
    transport, fake = await loop.create_datagram_endpoint(
        lambda: FakeRegistrar(reply), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    kwargs.setdefault("rate", None)
    client = SipRegistrationClient(server=("127.0.0.1", port), **kwargs)
    await client.start()
    client.set_accounts({"1001": Credentials("1001", "secret")})
    try:
        await client.wait(until, timeout=5)
        return client, fake
    finally:
        await client.stop()
        transport.close()


def test_lost_requests_are_retransmitted_with_doubling_intervals():
    def reply(request, count):
        return [] if count <= 2 else [ok(request)]  # the first two datagrams are lost

    async def scenario():
        return await run_against(reply, lambda p: p.registered == 1, t1=0.05)

    client, fake = asyncio.run(scenario())
    assert client.sent["retransmit"] == 2
    assert len({r.get("Via") for r in fake.requests}) == 1  # same transaction, same bytes
    assert client.status("1001").state == RegState.REGISTERED


def test_garbage_and_stray_responses_are_ignored():
    def reply(request, count):
        stray = respond(request, 200, "OK")
        stray = stray.replace(b"Call-ID: ", b"Call-ID: other-")
        return [b"\x00\xffgarbage", b"SIP/2.0 999 Nope\r\n\r\n", stray, ok(request, 90)]

    async def scenario():
        return await run_against(reply, lambda p: p.registered == 1)

    client, _ = asyncio.run(scenario())
    status = client.status("1001")
    assert status.state == RegState.REGISTERED
    assert 89 <= status.expires_at - status.at <= 90


def test_a_challenge_is_answered_once_then_the_second_401_is_the_reason():
    challenge = ("WWW-Authenticate", 'Digest realm="pbx", nonce="n1", qop="auth"')

    def reply(request, count):
        return [respond(request, 401, "Unauthorized", challenge)]

    async def scenario():
        return await run_against(reply, lambda p: p.failed == 1, backoff_initial=30)

    client, fake = asyncio.run(scenario())
    assert client.status("1001").reason == "401 Unauthorized"
    assert len(fake.requests) == 2
    assert fake.requests[0].get("Authorization") is None
    auth = fake.requests[1].get("Authorization")
    assert 'username="1001"' in auth and "qop=auth" in auth and "nc=00000001" in auth


def test_a_proxy_challenge_is_answered_with_proxy_authorization():
    challenge = ("Proxy-Authenticate", 'Digest realm="pbx", nonce="n1"')

    def reply(request, count):
        if request.get("Proxy-Authorization") is None:
            return [respond(request, 407, "Proxy Authentication Required", challenge)]
        return [ok(request)]

    async def scenario():
        return await run_against(reply, lambda p: p.registered == 1)

    _, fake = asyncio.run(scenario())
    assert 'nonce="n1"' in fake.requests[1].get("Proxy-Authorization")


@pytest.mark.parametrize(
    ("challenge", "reason"),
    [
        (
            'Digest realm="pbx", nonce="n", algorithm=SHA-1',
            "401 Unauthorized: digest algorithm 'SHA-1' is not supported (only MD5, MD5-sess, "
            "SHA-256, SHA-256-sess, SHA-512-256, SHA-512-256-sess)",
        ),
        ('Digest realm="pbx"', "401 Unauthorized: digest challenge without nonce"),
    ],
)
def test_a_challenge_we_cannot_answer_fails_with_a_clear_reason(challenge, reason):
    def reply(request, count):
        return [respond(request, 401, "Unauthorized", ("WWW-Authenticate", challenge))]

    async def scenario():
        return await run_against(reply, lambda p: p.failed == 1, backoff_initial=30)

    client, fake = asyncio.run(scenario())
    assert client.status("1001").reason == reason
    assert len(fake.requests) == 1


def test_server_errors_and_timeouts_fail_with_their_reason():
    def reply(request, count):
        return [respond(request, 503, "Service Unavailable")]

    async def scenario():
        return await run_against(reply, lambda p: p.failed == 1, backoff_initial=30)

    client, _ = asyncio.run(scenario())
    assert client.status("1001").reason == "503 Service Unavailable"

    async def silent():
        return await run_against(
            lambda r, c: [], lambda p: p.failed == 1, t1=0.05, timeout=0.3, backoff_initial=30
        )

    client, fake = asyncio.run(silent())
    assert client.status("1001").reason.startswith("no response from 127.0.0.1:")
    assert client.status("1001").reason.endswith("in 0.3 s")
    assert len(fake.requests) >= 3  # 0, 0.05, 0.15 s


def test_interval_too_brief_retries_with_min_expires():
    def reply(request, count):
        if request.get("Expires") != "120":
            return [respond(request, 423, "Interval Too Brief", ("Min-Expires", "120"))]
        return [ok(request, 120)]

    async def scenario():
        return await run_against(reply, lambda p: p.registered == 1, expires=30)

    client, fake = asyncio.run(scenario())
    assert [r.get("Expires") for r in fake.requests] == ["30", "120"]


def test_options_from_the_pbx_get_200_and_other_requests_405():
    async def scenario():
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        client = SipRegistrationClient(server=server.getsockname(), rate=None)
        await client.start()
        answers = []
        for method in ("OPTIONS", "INVITE"):
            request = (
                f"{method} sip:1001@127.0.0.1 SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
                "From: <sip:pbx@127.0.0.1>;tag=p\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: k\r\n"
                f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
            )
            server.sendto(request.encode(), client._local)
            answers.append(parse_message(await loop.sock_recv(server, 65535)))
        await client.stop()
        server.close()
        return answers

    options, invite = asyncio.run(scenario())
    assert (options.status, options.get("CSeq")) == (200, "1 OPTIONS")
    assert invite.status == 405
    assert options.get("To").startswith("<sip:1001@127.0.0.1>;tag=")


def test_set_accounts_before_start_is_refused():
    client = SipRegistrationClient(server=("127.0.0.1", 5060))
    with pytest.raises(RuntimeError, match="start"):
        client.set_accounts({})
    with pytest.raises(ValueError, match="transport"):
        SipRegistrationClient(server=("127.0.0.1", 5060), transport="tls")  # type: ignore[arg-type]
