"""A real Kamailio registrar for tests and benchmarks (not used in production).

``Kamailio`` runs ``deploy/kamailio/kamailio.cfg`` unprivileged (as ``nobody`` when we are
root) in the foreground, with its runtime folder, ctl socket, JSON-RPC FIFO and SQLite
credentials database in a temporary folder, listening on a free loopback port for UDP
and TCP::

    with Kamailio() as pbx:
        pbx.add_subscribers([("1001", "127.0.0.1", "secret")])
        ...                               # REGISTER to pbx.host, pbx.port
        pbx.contacts("1001")              # Kamailio's own location table
        pbx.stop(); pbx.start()           # restart on the same port

Contacts are kept in memory (usrloc db_mode 0), so a restart forgets every registration.
The location table is read through the JSON-RPC FIFO (``ul.dump`` works for any number of
AoRs there) or ``kamcmd`` on the ctl socket. Needs the ``kamailio`` and
``kamailio-sqlite-modules`` Debian packages (``deploy/ensure-services.sh`` installs them).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
SCHEMA = Path("/usr/share/kamailio/db_sqlite")
KAMAILIO = shutil.which("kamailio", path="/usr/sbin:/usr/bin:/sbin:/bin") or "kamailio"
KAMCMD = shutil.which("kamcmd", path="/usr/sbin:/usr/bin:/sbin:/bin") or "kamcmd"


class KamailioError(RuntimeError):
    """Kamailio could not be started, or an RPC to it failed."""


def kamailio_available() -> str | None:
    """None when Kamailio can run here, otherwise the reason it cannot."""
    if not Path(KAMAILIO).exists() and shutil.which("kamailio") is None:
        return "kamailio is not installed (apt-get install kamailio kamailio-sqlite-modules)"
    if not (SCHEMA / "auth_db-create.sql").exists():
        return "kamailio-sqlite-modules is not installed"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on ``host`` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise KamailioError("no free UDP+TCP port found")


class Kamailio:
    """One Kamailio registrar process on a loopback port; see the module docstring.

    ``modparams`` adds ``modparam(module, name, value)`` lines to a copy of the config,
    e.g. ``{("registrar", "min_expires"): 1}`` to allow short registrations in tests.
    ``defines`` sets the config's ``#!define``s (``-A``), e.g. ``{"REGISTER_LIMIT": 500}``
    for a PBX that answers 503 above 500 REGISTERs per second, ``{"REGISTER_LOG": True}``
    to read the time of each REGISTER back with ``register_times()``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        workdir: str | Path | None = None,
        config: Path = CONFIG,
        modparams: dict[tuple[str, str], int | str] | None = None,
        defines: dict[str, int | str | bool] | None = None,
        shm_mb: int = 128,
        pkg_mb: int = 16,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._own_workdir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="kws-pbx-"))
        self.run_dir = self.dir / "run"
        self.db_path = self.dir / "kamailio.sqlite"
        self.log_path = self.dir / "kamailio.log"
        self.config = self._write_config(config, modparams or {})
        self.defines = dict(defines or {})
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.process: subprocess.Popen[bytes] | None = None
        self._user = self._unprivileged_user()
        self._prepare()

    @property
    def ctl(self) -> str:
        return f"unix:{self.run_dir}/kamailio_ctl"

    def register_times(self) -> list[float]:
        """The wall-clock times of the REGISTERs Kamailio received (``REGISTER_LOG``)."""
        found = re.findall(r"REGISTER at (\d+\.\d+)", self.log_path.read_text(errors="replace"))
        return sorted(float(t) for t in found)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self, config: Path, modparams: dict[tuple[str, str], int | str]) -> Path:
        if not modparams:
            return config
        lines = []
        for (module, name), value in modparams.items():
            literal = value if isinstance(value, int) else json.dumps(value)
            lines.append(f'modparam("{module}", "{name}", {literal})')
        text = config.read_text()
        marker = "####### Routing logic"
        if marker not in text:
            raise KamailioError(f"{config} has no {marker!r} section to add modparams before")
        self.dir.mkdir(parents=True, exist_ok=True)
        copy = self.dir / "kamailio.cfg"
        copy.write_text(text.replace(marker, "\n".join(lines) + "\n\n" + marker, 1))
        return copy

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        return pwd.getpwnam("nobody")

    def _prepare(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists():
            with sqlite3.connect(self.db_path) as db:
                db.executescript((SCHEMA / "standard-create.sql").read_text())
                db.executescript((SCHEMA / "auth_db-create.sql").read_text())
            db.close()
        if self._user is not None:
            # Kamailio runs as nobody: it must read the database and write the runtime dir.
            for path in (self.dir, self.run_dir, self.db_path):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            self.dir.chmod(0o755)

    # -- process ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start Kamailio and wait until its ctl socket answers."""
        if self.running:
            return
        for stale in ("kamailio_ctl", "kamailio_rpc_fifo", "kamailio.pid"):
            (self.run_dir / stale).unlink(missing_ok=True)
        cmd = [
            KAMAILIO,
            "-DD",
            "-E",
            "-f",
            str(self.config),
            "-P",
            str(self.run_dir / "kamailio.pid"),
            "-Y",
            str(self.run_dir),
            "-m",
            str(self.shm_mb),
            "-M",
            str(self.pkg_mb),
            "-A",
            f"SIP_ADDR={self.host}",
            "-A",
            f"SIP_PORT={self.port}",
            "-A",
            f'DBURL="sqlite://{self.db_path}"',
            "-A",
            f'RPC_REPLY_DIR="{self.run_dir}/"',
        ]
        for name, value in self.defines.items():
            cmd += ["-A", name if value is True else f"{name}={value}"]
        log = self.log_path.open("ab")
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            **kwargs,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise KamailioError(f"kamailio exited with {self.process.returncode}: {self.log()}")
            try:
                self.kamcmd("core.uptime", timeout=1.0)
                return
            except KamailioError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise KamailioError(f"kamailio did not answer in {timeout} s") from None
                time.sleep(0.03)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop Kamailio (SIGTERM, then SIGKILL of its process group after ``timeout``)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        # Children may linger a moment after the main process; they hold the ports.
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop Kamailio and remove the temporary folder (when we created it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, tail: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    # -- credentials (auth_db reads the table on every request) ------------------------

    def add_subscribers(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Insert or replace ``(username, domain, password)`` rows of ``subscriber``."""
        rows = list(rows)
        with sqlite3.connect(self.db_path, timeout=10) as db:
            db.executemany(
                "DELETE FROM subscriber WHERE username = ? AND domain = ?",
                [(u, d) for u, d, _ in rows],
            )
            db.executemany(
                "INSERT INTO subscriber(username, domain, password) VALUES (?, ?, ?)", rows
            )
        db.close()

    def set_password(self, username: str, password: str) -> None:
        with sqlite3.connect(self.db_path, timeout=10) as db:
            db.execute(
                "UPDATE subscriber SET password = ? WHERE username = ?", (password, username)
            )
        db.close()

    def delete_subscriber(self, username: str) -> None:
        with sqlite3.connect(self.db_path, timeout=10) as db:
            db.execute("DELETE FROM subscriber WHERE username = ?", (username,))
        db.close()

    # -- management interfaces ---------------------------------------------------------

    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        """Run ``kamcmd -s <ctl socket> ARGS`` and return its output."""
        try:
            done = subprocess.run(
                [KAMCMD, "-s", self.ctl, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise KamailioError(f"kamcmd {' '.join(args)} timed out") from None
        if done.returncode != 0:
            raise KamailioError(f"kamcmd {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def rpc(self, method: str, *params: Any, timeout: float = 10.0) -> Any:
        """Call ``method`` through the jsonrpcs FIFO and return its ``result``."""
        reply_name = f"kws_reply_{secrets.token_hex(6)}"  # no dot: jsonrpcs refuses it
        reply_path = self.run_dir / reply_name
        os.mkfifo(reply_path, 0o666)
        reply_path.chmod(0o666)  # Kamailio (nobody) writes it; the umask must not stop it
        request = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": method,
                "params": list(params),
                "id": 1,
                "reply_name": reply_name,
            }
        ).encode()
        # O_RDWR never blocks on a FIFO; the reply is complete once it parses as JSON.
        reader = os.open(reply_path, os.O_RDWR | os.O_NONBLOCK)
        try:
            try:
                writer = os.open(self.run_dir / "kamailio_rpc_fifo", os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                raise KamailioError(f"JSON-RPC FIFO not available: {exc}") from None
            try:
                os.write(writer, request + b"\n")
            finally:
                os.close(writer)
            data = bytearray()
            deadline = time.monotonic() + timeout
            decoder = json.JSONDecoder()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KamailioError(f"no JSON-RPC reply to {method} in {timeout} s")
                ready, _, _ = select.select([reader], [], [], left)
                if ready:
                    data += os.read(reader, 1 << 20)
                    if not data.rstrip().endswith(b"}"):
                        continue  # parsing megabytes at every 64 KiB read would be quadratic
                    try:
                        reply, _ = decoder.raw_decode(data.decode("utf-8", "replace").strip())
                    except ValueError:
                        continue
                    break
        finally:
            os.close(reader)
            reply_path.unlink(missing_ok=True)
        if "error" in reply:
            error = reply["error"]
            raise KamailioError(f"{method}: {error.get('code')} {error.get('message')}")
        return reply.get("result")

    # -- location table ----------------------------------------------------------------

    def contacts(self, aor: str) -> list[dict[str, Any]]:
        """The contacts of one AoR (the user part only: usrloc keeps no domain here)."""
        try:
            result = self.rpc("ul.lookup", "location", aor)
        except KamailioError as exc:
            if "404" in str(exc) or "not found" in str(exc).lower():
                return []
            raise
        return [c["Contact"] for c in result.get("Contacts", [])]

    def location(self, timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
        """The whole location table: ``{aor: [contact, ...]}`` from ``ul.dump``.

        Kamailio takes about 4 s to build the reply for 20,000 AoRs.
        """
        result = self.rpc("ul.dump", timeout=timeout)
        table: dict[str, list[dict[str, Any]]] = {}
        for domain in result.get("Domains", []):
            for entry in domain["Domain"].get("AoRs", []):
                info = entry["Info"]
                table[info["AoR"]] = [c["Contact"] for c in info.get("Contacts", [])]
        return table

    def registered_users(self) -> int:
        """``usrloc:registered_users`` (number of AoRs with a contact)."""
        result = self.rpc("stats.get_statistics", "usrloc:")
        # e.g. ["usrloc:location_contacts = 200", ..., "usrloc:registered_users = 200"]
        for line in result:
            name, _, value = str(line).partition("=")
            if name.strip() == "usrloc:registered_users":
                return int(value)
        raise KamailioError(f"unexpected stats reply {result!r}")
