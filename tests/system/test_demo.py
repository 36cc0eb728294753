"""The README's first command on the embedded default: two paired nodes on SQLite and the
filesystem broker (no PostgreSQL or Redis), demo data, the users registered with the demo's
own registrar, ``kwsdemo failover`` and ``kwsdemo restore`` from another command line, and
Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kws_admin.cluster import ROOT
from tests.system.conftest import wait_until
from tests.system.http import Browser
from tests.system.infra import FAST, free_port

pytestmark = pytest.mark.system

NEW_PASSWORD = "a new demo password 42"


def descendants(root: int) -> list[int]:
    """The processes started by ``root``, at any depth (the nodes run in sessions of
    their own), and ``root`` itself while it runs."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root] if root in parents else []
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return found


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def command_lines(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return "\n".join(lines)


def header(page: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]+)<', page)
    return match.group(1) if match else ""


def kwsdemo(action: str, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """What a newcomer types in a second terminal (or the same one)."""
    return subprocess.run(
        [sys.executable, "manage.py", "kwsdemo", action, f"--demo-dir={data}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip


def test_make_demo_brings_up_a_paired_embedded_pair_and_ctrl_c_stops_it(tmp_path):
    data = tmp_path / "demo"
    master_port, backup_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWS_")}  # embedded default
    # The demo's own registrar (what a machine without Kamailio gets; users/pbx.py's
    # Kamailio is tested with the SIP client), and short heartbeats for the failover.
    demo = subprocess.Popen(
        [sys.executable, "-m", "kws_admin.demo", f"--data-dir={data}", "--users=40",
         f"--master-port={master_port}", f"--backup-port={backup_port}",
         "--basestations=2", "--media=1", "--handsets=2", "--pbx=registrar",
         "--failover-time=3"],
        cwd=ROOT, env={**env, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    try:
        wait_until(lambda: any("demo is running" in line for line in lines) or demo.poll(),
                   timeout=180, what="the demo to start")  # fmt: skip
        assert demo.poll() is None, "".join(lines[-40:])
        output = "".join(lines)
        password = re.search(r"log in as admin / (\S+)", output).group(1)

        # Embedded: each node has its SQLite database and its broker folder.
        for node in ("master", "backup"):
            assert (data / node / "db.sqlite3").exists()
        # Secrets reach the commands by file, never on a command line.
        pairing_secret = (data / "pairing_secret").read_text().strip()
        running = descendants(demo.pid)
        commands = command_lines(running)
        assert len(running) >= 9  # the demo, and web, worker, beat and sip of each node
        assert "manage.py" in commands or "uvicorn" in commands
        assert pairing_secret not in commands and password not in commands
        assert pairing_secret not in output

        master = Browser(f"http://127.0.0.1:{master_port}")
        master.login("admin", password, new_password=NEW_PASSWORD)
        wait_until(lambda: header(master.get("/partials/node-header/").text, "phase")
                   == "normal", timeout=60, what="the pair to form")  # fmt: skip
        backup = Browser(f"http://127.0.0.1:{backup_port}")

        def backup_in_sync() -> bool:
            # The master's own card: the backup acknowledged the whole change log, the
            # password change included. Only then try it: failed logins lock the account.
            found = re.search(r"change log at #(\d+); backup acknowledged #(\d+)",
                              master.get("/").text)  # fmt: skip
            return bool(found) and int(found.group(2)) >= int(found.group(1))

        wait_until(backup_in_sync, timeout=30, what="the backup to apply the new password")
        backup.login("admin", NEW_PASSWORD)  # the changed password, replicated
        wait_until(lambda: header(backup.get("/partials/node-header/").text, "phase")
                   == "normal", timeout=30, what="the backup to join")  # fmt: skip
        assert header(backup.get("/partials/node-header/").text, "mode") == "backup (slave)"

        def count(browser: Browser, query: str) -> int:
            page = browser.get(f"/users/?{query}").text
            return int(re.search(r"(\d+) of (\d+) users", page).group(1))

        def split(browser: Browser, node: str) -> int:
            return count(browser, f"node={node}")

        wait_until(lambda: split(backup, "M") + split(backup, "S") == 40 and split(backup, "S"),
                   timeout=30, what="the backup has the users, split between both")  # fmt: skip
        assert split(master, "M") == split(backup, "M") and 0 < split(master, "S") < 40
        wait_until(lambda: "2 base stations" in master.get("/").text, timeout=30,
                   what="the simulated base stations on the master")  # fmt: skip

        # The demo's registrar holds a binding of every user, each made by its own server;
        # each Users page shows them all registered (the peer's states come by heartbeat).
        assert "PBX: the demo's registrar" in output
        registered = "registration=registered"
        for browser in (master, backup):
            wait_until(lambda b=browser: count(b, registered) == 40, timeout=60,
                       what="every user registered with the demo's registrar")  # fmt: skip

        # kwsdemo failover kills the master: the backup takes over and registers every user.
        done = kwsdemo("failover", data, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "were killed" in done.stdout
        wait_until(lambda: header(backup.get("/partials/node-header/").text, "phase")
                   == "failover", timeout=60, what="the backup's failover")  # fmt: skip
        wait_until(lambda: count(backup, "node=S") == 40 and count(backup, registered) == 40,
                   timeout=60, what="the backup serves and registers every user")  # fmt: skip
        with pytest.raises(OSError):
            master.get("/")
        again = kwsdemo("failover", data, env)
        assert again.returncode != 0 and "already stopped" in again.stderr

        # kwsdemo restore: the master returns and takes its half of the users back.
        done = kwsdemo("restore", data, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "runs again" in done.stdout
        wait_until(lambda: header(master.get("/partials/node-header/").text, "phase")
                   == "normal" and 0 < split(master, "S") < 40, timeout=90,
                   what="the master back, the users split again")  # fmt: skip
        wait_until(lambda: count(master, registered) == 40, timeout=60,
                   what="every user registered again after the return")  # fmt: skip

        tags = ("[master/", "[backup/", "[devices]", "[demo]")
        untagged = [line for line in lines if line.strip() and not any(t in line for t in tags)
                    and not line.startswith(("KWS Admin demo is running", "  "))]  # fmt: skip
        assert not untagged, untagged[:10]
    finally:
        started = descendants(demo.pid)
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        stopped_at = time.monotonic()
        deadline = stopped_at + 8
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        demo.wait(timeout=5)
        left = alive(started)
        took = time.monotonic() - stopped_at
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after Ctrl-C: {command_lines(left)}"
    print(f"every demo process gone {took:.1f} s after Ctrl-C")
