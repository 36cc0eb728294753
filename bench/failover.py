#!/usr/bin/env python
"""Failover benchmark: kill -9 the master and time the backup's takeover.

Starts a paired master and backup (each on its own PostgreSQL database and
Redis server, as in production), gives the master ``--users`` users, waits
until the backup has replicated them and the pair has split them 50/50, then
kills every process of the master with SIGKILL and measures, from the kill:

- ``detection_s``: until the backup recorded the peer as lost;
- ``failover_start_s``: until the failover started (detection + failover time);
- ``total_s``: until every user of the master is handled by the backup.

Prints one JSON line (keys detection_s, failover_start_s, total_s, users_moved,
plus the settings used) and one summary line. Needs PostgreSQL and Redis
installed (``make services``); stops everything it started.

    .venv/bin/python bench/failover.py [--users 4000] [--failover-time 0] [--heartbeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

from tests.system.infra import LineLog, pair_cluster, wait_until  # noqa: E402


def event_time(db, kind: str, since: float) -> tuple[float, str] | None:
    for created, message in db.events(kind):
        if created.timestamp() >= since:
            return created.timestamp(), message
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--failover-time", type=int, default=0)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument("--window", type=float, default=2.0, help="detection window (s)")
    parser.add_argument("--verbose", action="store_true", help="print the nodes' logs")
    args = parser.parse_args()

    env = {"KWS_HEARTBEAT_INTERVAL": str(args.heartbeat), "KWS_DETECTION_WINDOW": str(args.window),
           "KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}  # fmt: skip
    log = LineLog()
    if args.verbose:
        log = print  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp, pair_cluster(
        Path(tmp), log, users=args.users, failover_time=args.failover_time,
        master_env=env, backup_env=env,
    ) as pair:  # fmt: skip
        pair.wait_paired(timeout=60)
        half = args.users // 2
        wait_until(
            lambda: pair.backup_db.users_by_node() == {"M": half, "S": args.users - half},
            timeout=120,
            what="the backup to replicate the users and their 50/50 assignment",
        )
        time.sleep(2 * args.heartbeat)  # a steady state, not the tail of the join

        killed_at = time.time()
        pair.master.kill()
        budget = args.window + args.failover_time + 120
        lost = wait_until(lambda: event_time(pair.backup_db, "peer_lost", killed_at),
                          timeout=budget, what="peer lost")  # fmt: skip
        started = wait_until(lambda: event_time(pair.backup_db, "failover_started", killed_at),
                             timeout=budget, what="failover started")  # fmt: skip
        wait_until(lambda: pair.backup_db.users_by_node() == {"S": args.users},
                   timeout=budget, interval=0.02, what="every user on the backup")  # fmt: skip
        done_at = time.time()
        finished = wait_until(lambda: event_time(pair.backup_db, "failover_finished", killed_at),
                              timeout=30, what="failover finished")  # fmt: skip

    moved = int(finished[1].split("Failover finished: ")[1].split(" users")[0])
    result = {
        "detection_s": round(lost[0] - killed_at, 3),
        "failover_start_s": round(started[0] - killed_at, 3),
        "total_s": round(max(done_at, finished[0]) - killed_at, 3),
        "users_moved": moved,
        "users": args.users,
        "failover_time_s": args.failover_time,
        "heartbeat_s": args.heartbeat,
        "detection_window_s": args.window,
    }
    print(json.dumps(result))
    print(
        f"failover of {moved} users: detected after {result['detection_s']:.2f} s, started after "
        f"{result['failover_start_s']:.2f} s, all handled after {result['total_s']:.2f} s "
        f"(heartbeat {args.heartbeat:g} s, window {args.window:g} s, failover time {args.failover_time} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
