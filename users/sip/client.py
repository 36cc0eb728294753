"""Keep many SIP accounts registered with one registrar, from one asyncio event loop.

One UDP socket (or one TCP connection) carries every account's REGISTER. Responses are
matched to transactions by Call-ID + CSeq. Each account registers with digest
authentication (a 401/407 challenge is answered once; its nonce is reused with a growing
nonce count for refreshes), is refreshed before the granted expiry, and is un-registered
(Expires: 0, our contact only, so the other server's binding stays) when it leaves
``set_accounts``. Failures are retried with capped exponential backoff, so a PBX that
was down is caught up with by itself when it returns.

The client is not thread-safe: call it from the event loop that ran ``start()``.

    client = SipRegistrationClient(server=("127.0.0.1", 5060), domain="pbx.example")
    await client.start()
    client.set_accounts({"1001": Credentials("1001", "secret")})
    await client.wait(lambda p: p.settled, timeout=10)
    client.status("1001")   # RegistrationStatus(state=registered, ..., expires_at=...)
    await client.stop(unregister=True)
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from users.sip.digest import authorization
from users.sip.message import (
    DigestChallenge,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    build_response,
    choose_challenge,
    contact_expires,
    parse_cseq,
    parse_expires,
    parse_message,
)
from users.sip.pace import RateController

logger = logging.getLogger(__name__)

# Borrowed nonces refused in a row before every account answers its own challenge.
BORROW_MISSES = 8
RCVBUF = 4 * 1024 * 1024  # below this, 200 REGISTERs in flight already lose datagrams


class RegState(StrEnum):
    PENDING = "pending"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class RegistrationStatus:
    """An account's state; ``at`` and ``expires_at`` are wall-clock (``time.time()``)."""

    state: RegState
    reason: str = ""
    at: float = 0.0
    expires_at: float | None = None


@dataclass(frozen=True)
class Progress:
    """Counts over the accounts of the last ``set_accounts``."""

    total: int
    registered: int
    failed: int
    pending: int
    unregistering: int  # removed accounts whose un-REGISTER is not done yet

    @property
    def settled(self) -> bool:
        """Every account has a result (registered or failed) and every removal is done."""
        return self.pending == 0 and self.unregistering == 0

    def __str__(self) -> str:
        return f"registered {self.registered} of {self.total} ({self.failed} failed)"


class TransactionError(Exception):
    """No final response: timeout (Timer F) or a transport failure."""


@dataclass(eq=False)
class _Account:
    user: str
    creds: Credentials
    call_id: str
    tag: str
    status: RegistrationStatus
    wanted: bool = True
    generation: int = 0  # bumped by set_accounts when credentials or wanted change
    cseq: int = 0
    token: int = 0  # identifies the account's current schedule entry
    in_flight: bool = False
    challenge: DigestChallenge | None = None
    challenge_code: int = 401
    nc: int = 0
    backoff: float = 0.0
    expires: int = 0  # requested (raised by a 423 Min-Expires)
    bound_until: float = 0.0  # loop time until which the PBX may hold our contact


@dataclass(eq=False)
class _SharedChallenge:
    challenge: DigestChallenge
    code: int  # 401 or 407
    nc: int = 1  # the account challenged used 1


@dataclass(eq=False)
class _Tx:
    data: bytes
    future: asyncio.Future[SipResponse]
    interval: float
    retransmit: asyncio.TimerHandle | None = None
    timeout: asyncio.TimerHandle | None = None


class _Tcp(asyncio.Protocol):
    def __init__(self, client: SipRegistrationClient) -> None:
        self.client = client
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            logger.warning("closing the SIP TCP connection: %s", exc)
            assert self.transport is not None
            self.transport.close()
            return
        for message in messages:
            self.client._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_connection_lost(self, exc)


