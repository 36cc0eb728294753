#!/usr/bin/env python
"""Failover benchmark: kill -9 the master (or one of its processes, or pause it) and time
the backup's takeover and the pair's convergence once the master is back.

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
  keeps alive with the backup, as the devices see it (``basestations_answered_s``)
  and as the backup's own records show; ``basestations_moved`` is how many the
  backup then has attached;
- ``cpu_percent``: each part's share of one core from the kill until all of the
  above (the backup's processes, its Redis, Kamailio, this process with the simulated
  devices, and the whole machine).

Then the master returns (started again, or resumed) and, from then:

- ``converged_s``: until both servers agree on the assignment and each records
  exactly its own users as registered (with the PBX);
- ``users_moved_back``: how many users went back from the backup to the master
  (exactly the master's half, if nothing else moved).
- ``peer_lost_after_return``: how often either server declared the other lost
  meanwhile (goal: 0).

``--kill worker|beat|sip|web`` kills only that process of the master (its supervisor
restarts it): ``reregistered_s`` is then the time from the kill until every user is
registered again, and ``takeover`` whether the backup took over meanwhile.
``--pause S`` stops every process of the master with SIGSTOP for S seconds instead
(then SIGCONT): ``registered_twice_max`` is the most users both servers recorded as
registered at once after convergence (goal: 0).

Prints one JSON line (the figures and the settings used) and one summary line.
Needs PostgreSQL, Redis and Kamailio installed (``make services``); stops
everything it started.

    .venv/bin/python bench/failover.py [--users 4000] [--failover-time 0] [--basestations 100]
    .venv/bin/python bench/failover.py --kill sip     .venv/bin/python bench/failover.py --pause 6
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
from tests.system.infra import TICKS, LineLog, cpu_seconds, pair_cluster, wait_until  # noqa: E402
from users.pbx import Kamailio  # noqa: E402

DEVICE_SECRET = "bench-device-secret-0123"


def _sip_rate(text: str) -> str | int:
    return "auto" if text == "auto" else int(text)


def _rate_setting(args) -> list[str]:
    """``kwsconfig set`` arguments for --sip-rate: none for auto (the default)."""
    return [] if args.sip_rate == "auto" else [f"sip.rate={args.sip_rate}"]


def _reregistration_event(db, since: float) -> tuple[float, str] | None:
    for created, message in db.events("sip"):
        if created.timestamp() >= since and message.startswith("Failover re-registration"):
            return created.timestamp(), message
    return None


def registered(db) -> int:
    return db.value("select count(*) from users_sipregistration where state = 'registered'") or 0


def attached(db) -> int:
    """Base stations keeping alive with this node now (its own runtime rows)."""
    return db.value("select count(*) from basestations_basestationlink "
                    "where last_keepalive_at > now() - interval '3 seconds'") or 0  # fmt: skip


def cpu_parts(pair, pbx) -> dict[str, float]:
    """CPU seconds so far of each part of the machine the failover shares: the backup's
    processes, its Redis, PostgreSQL (every backend), Kamailio, and this process (the
    simulated devices and the polling)."""
    parts = {role: cpu_seconds(proc.pid) for role, proc in pair.backup.processes.items()}
    parts["redis"] = cpu_seconds(pair.backup_db.redis.proc.pid)
    if pbx is not None and pbx.process is not None:
        parts["kamailio"] = cpu_seconds(pbx.process.pid)
    parts["bench"] = time.process_time()
    # The whole machine (every core: at most 100 × the cores), PostgreSQL's backends among
    # it (they come and go, so they are not counted apart).
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # not idle, iowait
    parts["machine"] = busy / TICKS
    return parts


def cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Each part's share of one core (%) between two ``cpu_parts`` readings."""
    return {part: round(100 * (after[part] - before.get(part, 0.0)) / seconds)
            for part in after}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--failover-time", type=int, default=0)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument("--window", type=float, default=2.0, help="detection window (s)")
    parser.add_argument("--verbose", action="store_true", help="print the nodes' logs")
    parser.add_argument("--no-pbx", action="store_true", help="leave SIP registration out")
    parser.add_argument(
        "--sip-rate",
        type=_sip_rate,
        default="auto",
        help="sip.rate for the run; auto (the default) keeps the product's adaptive rate",
    )
    parser.add_argument(
        "--pbx-limit",
        type=int,
        default=0,
        metavar="N",
        help="Kamailio answers 503 above N REGISTERs per second (0: no limit)",
    )
    parser.add_argument("--basestations", type=int, default=100, help="simulated base stations")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--kill",
        choices=("node", "worker", "beat", "sip", "web"),
        default="node",
        help="kill -9 the whole master (default) or one of its processes",
    )
    how.add_argument(
        "--pause",
        type=float,
        default=0.0,
        metavar="S",
        help="SIGSTOP the master for S seconds instead of killing it",
    )
    args = parser.parse_args()
    if args.kill != "node" or args.pause:
        return part_failure(args)

    env = {"KWS_HEARTBEAT_INTERVAL": str(args.heartbeat), "KWS_DETECTION_WINDOW": str(args.window),
           "KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}  # fmt: skip
    log = LineLog()
    if args.verbose:
        log = print  # type: ignore[assignment]
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kws-bench-"))
        limit = {"REGISTER_LIMIT": args.pbx_limit} if args.pbx_limit else {}
        pbx = None if args.no_pbx else stack.enter_context(Kamailio(defines=limit))
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
                               *_rate_setting(args))  # fmt: skip
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
                       timeout=120, what=f"every base station on the master ({sim.states()}, "
                                         f"{sim.attached_counts()})")  # fmt: skip
        time.sleep(2 * args.heartbeat)  # a steady state, not the tail of the join

        cpu_before = cpu_parts(pair, pbx)
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
            # The devices' side (each keeps alive with the backup) and the backup's records.
            checks["devices_answered"] = lambda: (
                sim.attached_counts() == {backup_addr: args.basestations}
            )
            checks["devices"] = lambda: attached(pair.backup_db) == args.basestations
        reached: dict[str, float] = {}
        deadline = time.monotonic() + budget
        while len(reached) < len(checks):
            for name, check in checks.items():
                if name not in reached and check():
                    reached[name] = time.time()
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; reached only {sorted(reached)}")
            # 50 ms: the checks count thousands of rows in the backup's database, a load
            # on the node being measured (every 20 ms they took a tenth of a core).
            time.sleep(0.05)
        cpu = cpu_share(cpu_before, cpu_parts(pair, pbx), time.time() - killed_at)
        handled_at = reached["handled"]
        registered_at = reached.get("registered")
        devices_at = max(reached["devices"], reached["devices_answered"]) if sim else None
        finished = wait_until(lambda: pair.backup_db.event_since("failover_finished", killed_at),
                              timeout=30, what="failover finished")  # fmt: skip
        done_at = registered_at or max(handled_at, finished[0])
        reregistration = None
        if pbx is not None:  # the backup's own account of it: how long, at what rate
            reregistration = wait_until(
                lambda: _reregistration_event(pair.backup_db, killed_at),
                timeout=30,
                what="the re-registration's event",
            )[1]
        basestations_moved = attached(pair.backup_db) if sim is not None else 0
        back = returned(pair, pbx, lambda: (pair.master.start(), pair.master.wait_ready()))

    moved = int(finished[1].split("Failover finished: ")[1].split(" users")[0])
    result = {
        "detection_s": round(lost[0] - killed_at, 3),
        "failover_start_s": round(started[0] - killed_at, 3),
        "total_s": round(done_at - killed_at, 3),
        "handled_s": round(max(handled_at, finished[0]) - killed_at, 3),
        "registered_s": round(registered_at - killed_at, 3) if registered_at else None,
        "registered_after_detection_s": round(registered_at - lost[0], 3)
        if registered_at
        else None,
        "users_moved": moved,
        "basestations_moved": basestations_moved,
        "basestations_s": round(devices_at - killed_at, 3) if devices_at else None,
        "basestations_answered_s": round(reached["devices_answered"] - killed_at, 3)
        if devices_at
        else None,
        "users": args.users,
        "failover_time_s": args.failover_time,
        "heartbeat_s": args.heartbeat,
        "detection_window_s": args.window,
        "pbx": pbx is not None,
        "sip_rate": args.sip_rate if pbx is not None else None,
        "pbx_limit": args.pbx_limit or None,
        "reregistration_event": reregistration,
        "cpu_percent": cpu,
        **back,
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
        + (
            f"; registered {result['registered_after_detection_s']:.2f} s after the detection"
            f" at sip.rate={args.sip_rate}"
            if registered_at
            else ""
        )
        + (
            f"; the master back: converged after {back['converged_s']:.2f} s, "
            f"{back['users_moved_back']} users moved back"
            if back.get("converged_s") is not None
            else ""
        )
    )
    return 0


