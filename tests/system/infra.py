"""Real clusters for system tests and benchmarks: per-node PostgreSQL databases and
Redis servers, and node processes started through kws_admin.cluster."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from core.assignment import Assignment, other_slot
from kws_admin.cluster import ROOT, Node, stop_all
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


class RedisServer:
    """A Redis server of its own on a free loopback port, which a test can stop (as a
    crash would) and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="kws-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _connects(self.port), timeout=10, interval=0.05, what="redis")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server of its own on a free loopback port; yields its URL."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


PG_BIN = (
    Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
    if Path("/usr/lib/postgresql").exists()
    else Path("/usr/bin")
)


class PostgresServer:
    """A PostgreSQL server of its own (initdb into a temporary folder, run as the
    postgres user when we are root), which a test can stop and start again: a node
    whose database is lost. Its database ``kws`` belongs to the role ``kws``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kws-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgres://kws:kws@127.0.0.1:{self.port}/kws"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        for sql in ("CREATE ROLE kws LOGIN CREATEDB PASSWORD 'kws'",
                    "CREATE DATABASE kws OWNER kws"):  # fmt: skip
            self._run(str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.port),
                      "-U", "postgres", "-d", "postgres", "-c", sql)  # fmt: skip

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                  str(self.dir / "log"), "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1",
                  "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` drops every connection at once, as a crash."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("fast")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _migrations_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def _migrated_template() -> str:
    """The name of a database migrated to this checkout's migrations, made once (under
    an advisory lock, for parallel test processes) and copied for each node: a node's
    kwsinit then finds nothing left to migrate. Migrations make no per-node data (the
    node's identity is made on first use), so every copy is a fresh node's database."""
    name = f"kws_template_{_migrations_digest()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(738421)")
        try:
            done = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (name,)
            ).fetchone()
            if not done:
                for (old,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'kws_template_%%'"
                ).fetchall():
                    conn.execute(f'ALTER DATABASE "{old}" WITH IS_TEMPLATE false')
                    conn.execute(f'DROP DATABASE "{old}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
                env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kws_admin.settings",
                       "KWS_DATABASE_URL": f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
                       "KWS_DATA_DIR": tempfile.mkdtemp(prefix="kws-template-")}  # fmt: skip
                subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
                               cwd=ROOT, env=env, check=True, timeout=300)  # fmt: skip
                conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true')
        finally:
            conn.execute("SELECT pg_advisory_unlock(738421)")
    return name


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database of its own, already migrated; yields its URL and drops
    it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    template = _migrated_template()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
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
        self.times: list[float] = []  # when each line arrived (time.time())

    def __call__(self, line: str) -> None:
        self.times.append(time.time())
        self.lines.append(line)

    def first_since(self, since: float, *parts: str) -> float | None:
        """When the first line that arrived after ``since`` and holds every one of
        ``parts`` arrived, or None."""
        for at, line in zip(list(self.times), list(self.lines), strict=False):
            if at >= since and all(part in line for part in parts):
                return at
        return None

    def dump(self, last: int = 120) -> str:
        return "\n".join(self.lines[-last:])


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """User and system CPU seconds of process ``root`` (all its threads) and of every process
    under it (Kamailio's children), from /proc: the benchmarks' CPU figures."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += stats.get(pid, (0, 0.0))[1]
        frontier.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return total


@dataclass
class NodeDB:
    """Reads a node's own database directly, as an observer outside the node: PostgreSQL
    (``postgresql://...``), or the embedded default's SQLite file (``sqlite:PATH``)."""

    url: str
    # The node's own servers, when the test started them (node_stack(own_servers=True)).
    postgres: Any = None
    redis: Any = None
    # One connection per thread, kept: tests poll several times a second, and a new
    # PostgreSQL connection per reading (a backend process each) loaded the machine.
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

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
        try:
            return self._pg().execute(sql, params).fetchall()
        except psycopg.OperationalError:  # the server restarted, or the database is away
            self.close()
            return self._pg().execute(sql, params).fetchall()

    def _pg(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return conn

    def close(self) -> None:
        """Close this thread's connection (a database about to be dropped)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

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
        """How many users the master (M) and the backup (S) handle, as this node's
        assignment says (the NODE column of its Users list)."""
        homes = dict(self.rows("select home, count(*) from users_dectuser group by home"))
        mode = self.config("redundancy.mode") or "single"
        row = self.rows("select slot, assignment from core_nodestate where id = 1")
        slot, raw = row[0] if row else ("", "{}")
        assignment = Assignment.from_dict(json.loads(raw) if isinstance(raw, str) else raw)
        if mode == "single" or not slot or assignment is None:
            counts = {"M": sum(homes.values())}
        else:
            master_slot = slot if mode == "master" else other_slot(slot)
            counts = {"M": 0, "S": 0}
            for home, n in homes.items():
                owner = assignment.owner(home)
                counts["M" if owner == master_slot else "S"] += n
        return {letter: n for letter, n in counts.items() if n}

    def registering(self) -> str:
        """The homes whose users this node registers now, as its engine last decided."""
        return self.value("select registering from core_nodestate where id = 1") or ""

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
               env: dict[str, str] | None = None,
               own_servers: bool = False) -> Iterator[tuple[Node, NodeDB]]:  # fmt: skip
    """A node's own PostgreSQL database and Redis server, and the node (not started).
    ``own_servers``: a PostgreSQL server of its own too, and both servers on the NodeDB
    (``postgres``, ``redis``) so a test can stop and start them."""
    with ExitStack() as stack:
        postgres = None
        if own_servers:
            postgres = PostgresServer()
            stack.callback(postgres.close)
            postgres.init()
            db_url = postgres.url
        else:
            db_url = stack.enter_context(pg_database(f"kws_{name}"))
        redis = RedisServer()
        stack.callback(redis.close)
        redis.start()
        node = Node(
            name,
            port or free_port(),
            tmp / name,
            env={"KWS_DATABASE_URL": db_url, "KWS_BROKER_URL": redis.url, **(env or {})},
            output=log,
        )
        db = NodeDB(db_url.replace("postgres://", "postgresql://"))
        db.postgres, db.redis = postgres, redis
        try:
            yield node, db
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
    both servers, as in a split brain. With ``reflect_to`` a port, requests go there
    instead (back to the server that sent them: a reflection attack). Every byte that
    passes is kept in ``recorded`` (a capture of the link).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.reflect_to: int | None = None
        self.recorded = bytearray()
        self._record_lock = threading.Lock()
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
            port = self.reflect_to or self.target_port
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                return
            with upstream:
                self._record(head)
                upstream.sendall(head)
                done = threading.Event()

                def pipe(src: socket.socket, dst: socket.socket) -> None:
                    try:
                        while data := src.recv(65536):
                            self._record(data)
                            dst.sendall(data)
                    except OSError:
                        pass
                    done.set()

                threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
                pipe(client, upstream)
                done.wait(10)

    def _record(self, data: bytes) -> None:
        with self._record_lock:
            if len(self.recorded) < 64 * 1024 * 1024:
                self.recorded += data

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

    def owners(self) -> dict[str, Any]:
        """What each node holds: its assignment, the homes it registers, and the users
        it records as registered with the PBX (by id)."""
        found: dict[str, Any] = {}
        for name, db in (("master", self.master_db), ("backup", self.backup_db)):
            row = db.rows("select assignment, registering from core_nodestate where id = 1")
            raw, registering = row[0] if row else ("{}", "")
            found[name] = {
                "assignment": json.loads(raw) if isinstance(raw, str) else raw,
                "registering": registering or "",
                "registered": {r[0] for r in db.rows(
                    "select user_id from users_sipregistration where state = 'registered'")},
            }  # fmt: skip
        return found

    def homes(self) -> dict[int, str]:
        """Every user's home (from the master's database, or the backup's if it is down)."""
        try:
            return dict(self.master_db.rows("select id, home from users_dectuser"))
        except psycopg.OperationalError:
            return dict(self.backup_db.rows("select id, home from users_dectuser"))

    def registered_by_owner(self) -> bool:
        """Converged: both nodes know the same assignment, their registering homes split
        every user between them, and each records exactly its own users as registered."""
        try:
            owners, homes = self.owners(), self.homes()
        except Exception:  # a database that is down: not converged
            return False
        m, b = owners["master"], owners["backup"]
        if m["assignment"] != b["assignment"] or not m["assignment"]:
            return False
        if set(m["registering"]) & set(b["registering"]):
            return False
        if set(m["registering"]) | set(b["registering"]) != {"A", "B"}:
            return False
        for side in (m, b):
            own = {pk for pk, home in homes.items() if home in side["registering"]}
            if side["registered"] != own:
                return False
        return True

    def registered_twice(self) -> set[int]:
        """Users both nodes record as registered with the PBX right now."""
        owners = self.owners()
        return owners["master"]["registered"] & owners["backup"]["registered"]

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
                 own_servers: bool = False) -> Iterator[Pair]:  # fmt: skip
    """A master and a backup, each on its own PostgreSQL and Redis, licensed, paired, started.

    Each server gets its own ARI and the codes its role needs from a vendor key
    made for this cluster: the redundancy license and a user license
    (``backup_licensed_users`` gives the backup another user count). With
    ``peer_proxies`` (an empty list to fill) each server reaches the other through a
    PeerLinkProxy, so a test can cut the link between them. ``embedded``: both on the
    embedded default (SQLite and the filesystem broker each) instead.
    """
    stack_of = (
        embedded_stack if embedded else functools.partial(node_stack, own_servers=own_servers)
    )
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

        def init_master() -> None:
            master.manage("kwsinit", "--set=redundancy.mode=master",
                          f"--set=system.ari={master_ari}",
                          f"--set=redundancy.peer=127.0.0.1:{master_peer}", *common,
                          *[f"--license={c}" for c in master_codes])  # fmt: skip
            master.manage("kwsdemo", f"--users={users}")

        def init_backup() -> None:
            backup.manage("kwsinit", "--set=redundancy.mode=slave",
                          f"--set=system.ari={backup_ari}",
                          f"--set=redundancy.peer=127.0.0.1:{backup_peer}", *common,
                          *backup_init, *[f"--license={c}" for c in backup_codes])  # fmt: skip

        # Two databases, two processes: both servers are prepared at once.
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(init_master), pool.submit(init_backup)]:
                done.result()
        # Both stop at once at the end (each node's own stop then finds nothing to do).
        stack.callback(stop_all, [master, backup])
        for node in (master, backup):
            node.start()
        for node in (master, backup):
            node.wait_ready()
        yield Pair(master, backup, master_db, backup_db, log)
