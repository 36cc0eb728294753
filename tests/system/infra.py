"""Real clusters for system tests and benchmarks: per-node PostgreSQL databases and
Redis servers, and node processes started through kws_admin.cluster."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from kws_admin.cluster import Node
from licensing.ari import ari_generate
from licensing.vendor import Vendor

PG_ADMIN_URL = os.environ.get("KWS_TEST_PG_URL", "postgresql://kws:kws@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "initial-Passw0rd"
NEW_PASSWORD = "a-changed-Passw0rd"
SECRET = "system-test-pairing-secret"
# Fast engine timings for tests: heartbeats every 0.5 s, the peer lost after 2 s of silence.
FAST = {"KWS_HEARTBEAT_INTERVAL": "0.5", "KWS_DETECTION_WINDOW": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server of its own on a free loopback port; yields its URL."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="kws-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _connects(port), timeout=10, interval=0.05, what="redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database of its own; yields its URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LineLog:
    """Collects every output line of a cluster so tests can wait for log lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def dump(self, last: int = 120) -> str:
        return "\n".join(self.lines[-last:])


@dataclass
class NodeDB:
    """Reads a node's own database directly, as an observer outside the node: PostgreSQL
    (``postgresql://...``), or the embedded default's SQLite file (``sqlite:PATH``)."""

    url: str

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        if self.url.startswith("sqlite:"):
            path = self.url.removeprefix("sqlite:")
            if not Path(path).exists():
                return []
            conn = sqlite3.connect(path, timeout=20)
            try:
                rows = conn.execute(sql.replace("%s", "?"), params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # not migrated yet
                raise
            finally:
                conn.close()
            return [tuple(_sqlite_value(v) for v in row) for row in rows]
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def phase(self) -> str | None:
        return self.value("select phase from core_nodestate where id = 1")

    def locked(self) -> bool:
        return bool(self.value("select locked from core_nodestate where id = 1"))

    def events(self, kind: str) -> list[tuple]:
        return self.rows(
            "select created, message from core_event where kind = %s order by id", kind
        )

    def event_since(self, kind: str, since: float) -> tuple[float, str] | None:
        """The first event of ``kind`` at or after ``since`` (epoch): (time, message)."""
        for created, message in self.events(kind):
            if created.timestamp() >= since:
                return created.timestamp(), message
        return None

    def users_by_node(self) -> dict[str, int]:
        return dict(self.rows("select node, count(*) from users_dectuser group by node"))

    def config(self, key: str) -> str | None:
        return self.value("select value from core_configvalue where key = %s", key)


def _sqlite_value(value: Any) -> Any:
    """Django keeps datetimes in SQLite as UTC text; read them back as aware datetimes."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            return value
    return value


@contextmanager
def embedded_stack(name: str, *, log: LineLog, tmp: Path, port: int | None = None,
                   env: dict[str, str] | None = None) -> Iterator[tuple[Node, NodeDB]]:  # fmt: skip
    """A node on the embedded default (SQLite and the filesystem broker in its data
    folder, no servers), and the node (not started)."""
    node = Node(name, port or free_port(), tmp / name, env=dict(env or {}), output=log)
    # The test run's own database and broker settings must not reach this node.
    node.env = {**node.env, "KWS_DATABASE_URL": "", "KWS_BROKER_URL": ""}
    try:
        yield node, NodeDB(f"sqlite:{node.data_dir / 'db.sqlite3'}")
    finally:
        node.stop()


@contextmanager
def node_stack(name: str, *, log: LineLog, tmp: Path, port: int | None = None,
               env: dict[str, str] | None = None) -> Iterator[tuple[Node, NodeDB]]:  # fmt: skip
    """A node's own PostgreSQL database and Redis server, and the node (not started)."""
    with pg_database(f"kws_{name}") as db_url, redis_server() as broker_url:
        node = Node(
            name,
            port or free_port(),
            tmp / name,
            env={"KWS_DATABASE_URL": db_url, "KWS_BROKER_URL": broker_url, **(env or {})},
            output=log,
        )
        try:
            yield node, NodeDB(db_url.replace("postgres://", "postgresql://"))
        finally:
            node.stop()


@contextmanager
def started_node(name: str, *, log: LineLog, tmp: Path, init_args: list[str],
                 env: dict[str, str] | None = None) -> Iterator[Node]:  # fmt: skip
    """A node on PostgreSQL and Redis of its own, initialised and started."""
    with node_stack(name, log=log, tmp=tmp, env=env) as (node, _db):
        node.manage("kwsinit", "--admin=admin", f"--admin-password={ADMIN_PASSWORD}", *init_args)
        node.start()
        node.wait_ready()
        yield node


class PeerLinkProxy:
    """A fault-injecting HTTP proxy on the link between the two servers.

    Each server reaches its peer through one of these. While ``cut``, requests of
    the peer API (``/api/peer/...``) are dropped (the connection closes unanswered),
    as when the network between the servers fails; devices still get through to
    both servers, as in a split brain.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n" not in head and len(head) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if self.cut and path.startswith(b"/api/peer/"):
                return  # the link is down: no answer
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                return
            with upstream:
                upstream.sendall(head)
                done = threading.Event()

                def pipe(src: socket.socket, dst: socket.socket) -> None:
                    try:
                        while data := src.recv(65536):
                            dst.sendall(data)
                    except OSError:
                        pass
                    done.set()

                threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
                pipe(client, upstream)
                done.wait(10)

    def close(self) -> None:
        self._closed = True
        self.server.close()


@dataclass
class Pair:
    master: Node
    backup: Node
    master_db: NodeDB
    backup_db: NodeDB
    log: LineLog

    def wait_paired(self, timeout: float = 30) -> None:
        """Both nodes in phase normal and the backup caught up with the master's log."""
        wait_until(
            lambda: self.master_db.phase() == "normal" and self.backup_db.phase() == "normal",
            timeout=timeout,
            what="both nodes in phase normal",
        )
        wait_until(self.in_sync, timeout=timeout, what="the backup to apply the master's log")

    def in_sync(self) -> bool:
        head = self.master_db.value("select seq from core_changeloghead where id = 1") or 0
        position = self.backup_db.value(
            "select position from redundancy_replicationstate where id = 1"
        )
        return position is not None and position >= head


@contextmanager
def pair_cluster(tmp: Path, log: LineLog, *, users: int = 40, failover_time: int = 2,
                 master_env=None, backup_env=None, backup_init=(),
                 licensed_users: int = 500, backup_licensed_users: int | None = None,
                 peer_proxies: list[PeerLinkProxy] | None = None, embedded: bool = False,
                 ) -> Iterator[Pair]:  # fmt: skip
    """A master and a backup, each on its own PostgreSQL and Redis, licensed, paired, started.

    Each server gets its own ARI and the codes its role needs from a vendor key
    made for this cluster: the redundancy license and a user license
    (``backup_licensed_users`` gives the backup another user count). With
    ``peer_proxies`` (an empty list to fill) each server reaches the other through a
    PeerLinkProxy, so a test can cut the link between them. ``embedded``: both on the
    embedded default (SQLite and the filesystem broker each) instead.
    """
    stack_of = embedded_stack if embedded else node_stack
    vendor = Vendor.create()
    license_env = {"KWS_LICENSE_PUBLIC_KEY": vendor.public_key}
    master_ari = ari_generate()
    backup_ari = ari_generate(avoid={master_ari})
    with ExitStack() as stack:
        master, master_db = stack.enter_context(
            stack_of("master", log=log, tmp=tmp, env={**FAST, **license_env, **(master_env or {})})
        )
        backup, backup_db = stack.enter_context(
            stack_of("backup", log=log, tmp=tmp, env={**FAST, **license_env, **(backup_env or {})})
        )
        common = [f"--set=redundancy.secret={SECRET}", f"--set=redundancy.failover_time={failover_time}",
                  "--admin=admin", f"--admin-password={ADMIN_PASSWORD}"]  # fmt: skip
        master_peer, backup_peer = backup.port, master.port
        if peer_proxies is not None:
            peer_proxies.extend([PeerLinkProxy(backup.port), PeerLinkProxy(master.port)])
            stack.callback(lambda: [proxy.close() for proxy in peer_proxies])
            master_peer, backup_peer = peer_proxies[0].port, peer_proxies[1].port
        master_codes = vendor.server_codes(ari=master_ari, mode="master", users=licensed_users)
        backup_codes = vendor.server_codes(
            ari=backup_ari, mode="slave",
            users=licensed_users if backup_licensed_users is None else backup_licensed_users,
        )  # fmt: skip
        master.manage("kwsinit", "--set=redundancy.mode=master", f"--set=system.ari={master_ari}",
                      f"--set=redundancy.peer=127.0.0.1:{master_peer}", *common,
                      *[f"--license={c}" for c in master_codes])  # fmt: skip
        master.manage("kwsdemo", f"--users={users}")
        backup.manage("kwsinit", "--set=redundancy.mode=slave", f"--set=system.ari={backup_ari}",
                      f"--set=redundancy.peer=127.0.0.1:{backup_peer}", *common, *backup_init,
                      *[f"--license={c}" for c in backup_codes])  # fmt: skip
        for node in (master, backup):
            node.start()
        for node in (master, backup):
            node.wait_ready()
        yield Pair(master, backup, master_db, backup_db, log)
