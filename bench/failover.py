#!/usr/bin/env python
"""Failover benchmark: kill -9 the master and time the backup's takeover.

Starts a paired master and backup (each on its own PostgreSQL database and
Redis server, as in production), gives the master ``--users`` users, waits
until the backup has replicated them and the pair has split them 50/50, then
kills every process of the master with SIGKILL and measures, from the kill:

- ``detection_s``: until the backup recorded the peer as lost;
- ``failover_start_s``: until the failover started (detection + failover time);
- ``total_s``: until every user of the master is handled by the backup and,
  with the PBX (default), registered with it by the backup (Kamailio's own
  location table shows every user's contact from the backup);
- ``basestations_s``: until every simulated base station (``--basestations``)
  keeps alive with the backup, as the backup's own records show;
  ``basestations_moved`` is how many the backup then has attached.

Prints one JSON line (keys detection_s, failover_start_s, total_s, users_moved,
basestations_moved, basestations_s, plus the settings used) and one summary line.
Needs PostgreSQL, Redis and Kamailio installed (``make services``); stops
everything it started.

    .venv/bin/python bench/failover.py [--users 4000] [--failover-time 0] [--basestations 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

from basestations.sim import Simulation  # noqa: E402
from tests.system.infra import LineLog, pair_cluster, wait_until  # noqa: E402
from users.pbx import Kamailio  # noqa: E402

DEVICE_SECRET = "bench-device-secret-0123"


def registered(db) -> int:
    return db.value("select count(*) from users_sipregistration where state = 'registered'") or 0


def attached(db) -> int:
    """Base stations keeping alive with this node now (its own runtime rows)."""
    return db.value("select count(*) from basestations_basestationlink "
                    "where last_keepalive_at > now() - interval '3 seconds'") or 0  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--failover-time", type=int, default=0)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument("--window", type=float, default=2.0, help="detection window (s)")
    parser.add_argument("--verbose", action="store_true", help="print the nodes' logs")
    parser.add_argument("--no-pbx", action="store_true", help="leave SIP registration out")
    parser.add_argument("--sip-rate", type=int, default=2000, help="sip.rate for the run")
    parser.add_argument("--basestations", type=int, default=100, help="simulated base stations")
    args = parser.parse_args()

    env = {"KWS_HEARTBEAT_INTERVAL": str(args.heartbeat), "KWS_DETECTION_WINDOW": str(args.window),
           "KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}  # fmt: skip
    log = LineLog()
    if args.verbose:
        log = print  # type: ignore[assignment]
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kws-bench-"))
        pbx = None if args.no_pbx else stack.enter_context(Kamailio())
        pair = stack.enter_context(pair_cluster(
            Path(tmp), log, users=args.users, failover_time=args.failover_time,
            master_env=env, backup_env=env, licensed_users=max(500, args.users),
        ))  # fmt: skip
        pair.wait_paired(timeout=60)
        half = args.users // 2
        wait_until(
            lambda: pair.backup_db.users_by_node() == {"M": half, "S": args.users - half},
            timeout=120,
            what="the backup to replicate the users and their 50/50 assignment",
        )
        if pbx is not None:
            rows = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
            pbx.add_subscribers([(user, "127.0.0.1", password) for user, password in rows])
            pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}",
                               f"sip.rate={args.sip_rate}")  # fmt: skip
            both = lambda: registered(pair.master_db) + registered(pair.backup_db)  # noqa: E731
            wait_until(lambda: both() == args.users,
                       timeout=300, what="every user registered by its node")  # fmt: skip
        sim = None
        if args.basestations:
            pair.master.manage("kwsconfig", "set", f"system.device_secret={DEVICE_SECRET}")
            pair.master.manage("kwssim", "--provision", "--seconds=0",
                               f"--basestations={args.basestations}", "--media=0")  # fmt: skip
            pair.wait_paired(timeout=60)
            master_addr = f"127.0.0.1:{pair.master.port}"
            backup_addr = f"127.0.0.1:{pair.backup.port}"
            sim = stack.enter_context(Simulation(server=master_addr, secret=DEVICE_SECRET,
                                                 basestations=args.basestations, media=0,
                                                 handsets=0, seed=1))  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master_addr: args.basestations},
                       timeout=120, what="every base station on the master")  # fmt: skip
        time.sleep(2 * args.heartbeat)  # a steady state, not the tail of the join

        killed_at = time.time()
        pair.master.kill()
        budget = args.window + args.failover_time + 300
        lost = wait_until(lambda: pair.backup_db.event_since("peer_lost", killed_at),
                          timeout=budget, what="peer lost")  # fmt: skip
        started = wait_until(lambda: pair.backup_db.event_since("failover_started", killed_at),
                             timeout=budget, what="failover started")  # fmt: skip
        # Poll every condition together, so each time is its own and not the sum.
        checks = {"handled": lambda: pair.backup_db.users_by_node() == {"S": args.users}}
        if pbx is not None:
            checks["registered"] = lambda: registered(pair.backup_db) == args.users
        if sim is not None:
            checks["devices"] = lambda: (
                sim.attached_counts() == {backup_addr: args.basestations}
                and attached(pair.backup_db) == args.basestations
            )
        reached: dict[str, float] = {}
        deadline = time.monotonic() + budget
        while len(reached) < len(checks):
            for name, check in checks.items():
                if name not in reached and check():
                    reached[name] = time.time()
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; reached only {sorted(reached)}")
            time.sleep(0.02)
        handled_at = reached["handled"]
        registered_at = reached.get("registered")
        devices_at = reached.get("devices")
        finished = wait_until(lambda: pair.backup_db.event_since("failover_finished", killed_at),
                              timeout=30, what="failover finished")  # fmt: skip
        done_at = registered_at or max(handled_at, finished[0])
        basestations_moved = attached(pair.backup_db) if sim is not None else 0

    moved = int(finished[1].split("Failover finished: ")[1].split(" users")[0])
    result = {
        "detection_s": round(lost[0] - killed_at, 3),
        "failover_start_s": round(started[0] - killed_at, 3),
        "total_s": round(done_at - killed_at, 3),
        "handled_s": round(max(handled_at, finished[0]) - killed_at, 3),
        "registered_s": round(registered_at - killed_at, 3) if registered_at else None,
        "users_moved": moved,
        "basestations_moved": basestations_moved,
        "basestations_s": round(devices_at - killed_at, 3) if devices_at else None,
        "users": args.users,
        "failover_time_s": args.failover_time,
        "heartbeat_s": args.heartbeat,
        "detection_window_s": args.window,
        "pbx": pbx is not None,
        "sip_rate": args.sip_rate if pbx is not None else None,
    }
    print(json.dumps(result))
    print(
        f"failover of {moved} users: detected after {result['detection_s']:.2f} s, started after "
        f"{result['failover_start_s']:.2f} s, all handled"
        f"{' and registered with Kamailio' if pbx is not None else ''} after "
        f"{result['total_s']:.2f} s (heartbeat {args.heartbeat:g} s, window {args.window:g} s, "
        f"failover time {args.failover_time} s)"
        + (
            f"; {basestations_moved} base stations on the backup after "
            f"{result['basestations_s']:.2f} s"
            if result["basestations_s"] is not None
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