def holders(pair) -> dict[int, str]:
    owners = pair.owners()
    return {pk: side for side in ("master", "backup") for pk in owners[side]["registered"]}


def returned(pair, pbx, bring_back, *, sample=None) -> dict:
    """Bring the master back, wait until the pair has converged; the figures of it."""
    if pbx is None:
        bring_back()
        return {}
    before = holders(pair)
    back_at = time.time()
    bring_back()
    twice = 0

    def both_serve() -> bool:
        # Converged with each user on its home server again (not the lone survivor's):
        # both register a home (the returned master has been given its users back, not
        # only the survivor's assignment, under which it registers none).
        owners = pair.owners()
        return (
            pair.registered_by_owner()
            and owners["master"]["assignment"].get("serving") == "AB"
            and bool(owners["master"]["registering"] and owners["backup"]["registering"])
        )

    while not both_serve():
        if time.time() - back_at > 120:
            raise SystemExit("the pair did not converge within 120 s of the master's return")
        time.sleep(0.05)
    converged_at = time.time()
    after = holders(pair)
    for _ in range(int(3 / 0.1)):  # a while longer: nobody may be registered twice
        twice = max(twice, len(pair.registered_twice()))
        time.sleep(0.1)
    moved_back = sum(1 for pk, side in after.items() if side == "master" and before.get(pk) != side)
    # Either server declaring the other lost after the master came back (a heartbeat late
    # by more than the window while the pair re-forms under load): should be none.
    lost_again = sum(
        1
        for db in (pair.master_db, pair.backup_db)
        for created, _ in db.events("peer_lost")
        if created.timestamp() > back_at
    )
    return {"converged_s": round(converged_at - back_at, 3), "users_moved_back": moved_back,
            "registered_twice_max": twice, "peer_lost_after_return": lost_again}  # fmt: skip


