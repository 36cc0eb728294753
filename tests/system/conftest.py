"""Real clusters for system tests: per-node PostgreSQL databases and Redis servers,
and node processes started through kws_admin.cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from kws_admin.cluster import Node
from tests.system.http import Browser

PG_ADMIN_URL = os.environ.get("KWS_TEST_PG_URL", "postgresql://kws:kws@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "initial-Passw0rd"
NEW_PASSWORD = "a-changed-Passw0rd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


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

    def dump(self, last: int = 80) -> str:
        return "\n".join(self.lines[-last:])


@contextmanager
def started_node(name: str, *, log: LineLog, tmp: Path, init_args: list[str],
                 env: dict[str, str] | None = None) -> Iterator[Node]:  # fmt: skip
    """A node on PostgreSQL and Redis of its own, initialised and started."""
    with pg_database(f"kws_{name}") as db_url, redis_server() as broker_url:
        node = Node(
            name,
            free_port(),
            tmp / name,
            env={"KWS_DATABASE_URL": db_url, "KWS_BROKER_URL": broker_url, **(env or {})},
            output=log,
        )
        node.manage("kwsinit", "--admin=admin", f"--admin-password={ADMIN_PASSWORD}", *init_args)
        node.start()
        try:
            node.wait_ready()
            yield node
        finally:
            node.stop()


@pytest.fixture
def cluster_log(request) -> Iterator[LineLog]:
    log = LineLog()
    yield log
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(log.dump())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def logged_in(node: Node) -> Browser:
    """An HTTP session logged in as admin, past the first-login password change."""
    browser = Browser(node.url)
    browser.login("admin", ADMIN_PASSWORD, new_password=NEW_PASSWORD)
    return browser
