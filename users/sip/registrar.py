"""A small SIP registrar for the embedded demo, when no Kamailio is installed.

UDP only, REGISTER only (anything else gets 405), digest authentication (MD5, qop=auth)
against a table of ``{username: password}``, and the bindings kept in memory::

    registrar = Registrar(credentials={"2000": "secret"})
    registrar.start()                      # a thread on 127.0.0.1:registrar.port
    registrar.registered()                 # {"2000": ["sip:2000@127.0.0.1:5070"]}
    registrar.stop()

A REGISTER without credentials is challenged (401); credentials of an unknown user or with
a wrong password are refused with 403, as the Kamailio configuration of deploy/ does; a
nonce older than ``NONCE_LIFETIME`` is challenged again with ``stale=true``. It is not a
PBX: it keeps no calls, no TCP, no persistence, and is sized for the demo's few hundred
users (the tests and docker-compose use Kamailio).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
import threading
import time
from collections.abc import Mapping

from users.sip.digest import digest_response
from users.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    _parse_auth_params,
    build_response,
    parse_expires,
    parse_message,
    parse_name_addr,
    split_list,
)

logger = logging.getLogger(__name__)

NONCE_LIFETIME = 300.0
DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
RCVBUF = 4 * 1024 * 1024  # a burst of registrations must not overflow the socket


def _user_of(uri: str) -> str:
    """The user part of ``sip:user@host;params`` (the AoR the registrar keys on)."""
    address = uri.split(":", 1)[-1]
    return address.split("@", 1)[0] if "@" in address else ""


class Registrar:
    """The registrar's socket and thread; see the module docstring."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        realm: str = "kws-demo",
    ) -> None:
        self.host = host
        self.realm = realm
        self._credentials = dict(credentials or {})
        self._bindings: dict[str, dict[str, float]] = {}  # user -> contact URI -> expiry
        self._key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._sock.bind((host, port))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------

    def start(self) -> Registrar:
        self._thread = threading.Thread(target=self._serve, name="registrar", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> Registrar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def credentials_set(self, credentials: Mapping[str, str]) -> None:
        """Replace the table of users and passwords (bindings of removed users go)."""
        with self._lock:
            self._credentials = dict(credentials)
            for user in set(self._bindings) - set(self._credentials):
                del self._bindings[user]

    def registered(self) -> dict[str, list[str]]:
        """The users with an unexpired binding, and their contact URIs."""
        now = time.monotonic()
        with self._lock:
            return {
                user: sorted(uri for uri, until in contacts.items() if until > now)
                for user, contacts in self._bindings.items()
                if any(until > now for until in contacts.values())
            }

    # -- protocol ---------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data.strip():
                continue  # a keep-alive
            try:
                request = parse_message(data)
            except SipParseError as exc:
                logger.debug("registrar: unreadable datagram from %s: %s", peer, exc)
                continue
            if not isinstance(request, SipRequest):
                continue
            try:
                response = self.answer(request)
            except (SipParseError, ValueError) as exc:
                response = build_response(request, 400, "Bad Request", self._tag())
                logger.debug("registrar: bad request from %s: %s", peer, exc)
            try:
                self._sock.sendto(response.to_bytes(), peer)
            except OSError as exc:
                logger.debug("registrar: could not answer %s: %s", peer, exc)

    def _tag(self) -> str:
        return secrets.token_hex(4)

    def _nonce(self, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):x}"
        mac = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{stamp}.{mac}"

    def _nonce_state(self, nonce: str) -> str:
        """ "ok", "stale" (ours, but old) or "bad" (not ours)."""
        stamp, _, mac = nonce.partition(".")
        good = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(mac, good):
            return "bad"
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return "bad"
        return "ok" if 0 <= age <= NONCE_LIFETIME else "stale"

    def _challenge(self, request: SipRequest, *, stale: bool = False) -> SipResponse:
        response = build_response(request, 401, "Unauthorized", self._tag())
        value = f'Digest realm="{self.realm}", nonce="{self._nonce()}", qop="auth", algorithm=MD5'
        response.add("WWW-Authenticate", value + (", stale=true" if stale else ""))
        return response

    def answer(self, request: SipRequest) -> SipResponse:
        """The response to one request (public for the tests: no socket needed)."""
        if request.method != "REGISTER":
            response = build_response(request, 405, "Method Not Allowed", self._tag())
            response.add("Allow", "REGISTER")
            return response
        header = request.get("Authorization")
        if not header or not header.lower().startswith("digest "):
            return self._challenge(request)
        params = _parse_auth_params(header[len("digest ") :])
        nonce_state = self._nonce_state(params.get("nonce", ""))
        if nonce_state != "ok":
            return self._challenge(request, stale=nonce_state == "stale")
        username = params.get("username", "")
        with self._lock:
            password = self._credentials.get(username)
        qop = params.get("qop")
        expected = (
            digest_response(
                username=username,
                password=password,
                realm=params.get("realm", ""),
                nonce=params["nonce"],
                method="REGISTER",
                uri=params.get("uri", ""),
                algorithm=params.get("algorithm", "MD5"),
                qop=qop,
                nc=int(params.get("nc", "1"), 16),
                cnonce=params.get("cnonce", ""),
            )
            if password is not None and params.get("realm") == self.realm
            else None
        )
        to_user = _user_of(parse_name_addr(request.get("To") or "").uri)
        if (
            expected is None
            or not hmac.compare_digest(expected, params.get("response", ""))
            or to_user != username
        ):
            return build_response(request, 403, "Forbidden", self._tag())
        return self._bind(request, username)

    def _bind(self, request: SipRequest, user: str) -> SipResponse:
        default = request.get("Expires")
        default_expires = parse_expires(default) if default is not None else DEFAULT_EXPIRES
        now = time.monotonic()
        contacts = [value for header in request.get_all("Contact") for value in split_list(header)]
        with self._lock:
            bindings = self._bindings.setdefault(user, {})
            if contacts == ["*"]:
                if default_expires != 0:
                    return build_response(request, 400, "Bad Request", self._tag())
                bindings.clear()
            for text in contacts if contacts != ["*"] else []:
                contact = parse_name_addr(text)
                param = contact.params.get("expires")
                expires = parse_expires(param) if param is not None else default_expires
                if 0 < expires < MIN_EXPIRES:
                    response = build_response(request, 423, "Interval Too Brief", self._tag())
                    response.add("Min-Expires", str(MIN_EXPIRES))
                    return response
                if expires == 0:
                    bindings.pop(contact.uri, None)
                else:
                    bindings[contact.uri] = now + expires
            live = {uri: until for uri, until in bindings.items() if until > now}
            self._bindings[user] = live
        response = build_response(request, 200, "OK", self._tag())
        for uri, until in sorted(live.items()):
            response.add("Contact", f"<{uri}>;expires={max(0, round(until - now))}")
        return response
