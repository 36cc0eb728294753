"""Start and stop the processes of KWS nodes: the demo, the system tests and the benchmarks.

A node is four processes (web, worker, beat, and sip: the long-running SIP
registration client) sharing one data folder and environment. Their output is
passed through line by line; a line that does not already name its node and
process (a traceback, a library's own print) gets the
``[node/role pid]`` prefix, so merged output can always be read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("web", "worker", "beat", "sip")


def _commands(port: int, host: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "gunicorn", "kws_admin.wsgi",
            "--bind", f"{host}:{port}", "--workers", "2", "--threads", "4",
            "--graceful-timeout", "3", "--timeout", "60", "--no-control-socket",
        ],
        "worker": [
            python, "-m", "celery", "-A", "kws_admin", "worker",
            "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO", "--without-heartbeat",
            "--without-gossip", "--without-mingle",
        ],
        "beat": [python, "-m", "celery", "-A", "kws_admin", "beat", "--loglevel", "INFO"],
        "sip": [python, str(ROOT / "manage.py"), "kwssip"],
    }  # fmt: skip


@dataclass
class Node:
    """One node's processes. ``env`` adds KWS_* variables to the environment."""

    name: str
    port: int
    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    output: Callable[[str], None] = print
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environ(self, role: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KWS_NODE_NAME": self.name,
                "KWS_DATA_DIR": str(self.data_dir),
                "KWS_PROCESS_ROLE": role,
                "DJANGO_SETTINGS_MODULE": "kws_admin.settings",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a management command for this node and return its output."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.environ("cli"),
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result

    def start(self, roles: tuple[str, ...] = ROLES) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        commands = _commands(self.port, self.host)
        for role in roles:
            proc = subprocess.Popen(
                commands[role],
                cwd=ROOT,
                env=self.environ(role),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
            )
            self.processes[role] = proc
            threading.Thread(target=self._pump, args=(role, proc), daemon=True).start()

    def _pump(self, role: str, proc: subprocess.Popen) -> None:
        tag = f"[{self.name}/"
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if tag not in line[:60]:
                line = f"[{self.name}/{role} {proc.pid}] {line}"
            self.output(line)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the web server answers (the login page) or raise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for role, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name}/{role} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/login/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer on {self.url} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process, then SIGKILL what is still running after ``timeout``."""
        stop_all([self], timeout=timeout)

    def kill(self) -> None:
        """kill -9 every process of the node, as a crash or power loss would."""
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGKILL)
        for proc in self.processes.values():
            proc.wait()
        self.processes.clear()


def stop_all(nodes: list[Node], *, timeout: float = 10.0) -> None:
    """Stop the processes of several nodes at once: SIGTERM to all, then SIGKILL to
    whatever still runs after ``timeout`` seconds."""
    procs = [proc for node in nodes for proc in node.processes.values()]
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    for node in nodes:
        node.processes.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
