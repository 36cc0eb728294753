#!/usr/bin/env python
"""Soak run of the embedded demo: two nodes on SQLite and the filesystem broker for
``--minutes``, with the engine's task rate raised (``--heartbeat``, default 0.1 s: ten
times the default), optionally with the broker tearing every N-th message
(``--torn-every``). Counts what a newcomer would see fail: processes that exited
(the supervisor's lines), unrecoverable worker errors, torn messages set aside, and
whether both GUIs still answer at the end.

Prints one JSON line and one summary line.

    .venv/bin/python bench/soak.py --minutes 30
    .venv/bin/python bench/soak.py --minutes 5 --torn-every 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--torn-every", type=int, default=0)
    parser.add_argument("--master-port", type=int, default=8100)
    parser.add_argument("--backup-port", type=int, default=8101)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="kws-soak-"))
    env = {**os.environ, "KWS_HEARTBEAT_INTERVAL": str(args.heartbeat),
           "KWS_DETECTION_WINDOW": str(args.window), "KWS_LOG_LEVEL": "WARNING",
           "KWS_BROKER_TORN_EVERY": str(args.torn_every), "KWS_DATABASE_URL": "",
           "KWS_BROKER_URL": ""}  # fmt: skip
    demo = subprocess.Popen(
        [sys.executable, "-m", "kws_admin.demo", f"--data-dir={data}",
         f"--master-port={args.master_port}", f"--backup-port={args.backup_port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    counts = {"exited": 0, "unrecoverable": 0, "lines": 0}
    exits: list[str] = []

    def pump() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            counts["lines"] += 1
            if "/supervisor]" in line and ("exited with" in line or "killed by" in line):
                counts["exited"] += 1
                exits.append(line.strip()[:200])
            if re.search(r"Unrecoverable error", line):
                counts["unrecoverable"] += 1

    threading.Thread(target=pump, daemon=True).start()
    started = time.monotonic()
    ready = None
    try:
        while time.monotonic() - started < 120:
            if answers(args.master_port) and answers(args.backup_port):
                ready = time.monotonic() - started
                break
            time.sleep(1)
        end = started + (ready or 0) + args.minutes * 60
        down = 0
        while time.monotonic() < end and demo.poll() is None:
            time.sleep(10)
            if not (answers(args.master_port) and answers(args.backup_port)):
                down += 1
        alive = demo.poll() is None and answers(args.master_port) and answers(args.backup_port)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    rejected = sum(
        len(list((data / node / "broker" / "rejected").glob("*")))
        for node in ("master", "backup")
        if (data / node / "broker" / "rejected").exists()
    )
    result = {
        "minutes": args.minutes, "heartbeat_s": args.heartbeat, "torn_every": args.torn_every,
        "ready_s": round(ready, 1) if ready is not None else None,
        "processes_exited": counts["exited"], "unrecoverable_errors": counts["unrecoverable"],
        "torn_set_aside": rejected, "gui_checks_failed": down, "alive_at_end": alive,
        "exits": exits[:10],
    }  # fmt: skip
    print(json.dumps(result))
    print(
        f"soak {args.minutes:g} min at a {args.heartbeat:g} s beat"
        f"{f', every {args.torn_every}th message torn' if args.torn_every else ''}: "
        f"{counts['exited']} processes exited, {counts['unrecoverable']} unrecoverable errors, "
        f"{rejected} torn messages set aside, both GUIs answering at the end: {alive}"
    )
    return 0 if alive and not counts["unrecoverable"] else 1


if __name__ == "__main__":
    sys.exit(main())