class SipRegistrationClient:
    """Registers a changing set of accounts with the registrar at ``server``.

    - ``rate``: registration attempts started per second (each may be two REGISTERs:
      challenge and answer); None for unlimited; ``"auto"`` for REGISTER requests per
      second as fast as the PBX takes them (users/sip/pace.py), up to ``rate_max``.
      ``max_in_flight`` bounds concurrent attempts.
    - ``expires``: requested binding lifetime; refreshed at half of the granted expiry or
      ``refresh_margin`` seconds before it, whichever is later, less up to 10 % jitter.
    - ``t1``, ``t2``, ``timeout``: UDP retransmission starts at ``t1``, doubles up to
      ``t2`` (RFC 3261 Timer E), and a transaction gives up after ``timeout`` (Timer F).
    - ``local_host``/``local_port``: where to bind; our Contact carries the address
      actually used (with the default None, the one the OS routes to the PBX from).
    - ``backoff_initial``/``backoff_max``: retry delay after a failure, doubled each time.
    - ``keepalive``: seconds between CRLF pings on the TCP connection.
    - ``borrow_nonces``: an account without a challenge of its own first tries the last
      nonce the PBX sent (see ``_request``); False: every account is challenged.
    - ``on_change(user, status)`` is called on the event loop at each state change; it
      must be quick and must not raise.
    """

    def __init__(
        self,
        server: tuple[str, int],
        *,
        transport: Literal["udp", "tcp"] = "udp",
        domain: str | None = None,
        rate: float | Literal["auto"] | None = 100.0,
        rate_max: float = 10000.0,
        max_in_flight: int = 200,
        expires: int = 3600,
        refresh_margin: float = 30.0,
        local_host: str | None = None,
        local_port: int = 0,
        t1: float = 0.5,
        t2: float = 4.0,
        timeout: float = 32.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        keepalive: float = 30.0,
        user_agent: str = "KWS-Admin",
        borrow_nonces: bool = True,
        on_change: Callable[[str, RegistrationStatus], None] | None = None,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        self.server = server
        self.transport = transport
        self.domain = domain or server[0]
        self.max_in_flight = max_in_flight
        self.rate: float | None = None
        self.pace: RateController | None = None
        self._set_rate(rate, rate_max)
        self.expires = expires
        self.refresh_margin = refresh_margin
        self.local_host = local_host
        self.local_port = local_port
        self.t1, self.t2, self.timeout = t1, t2, timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.keepalive = keepalive
        self.user_agent = user_agent
        self.on_change = on_change
        self.request_uri = f"sip:{self.domain}"
        self._accounts: dict[str, _Account] = {}
        self._gone: dict[str, RegistrationStatus] = {}
        self._counts: Counter[RegState] = Counter()
        self._pending: dict[tuple[str, int], _Tx] = {}
        self._heap: list[tuple[float, int, int, str]] = []
        self._ready: deque[tuple[int, _Account]] = deque()
        self._seq = 0
        self._in_flight = 0
        self._next_start = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._branch = f"z9hG4bK{secrets.token_hex(4)}"
        # Call-IDs and From tags: random per client, then counted (a random one per
        # account costs a system call each, 2000 of them at a takeover). A REGISTER makes
        # no dialog, so a tag only needs to be unique.
        self._id_prefix = f"{secrets.token_hex(8)}-"
        self._ids = 0
        self._branch_seq = 0
        self._last_error = ""
        self._shared: _SharedChallenge | None = None
        self._borrowing = borrow_nonces
        self._answered = False  # any final response from the PBX yet
        self._probe_until: float | None = None
        self._borrow_misses = 0
        self._udp: socket.socket | None = None
        self._tcp: _Tcp | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._closing = False
        self._connect_lock = asyncio.Lock()
        self._local: tuple[str, int] = (local_host or "0.0.0.0", local_port)
        self._scheduler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        # REGISTERs by kind (register, unregister, retransmit; borrowed_nonce: registers
        # that tried another account's nonce), for tests and the benchmarks.
        self.sent: Counter[str] = Counter()

    # -- public API -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the UDP socket (TCP connects on first use) and start the scheduler."""
        self._loop = asyncio.get_running_loop()
        if self.transport == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RCVBUF:
                try:  # beyond net.core.rmem_max: only with CAP_NET_ADMIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, RCVBUF)
                except (OSError, AttributeError):
                    logger.warning("SIP socket receive buffer is below %d bytes", RCVBUF)
            sock.bind((self.local_host or "0.0.0.0", self.local_port))
            sock.connect(self.server)  # and getsockname() now names the routed source address
            sock.setblocking(False)
            self._udp = sock
            self._local = sock.getsockname()[:2]
            # Our own reader drains the socket per wake-up; asyncio's datagram transport
            # reads one datagram per loop iteration, which costs ~40 % of the CPU at 5k/s.
            self._loop.add_reader(sock, self._read_udp)
        self._scheduler = self._loop.create_task(self._schedule_loop())

    def set_accounts(self, accounts: Mapping[str, Credentials]) -> None:
        """Make ``accounts`` (AoR user → credentials) the set to keep registered.

        New accounts are registered, removed ones un-registered, and accounts whose
        credentials changed are registered again at once.
        """
        if self._scheduler is None:
            raise RuntimeError("call start() before set_accounts()")
        now = self._loop.time()
        for user, creds in accounts.items():
            acc = self._accounts.get(user)
            if acc is None:
                self._gone.pop(user, None)
                status = RegistrationStatus(RegState.PENDING, "", time.time())
                acc = _Account(
                    user=user,
                    creds=creds,
                    call_id=f"{self._id_prefix}{self._ids:x}",
                    tag=f"{self._id_prefix[:8]}{self._ids:x}",
                    status=status,
                    backoff=self.backoff_initial,
                    expires=self.expires,
                )
                self._ids += 1
                self._accounts[user] = acc
                self._counts[RegState.PENDING] += 1
                self._emit(acc)
                self._schedule(acc, 0.0, now)
            elif not acc.wanted or (acc.creds is not creds and acc.creds != creds):
                if not acc.wanted:
                    acc.wanted = True
                    self._counts[acc.status.state] += 1
                acc.creds, acc.challenge = creds, None
                acc.generation += 1
                acc.backoff = self.backoff_initial
                self._schedule(acc, 0.0, now)
        for user in [u for u, a in self._accounts.items() if a.wanted and u not in accounts]:
            acc = self._accounts[user]
            acc.wanted = False
            acc.generation += 1
            self._counts[acc.status.state] -= 1
            if acc.bound_until <= now and not acc.in_flight:
                self._drop(acc, "removed (it was not registered)")
            else:
                acc.backoff = self.backoff_initial
                self._schedule(acc, 0.0, now)
        self._wake.set()

    def retune(
        self, *, rate: float | Literal["auto"] | None, expires: int, rate_max: float = 10000.0
    ) -> None:
        """Use a new rate and requested expiry without registering anyone again: the rate
        from the next attempt, the expiry at each account's next refresh (a PBX that wants
        more raises it again with its 423). An adaptive rate keeps what it learnt."""
        self._set_rate(rate, rate_max)
        self.expires = expires
        for acc in self._accounts.values():
            acc.expires = expires
        if self._scheduler is not None:
            self._wake.set()

    def _set_rate(self, rate: float | Literal["auto"] | None, rate_max: float) -> None:
        if rate == "auto":
            if rate_max <= 0:
                raise ValueError("rate_max must be positive")
            if self.pace is None:
                self.pace = RateController(
                    ceiling=rate_max, clock=time.monotonic, max_window=self.max_in_flight
                )
            else:
                self.pace.ceiling = float(rate_max)
                self.pace.rate = min(self.pace.rate, self.pace.ceiling)
            self.rate = self.pace.rate
            return
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive, None or 'auto'")
        self.pace, self.rate = None, rate

    def rate_now(self) -> tuple[float | None, str]:
        """The rate in use now (None: unlimited) and why: the adaptive rate's last change
        of regime, or that it is fixed."""
        if self.pace is not None:
            return self.pace.rate, self.pace.last.reason
        return self.rate, "fixed (sip.rate)"

    def status(self, user: str) -> RegistrationStatus | None:
        """The account's current status, the final one of a removed account, or None."""
        acc = self._accounts.get(user)
        return acc.status if acc is not None else self._gone.get(user)

    def progress(self) -> Progress:
        c = self._counts
        total = c[RegState.REGISTERED] + c[RegState.FAILED] + c[RegState.PENDING]
        return Progress(
            total=total,
            registered=c[RegState.REGISTERED],
            failed=c[RegState.FAILED],
            pending=c[RegState.PENDING],
            unregistering=len(self._accounts) - total,
        )

    async def wait(self, predicate: Callable[[Progress], bool], timeout: float) -> Progress:
        """Wait until ``predicate(progress())`` holds; TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while not predicate(progress := self.progress()):
                await self._changed.wait()
        return progress

    async def stop(self, *, unregister: bool = False, timeout: float = 5.0) -> None:
        """Stop; with ``unregister``, first un-register every account (at most ``timeout`` s)."""
        if unregister and self._accounts:
            self.set_accounts({})
            try:
                await self.wait(lambda p: p.unregistering == 0, timeout)
            except TimeoutError:
                logger.warning("%d accounts not un-registered at stop", len(self._accounts))
        self._closing = True
        if self._scheduler is not None:
            self._scheduler.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for tx in list(self._pending.values()):
            self._finish(tx)
        self._pending.clear()
        if self._udp is not None:
            self._loop.remove_reader(self._udp)
            self._udp.close()
            self._udp = None
        if self._tcp is not None and self._tcp.transport is not None:
            self._tcp.transport.close()
        if self._keepalive is not None:
            self._keepalive.cancel()

    # -- scheduling -------------------------------------------------------------------

    def _schedule(self, acc: _Account, delay: float, now: float | None = None) -> None:
        now = self._loop.time() if now is None else now
        self._seq += 1
        acc.token = self._seq
        heapq.heappush(self._heap, (now + delay, self._seq, acc.token, acc.user))

    async def _schedule_loop(self) -> None:
        loop = self._loop
        heap, ready = self._heap, self._ready
        while True:
            pace = self.pace
            if pace is not None:
                self.rate = pace.rate
            limit = self._in_flight_limit()
            now = loop.time()
            while heap and heap[0][0] <= now:
                _, _, token, user = heapq.heappop(heap)
                acc = self._accounts.get(user)
                if acc is not None and acc.token == token:
                    ready.append((token, acc))
            paused = pace is not None and pace.paused_until > now
            probing = bool(ready) and self._probing(now)
            if probing:
                limit = 1
            while ready and self._in_flight < limit and not paused:
                if self.rate is not None:
                    if self._next_start > now:
                        break
                    self._take_start(now)
                token, acc = ready.popleft()
                if acc.token != token or acc.in_flight or self._accounts.get(acc.user) is not acc:
                    continue
                acc.in_flight = True
                self._in_flight += 1
                task = loop.create_task(self._attempt(acc))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            wake_at: float | None = None  # None: until set_accounts or a finished attempt
            if ready:
                if paused:
                    wake_at = pace.paused_until  # type: ignore[union-attr]
                elif self._in_flight < limit:
                    wake_at = self._next_start  # held back by the rate limit
                elif probing:
                    wake_at = self._probe_until
            elif heap:
                wake_at = heap[0][0]
            self._wake.clear()
            timer = loop.call_at(wake_at, self._wake.set) if wake_at is not None else None
            await self._wake.wait()
            if timer is not None:
                timer.cancel()

    def _probing(self, now: float) -> bool:
        """With no nonce to borrow yet and no answer from the PBX, one attempt goes first
        (for at most ``t1``), so the others can borrow the nonce of its challenge instead
        of all being challenged."""
        if not self._borrowing or self._shared is not None or self._answered:
            return False
        if self._probe_until is None:
            self._probe_until = now + self.t1
        return now < self._probe_until

    def _in_flight_limit(self) -> int:
        if self.pace is None:
            return self.max_in_flight
        return min(self.max_in_flight, self.pace.in_flight_limit)

    def _take_start(self, now: float) -> float:
        """Take the next start of the rate limit (a token bucket of 50 ms worth); return
        when it is due (in the past: now)."""
        assert self.rate is not None
        burst = max(1.0, self.rate / 20)  # tokens; keeps the rate smooth
        due = max(self._next_start, now - burst / self.rate)
        self._next_start = due + 1 / self.rate
        return due

    async def _paced(self) -> None:
        """With an adaptive rate every REGISTER takes its turn, the answer to a challenge
        too (the PBX counts requests, not registrations)."""
        pace = self.pace
        if pace is None:
            return
        now = self._loop.time()
        if pace.paused_until > now:
            await asyncio.sleep(pace.paused_until - now)
            now = self._loop.time()
        self.rate = pace.rate
        due = self._take_start(now)
        if due > now:
            await asyncio.sleep(due - now)

    async def _attempt(self, acc: _Account) -> None:
        generation = acc.generation
        try:
            if acc.wanted:
                await self._register(acc)
            else:
                await self._unregister(acc)
        except Exception as exc:  # a bug here must not stop the other accounts
            logger.exception("SIP registration of %s failed unexpectedly", acc.user)
            self._fail(acc, f"internal error: {exc}")
        finally:
            acc.in_flight = False
            self._in_flight -= 1
            if acc.generation != generation and self._accounts.get(acc.user) is acc:
                self._schedule(acc, 0.0)  # changed meanwhile: act on the latest wish now
            self._wake.set()

    # -- registration logic -----------------------------------------------------------

    async def _register(self, acc: _Account) -> None:
        started, wall_started = self._loop.time(), time.time()
        try:
            response = await self._request(acc, acc.expires)
            if response.status == 423 and (minimum := response.get("Min-Expires")):
                acc.expires = max(acc.expires, parse_expires(minimum))
                response = await self._request(acc, acc.expires)
        except (TransactionError, SipParseError) as exc:
            # Unanswered: the PBX may have bound the contact all the same.
            acc.bound_until = max(acc.bound_until, started + acc.expires)
            self._fail(acc, str(exc))
            return
        if response.status == 503 and self.pace is not None:
            # The PBX is overloaded, not refusing this user: try again when the adaptive
            # rate lets it, without the growing backoff of a failure.
            self._set(acc, RegState.FAILED, f"{response.status} {response.reason}".strip())
            delay = max(self.backoff_initial, _retry_after(response) or 0.0)
            self._schedule(acc, delay * random.uniform(0.8, 1.0))
            return
        if not 200 <= response.status < 300:
            acc.challenge = None
            self._fail(acc, f"{response.status} {response.reason}".strip())
            return
        try:
            granted = contact_expires(response, self._contact(acc))
        except SipParseError as exc:
            logger.debug("unreadable Contact in 200 for %s: %s", acc.user, exc)
            granted = None
        granted = acc.expires if granted is None else granted
        if granted <= 0:
            self._fail(acc, "the PBX granted no expiry")
            return
        acc.bound_until = started + granted
        acc.backoff = self.backoff_initial
        self._set(acc, RegState.REGISTERED, "", expires_at=wall_started + granted)
        delay = max(granted / 2, granted - self.refresh_margin) * random.uniform(0.9, 1.0)
        self._schedule(acc, max(0.0, started + delay - self._loop.time()))

    async def _unregister(self, acc: _Account) -> None:
        if self._loop.time() >= acc.bound_until:
            self._drop(acc, "removed (it was not registered)")
            return
        try:
            response = await self._request(acc, 0)
            reason = f"{response.status} {response.reason}".strip()
            retry = response.status >= 500
            done = 200 <= response.status < 300
        except (TransactionError, SipParseError) as exc:
            reason, retry, done = str(exc), True, False
        if acc.wanted:
            return  # added back meanwhile: _attempt registers it again
        if done:
            self._drop(acc, "un-registered")
        elif retry and self._loop.time() < acc.bound_until:
            self._set(acc, RegState.FAILED, f"un-REGISTER: {reason}")
            self._retry_later(acc)
        else:
            self._drop(acc, f"un-REGISTER failed ({reason}); the binding expires by itself")

    async def _request(self, acc: _Account, expires: int) -> SipResponse:
        """One REGISTER exchange; a 401/407 challenge is answered once.

        An account without a challenge of its own borrows the last one the PBX sent to
        any account (RFC 3261 22.3: credentials may be sent pre-emptively for a realm),
        so after a takeover each user costs one REGISTER, not two. A PBX that binds its
        nonces to one registration challenges the borrower, which answers as before; a
        run of such refusals stops the borrowing."""
        borrowed = self._borrow(acc)
        response = await self._transact(acc, self._register_request(acc, expires, reuse=True))
        if response.status in (401, 407):
            if borrowed is not None and borrowed is self._shared:
                # Only a refusal of the newest nonce counts: others may just be stale.
                self._borrow_refused()
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            try:
                acc.challenge = choose_challenge(response.get_all(header))
            except SipParseError as exc:
                raise SipParseError(f"{response.status} {response.reason}: {exc}") from None
            acc.challenge_code, acc.nc = response.status, 0
            self._shared = _SharedChallenge(acc.challenge, response.status)
            await self._paced()
            response = await self._transact(acc, self._register_request(acc, expires))
        elif borrowed is not None and response.status < 500:
            self._borrow_misses = 0
        return response

    def _borrow(self, acc: _Account) -> _SharedChallenge | None:
        shared = self._shared
        if acc.challenge is not None or shared is None or not self._borrowing:
            return None
        # One nonce count per nonce across the accounts that use it (RFC 7616 3.4).
        shared.nc += 1
        acc.challenge, acc.challenge_code, acc.nc = shared.challenge, shared.code, shared.nc - 1
        self.sent["borrowed_nonce"] += 1
        return shared

    def _borrow_refused(self) -> None:
        self._borrow_misses += 1
        if self._borrow_misses >= BORROW_MISSES and self._borrowing:
            self._borrowing = False
            logger.info(
                "the PBX accepts no nonce of another registration: each account answers "
                "its own challenge"
            )

    def _register_request(self, acc: _Account, expires: int, reuse: bool = False) -> bytes:
        acc.cseq += 1
        host, port = self._local
        self._branch_seq += 1
        uri = f"sip:{acc.user}@{self.domain}"
        contact = f"<{self._contact(acc)}>" + (";expires=0" if expires == 0 else "")
        request = SipRequest(method="REGISTER", uri=self.request_uri)
        request.headers = [
            (
                "Via",
                f"SIP/2.0/{self.transport.upper()} {host}:{port};"
                f"branch={self._branch}.{self._branch_seq};rport",
            ),
            ("Max-Forwards", "70"),
            ("From", f"<{uri}>;tag={acc.tag}"),
            ("To", f"<{uri}>"),
            ("Call-ID", acc.call_id),
            ("CSeq", f"{acc.cseq} REGISTER"),
            ("Contact", contact),
            ("Expires", str(expires)),
            ("User-Agent", self.user_agent),
        ]
        if acc.challenge is not None and (reuse is False or acc.nc > 0):
            acc.nc += 1
            value = authorization(
                acc.challenge,
                username=acc.creds.username,
                password=acc.creds.password,
                method="REGISTER",
                uri=self.request_uri,
                nc=acc.nc,
            )
            name = "Authorization" if acc.challenge_code == 401 else "Proxy-Authorization"
            request.headers.append((name, value))
        self.sent["unregister" if expires == 0 else "register"] += 1
        return request.to_bytes()

    def _contact(self, acc: _Account) -> str:
        host, port = self._local
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{acc.user}@{host}:{port}{suffix}"

    def _fail(self, acc: _Account, reason: str) -> None:
        logger.debug("SIP registration of %s failed: %s", acc.user, reason)
        self._set(acc, RegState.FAILED, reason)
        self._retry_later(acc)

    def _retry_later(self, acc: _Account) -> None:
        self._schedule(acc, acc.backoff * random.uniform(0.8, 1.0))
        acc.backoff = min(acc.backoff * 2, self.backoff_max)

    def _set(
        self, acc: _Account, state: RegState, reason: str, expires_at: float | None = None
    ) -> None:
        if acc.wanted:
            self._counts[acc.status.state] -= 1
            self._counts[state] += 1
        acc.status = RegistrationStatus(state, reason, time.time(), expires_at)
        self._emit(acc)

    def _drop(self, acc: _Account, reason: str) -> None:
        acc.status = RegistrationStatus(RegState.UNREGISTERED, reason, time.time())
        del self._accounts[acc.user]
        self._gone[acc.user] = acc.status
        self._emit(acc)

    def _emit(self, acc: _Account) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_change is not None:
            try:
                self.on_change(acc.user, acc.status)
            except Exception:
                logger.exception("on_change hook failed for %s", acc.user)

    # -- transactions and transport ---------------------------------------------------

    async def _transact(self, acc: _Account, data: bytes) -> SipResponse:
        """Send a request and wait for its final response (RFC 3261 17.1.2, non-INVITE)."""
        if self.transport == "tcp":
            await self._connect()
        loop = self._loop
        key = (acc.call_id, acc.cseq)
        tx = _Tx(data=data, future=loop.create_future(), interval=self.t1)
        self._pending[key] = tx
        sent_at = loop.time()
        self._send(data)
        if self.transport == "udp":
            tx.retransmit = loop.call_later(self.t1, self._retransmit, key)
        tx.timeout = loop.call_later(self.timeout, self._expire, key)
        try:
            response = await tx.future
            if not self._answered:
                self._answered = True
                self._wake.set()  # the first answer ends the probing
            if self.pace is not None:
                if response.status == 503:
                    self.pace.on_503(_retry_after(response))
                else:
                    self.pace.on_success(loop.time() - sent_at)
            return response
        except TransactionError:
            if self.pace is not None:
                self.pace.on_timeout()
            raise
        finally:
            self._pending.pop(key, None)
            self._finish(tx)

    def _send(self, data: bytes) -> None:
        if self._udp is not None:
            try:
                self._udp.send(data)
            except (BlockingIOError, InterruptedError):
                pass  # buffer full: dropped like on the wire; retransmission covers it
            except OSError as exc:  # ECONNREFUSED after an ICMP port unreachable
                self._last_error = exc.strerror or str(exc)
        elif self._tcp is not None and self._tcp.transport is not None:
            self._tcp.transport.write(data)

    def _read_udp(self) -> None:
        sock = self._udp
        for _ in range(512):  # then let timers and other callbacks run
            if sock is None:
                return
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable: the PBX is not listening
                self._last_error = exc.strerror or str(exc)
                continue
            self._on_message(data)

    def _retransmit(self, key: tuple[str, int]) -> None:
        tx = self._pending.get(key)
        if tx is None:
            return
        self.sent["retransmit"] += 1
        if self.pace is not None and tx.interval == self.t1:  # its first loss only
            self.pace.on_retransmit()
        self._send(tx.data)
        tx.interval = min(tx.interval * 2, self.t2)
        tx.retransmit = self._loop.call_later(tx.interval, self._retransmit, key)

    def _expire(self, key: tuple[str, int]) -> None:
        tx = self._pending.pop(key, None)
        if tx is None or tx.future.done():
            return
        host, port = self.server
        hint = f" ({self._last_error})" if self._last_error else ""
        tx.future.set_exception(
            TransactionError(f"no response from {host}:{port} in {self.timeout:g} s{hint}")
        )

    @staticmethod
    def _finish(tx: _Tx) -> None:
        for handle in (tx.retransmit, tx.timeout):
            if handle is not None:
                handle.cancel()
        if not tx.future.done():
            tx.future.cancel()

    def _on_message(self, data: bytes) -> None:
        try:
            message = parse_message(data)
            if isinstance(message, SipRequest):
                self._answer(message)
                return
            cseq, method = parse_cseq(message.get("CSeq"))
        except SipParseError as exc:
            logger.debug("ignoring a malformed SIP message: %s", exc)
            return
        tx = self._pending.get((message.get("Call-ID") or "", cseq))
        if tx is None or method != "REGISTER" or message.status < 200 or tx.future.done():
            return  # a late retransmission's answer, or provisional
        self._last_error = ""
        tx.future.set_result(message)

    def _answer(self, request: SipRequest) -> None:
        """OPTIONS (a PBX's keep-alive probe) gets 200; other requests 405, never ACKed."""
        if request.method == "ACK":
            return
        ok = request.method == "OPTIONS"
        response = build_response(
            request,
            200 if ok else 405,
            "OK" if ok else "Method Not Allowed",
            to_tag=self._branch[7:],
        )
        if not ok:
            response.headers.append(("Allow", "OPTIONS"))
        self._send(response.to_bytes())

    async def _connect(self) -> None:
        if self._tcp is not None:
            return
        async with self._connect_lock:
            if self._tcp is not None:
                return
            host, port = self.server
            try:
                async with asyncio.timeout(self.timeout):
                    transport, protocol = await self._loop.create_connection(
                        lambda: _Tcp(self),
                        host,
                        port,
                        local_addr=(self.local_host or "0.0.0.0", self.local_port),
                    )
            except (OSError, TimeoutError) as exc:
                # asyncio's own strerror ("Connect call failed ...") hides the errno's text.
                reason = os.strerror(exc.errno) if exc.errno else "timed out"
                raise TransactionError(
                    f"cannot connect to {host}:{port} over TCP: {reason}"
                ) from None
            self._tcp = protocol
            self._local = transport.get_extra_info("sockname")[:2]
            self._keepalive = self._loop.call_later(self.keepalive, self._send_keepalive)

    def _send_keepalive(self) -> None:
        """RFC 5626 CRLF ping; Kamailio closes idle TCP connections (120 s by default)."""
        if self._tcp is not None and self._tcp.transport is not None:
            self._tcp.transport.write(b"\r\n\r\n")
            self._keepalive = self._loop.call_later(self.keepalive, self._send_keepalive)

    def _on_connection_lost(self, protocol: _Tcp, exc: Exception | None) -> None:
        if self._tcp is not protocol:
            return
        self._tcp = None
        if self._keepalive is not None:
            self._keepalive.cancel()
        reason = f"TCP connection to the PBX lost{f': {exc}' if exc else ''}"
        for key, tx in list(self._pending.items()):
            del self._pending[key]
            if not tx.future.done():
                tx.future.set_exception(TransactionError(reason))
        if self._closing:
            return
        # The next connection has another local port, so our contact changes: register
        # again now rather than at the refresh, and learn at once if the PBX is gone.
        logger.info("%s; registering %d accounts again", reason, len(self._accounts))
        now = self._loop.time()
        for acc in self._accounts.values():
            if not acc.in_flight and acc.status.state == RegState.REGISTERED:
                self._schedule(acc, 0.0, now)
        self._wake.set()


def _retry_after(response: SipResponse) -> float | None:
    """The seconds of a response's Retry-After ("120 (busy);duration=60" gives 120)."""
    value = response.get("Retry-After") or ""
    digits = value.strip().split(" ", 1)[0].split(";", 1)[0]
    return float(digits) if digits.isdigit() else None