def served(pair, users: int) -> bool:
    try:
        owners = pair.owners()
    except Exception:  # noqa: BLE001 (a database that is down serves nobody we know of)
        return False
    return len(owners["master"]["registered"] | owners["backup"]["registered"]) >= users


def part_failure(args) -> int:
    """--kill PROCESS or --pause S: the master's part fails, then comes back."""
    env = {"KWS_HEARTBEAT_INTERVAL": str(args.heartbeat), "KWS_DETECTION_WINDOW": str(args.window),
           "KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}  # fmt: skip
    log = print if args.verbose else LineLog()
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kws-bench-"))
        pbx = stack.enter_context(Kamailio())
        pair = stack.enter_context(pair_cluster(
            Path(tmp), log, users=args.users, failover_time=args.failover_time,
            master_env=env, backup_env=env, licensed_users=max(500, args.users),
        ))  # fmt: skip
        pair.wait_paired(timeout=60)
        rows = pair.master_db.rows("select sip_username, sip_password from users_dectuser")
        pbx.add_subscribers([(user, "127.0.0.1", password) for user, password in rows])
        pair.master.manage("kwsconfig", "set", f"sip.registrar=127.0.0.1:{pbx.port}",
                           *_rate_setting(args))  # fmt: skip
        wait_until(pair.registered_by_owner, timeout=300, what="every user registered by its owner")
        time.sleep(2 * args.heartbeat)
        failed_at = time.time()
        if args.pause:
            pair.master.pause()
            time.sleep(args.pause)
            back = returned(pair, pbx, pair.master.resume)
            result = {"mode": f"pause {args.pause:g} s", **back}
        else:
            pair.master.kill_process(args.kill)
            unserved_since, back_at = None, None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ok = served(pair, args.users)
                now = time.time()
                if not ok and unserved_since is None:
                    unserved_since = now
                if ok and unserved_since is not None and back_at is None:
                    back_at = now
                if pair.master_db.event_since("process", failed_at) and (
                    back_at is not None or (unserved_since is None and now - failed_at > 10)
                ):
                    break
                time.sleep(0.05)
            wait_until(
                lambda: (
                    pair.registered_by_owner()
                    and pair.owners()["master"]["assignment"].get("serving") == "AB"
                ),
                timeout=120,
                what="converged after the restart",
            )
            result = {
                "mode": f"kill {args.kill}",
                "reregistered_s": round((back_at or failed_at) - failed_at, 3),
                "unserved_s": round(back_at - unserved_since, 3) if back_at else 0.0,
                "takeover": bool(pair.backup_db.event_since("failover_started", failed_at)),
                "converged_s": round(time.time() - failed_at, 3),
            }
        result.update(users=args.users, failover_time_s=args.failover_time,
                      heartbeat_s=args.heartbeat, detection_window_s=args.window)  # fmt: skip
    print(json.dumps(result))
    if args.pause:
        print(f"master paused {args.pause:g} s: converged {result['converged_s']:.2f} s after "
              f"SIGCONT, {result['users_moved_back']} users moved back, at most "
              f"{result['registered_twice_max']} registered twice after convergence")  # fmt: skip
    else:
        print(f"{result['mode']} of the master: every user registered again "
              f"{result['reregistered_s']:.2f} s after the kill"
              f"{' (the backup took over)' if result['takeover'] else ''}; converged after "
              f"{result['converged_s']:.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
