"""A private OpenLDAP server (Debian's slapd) for the tests and benchmarks.

``Slapd()`` writes a slapd.conf (deploy/ldap/slapd.conf with its own folders and
passwords) into a temporary folder, loads the small directory of deploy/ldap/
directory.ldif offline with slapadd, and runs slapd on a free loopback port:

>>> with Slapd() as ldap:
...     ldap.url          # ldap://127.0.0.1:PORT
...     ldap.stop()       # the server is down now (a test of "server stopped")

The phonebook account ``BIND_DN`` reads the people under ``BASE_DN`` with
``PHONEBOOK_PASSWORD``; ``ADMIN_DN`` is the directory's root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "ldap"
SLAPD = shutil.which("slapd", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/slapadd"

SUFFIX = "dc=kws,dc=example"
BASE_DN = f"ou=people,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
BIND_DN = f"cn=phonebook,ou=services,{SUFFIX}"
ADMIN_PASSWORD = "directory-admin-0451"
PHONEBOOK_PASSWORD = "phonebook-reader-7203"

# The people of deploy/ldap/directory.ldif: (cn, telephoneNumber).
PEOPLE = (
    ("Alice Andersen", "4711"),
    ("Bob Berg", "4712"),
    ("Carla Christensen", "+45 7012 3003"),
    ("Dan Dahl", "4714"),
)


class SlapdError(RuntimeError):
    """slapd could not be prepared or started; the message has its output."""


def slapd_available() -> str | None:
    """None when slapd can run here, otherwise the reason it cannot."""
    if not Path(SLAPD).exists() or not Path(SLAPADD).exists():
        return "slapd is not installed (apt-get install slapd ldap-utils)"
    if not Path("/usr/lib/ldap/back_mdb.so").exists() and not list(
        Path("/usr/lib/ldap").glob("back_mdb*")
    ):
        return "slapd's mdb backend is missing (/usr/lib/ldap/back_mdb.so)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _conf(text: str, folder: Path, rootpw: str) -> str:
    out = []
    for line in text.splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if word == "directory":
            line = f"directory   {folder / 'data'}"
        elif word == "pidfile":
            line = f"pidfile     {folder / 'slapd.pid'}"
        elif word == "argsfile":
            line = f"argsfile    {folder / 'slapd.args'}"
        elif word == "rootpw":
            line = f"rootpw      {rootpw}"
        elif word == "loglevel":
            line = "loglevel    none"
        out.append(line)
    return "\n".join(out) + "\n"


class Slapd:
    """One slapd on a free loopback port with the small directory loaded."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 workdir: str | Path | None = None) -> None:  # fmt: skip
        missing = slapd_available()
        if missing:
            raise SlapdError(missing)
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="kws-ldap-"))
        self.config = self.dir / "slapd.conf"
        self.pidfile = self.dir / "slapd.pid"
        self._prepare()

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    def _prepare(self) -> None:
        """Write the config and load the directory, unless a reused ``workdir`` has it."""
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if any(data.iterdir()):
            return
        self.config.write_text(_conf((DEPLOY / "slapd.conf").read_text(), self.dir, ADMIN_PASSWORD))
        ldif = self.dir / "directory.ldif"
        ldif.write_text(
            (DEPLOY / "directory.ldif").read_text().replace("@PHONEBOOK_PASSWORD@",
                                                            PHONEBOOK_PASSWORD)
        )  # fmt: skip
        loaded = subprocess.run(
            [SLAPADD, "-q", "-f", str(self.config), "-l", str(ldif)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if loaded.returncode != 0:
            raise SlapdError(f"slapadd failed: {loaded.stderr.strip() or loaded.stdout.strip()}")

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self, timeout: float = 10.0) -> None:
        """Start slapd (it puts itself in the background) and wait until it answers."""
        if self.running:
            return
        started = subprocess.run(
            [SLAPD, "-f", str(self.config), "-h", f"{self.url}/"],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if started.returncode != 0:
            raise SlapdError(f"slapd did not start: {started.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SlapdError(f"slapd did not listen on {self.url} within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop slapd and wait until its port is closed."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            time.sleep(0.05)
        if self.running:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
