"""Start and stop the processes of KWS nodes: the demo, the system tests and the benchmarks.

A node is four processes (web, worker, beat, and sip: the long-running SIP
registration client) sharing one data folder and environment. Their output is
passed through line by line; a line that does not already name its node and
process (a traceback, a library's own print) gets the
``[node/role pid]`` prefix, so merged output can always be read.

The launcher supervises them: a process that exits without being asked to is started
again, after a backoff that grows while it keeps dying (``RESTART_BACKOFF``), and the
node's event log says so ("worker of master exited with 1, restarted"). A node stops
only when asked (``stop``, or ``kill`` for a crash of the whole node).
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
# Seconds before a crashed process is started again: the first restart at once, then
# doubling while it dies again within RESTART_STABLE seconds of its start.
RESTART_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
RESTART_STABLE = 60.0


def _commands(port: int, host: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "uvicorn", "kws_admin.asgi:application",
            "--host", host, "--port", str(port), "--no-access-log",
            "--timeout-graceful-shutdown", "3", "--lifespan", "on",
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
    # Restart crashed processes (the demo, the tests and the benchmarks all do).
    supervise: bool = True
    restarts: dict[str, int] = field(default_factory=dict)
    _started_at: dict[str, float] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        if role == "web":  # keep-alive datagrams on the web server's own address
            env["KWS_DEVICE_UDP"] = f"{self.host}:{self.port}"
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
        self._stopping.clear()
        for role in roles:
            self._spawn(role)

    def _spawn(self, role: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            _commands(self.port, self.host)[role],
            cwd=ROOT,
            env=self.environ(role),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
        )
        with self._lock:
            self.processes[role] = proc
            self._started_at[role] = time.monotonic()
        threading.Thread(target=self._pump, args=(role, proc), daemon=True).start()
        if self.supervise:
            threading.Thread(target=self._watch, args=(role, proc), daemon=True).start()
        return proc

    def _watch(self, role: str, proc: subprocess.Popen) -> None:
        """Wait for ``proc`` to exit; unless the node is stopping, start it again."""
        code = proc.wait()
        if self._stopping.is_set():
            return
        with self._lock:
            if self.processes.get(role) is not proc:
                return  # replaced meanwhile
            ran = time.monotonic() - self._started_at.get(role, 0.0)
            streak = 0 if ran > RESTART_STABLE else self.restarts.get(role, 0)
            self.restarts[role] = streak + 1
        delay = RESTART_BACKOFF[min(streak, len(RESTART_BACKOFF) - 1)]
        how = f"exited with {code}" if code >= 0 else f"was killed by signal {-code}"
        self.output(f"[{self.name}/supervisor] {role} {how} after {ran:.1f} s; "
                    f"restarting in {delay:g} s")  # fmt: skip
        if self._stopping.wait(delay):
            return
        self._spawn(role)
        self._record(
            f"The {role} process of {self.name} {how} after {ran:.0f} s; the supervisor "
            f"restarted it (restart {streak + 1}).",
            severity="warning",
        )

    def _record(self, message: str, *, severity: str) -> None:
        """Write the node's event (a command of its own, retried while the node's
        database cannot take it), without holding up the supervisor."""

        def write() -> None:
            for attempt in range(30):
                if self._stopping.is_set():
                    return
                result = self.manage(
                    "kwsevent", "--kind=process", f"--severity={severity}", message, check=False
                )
                if result.returncode == 0:
                    return
                self._stopping.wait(min(10.0, 1.0 + attempt))
            self.output(f"[{self.name}/supervisor] could not record: {message}")

        threading.Thread(target=write, daemon=True).start()

    def kill_process(self, role: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to one process (and its children) of the node, as a crash of that
        process alone would; the supervisor restarts it. Returns its pid."""
        proc = self.processes[role]
        _signal_group(proc, sig)
        return proc.pid

    def pause(self) -> None:
        """SIGSTOP every process of the node: it stops answering but keeps its state."""
        for proc in list(self.processes.values()):
            _signal_group(proc, signal.SIGSTOP)

    def resume(self) -> None:
        for proc in list(self.processes.values()):
            _signal_group(proc, signal.SIGCONT)

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
            for role, proc in list(self.processes.items()):
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
        self._stopping.set()
        for proc in list(self.processes.values()):
            _signal_group(proc, signal.SIGKILL)
        for proc in list(self.processes.values()):
            proc.wait()
        self.processes.clear()


def stop_all(nodes: list[Node], *, timeout: float = 10.0) -> None:
    """Stop the processes of several nodes at once: SIGTERM to all, then SIGKILL to
    whatever still runs after ``timeout`` seconds."""
    for node in nodes:
        node._stopping.set()
    procs = [proc for node in nodes for proc in list(node.processes.values())]
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
