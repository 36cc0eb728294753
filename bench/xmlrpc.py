#!/usr/bin/env python
"""XML-RPC benchmark: what applications on /RPC2 get from a pair of servers, and what they
cost the GUI.

Starts a paired master and backup (each on its own PostgreSQL database and Redis
server, as in production; failover time 0), ``--basestations`` simulated base
stations attached to the master and ``--handsets`` handsets on them (extensions 2000
and up, which do not roam during the run), then logs in as ``GW-DECT/admin`` with
xmlrpc.client, as applications do, and measures:

- ``sms_m_p50_ms`` / ``sms_m_p95_ms`` (and ``sms_s_...``): one ``endpoint_sms`` to a
  handset whose user is on M (home A; on S: home B) until its ``endpoint_release``
  (reason 0) arrives in ``session_receive``, ``--messages`` times one after another;
- ``advanced_m_p50_ms`` / ``advanced_m_p95_ms`` (and ``advanced_s_...``): the same for
  ``endpoint_sms_advanced`` (action 0x01, response 0x01) until the handset's answer
  (the ``endpoint_sms_advanced`` event with action 0x81);
- ``login_p50_ms``: one ``session_login`` (the password is checked like a GUI login);
- ``burst_per_s``: ``--burst`` text messages from one application to the handsets in
  turn, as fast as it can with at most 16 on their way (it sends while fewer are, or
  until the server answers -2, busy, then receives events to free slots), until every
  release arrived;
- ``gui_idle_p95_ms`` / ``gui_waiting_p95_ms``: a logged-in administrator's GETs of the
  Status page (``/``), the applications on it and the Users list (``/users/``),
  ``--gui-requests`` times each, with no application connected and with
  ``--applications`` applications each waiting in ``session_receive(sid, 30)``, and with
  none again afterwards (``gui_idle_after_p95_ms``: how much the figures drift on this
  machine); ``applications_login_s``: how long those applications took to log in, all
  at once;
- ``reconnect_s``: from kill -9 of the master until a redundancy-aware application
  (it switches server on a protocol or socket error and logs in again) receives, from
  the backup, the alarm a handset raised right after the kill; ``backup_login_s``: until
  it had logged in there, ``failover_start_s``: until the backup started its failover.

Goals (printed beside the figures): delivery p95 <= 50 ms on M and <= 100 ms on S,
>= 200 messages/s, reconnect <= detection window + 1 s, the GUI's p95 with the
applications waiting within 20 % of idle.

Prints one JSON line (the figures, the goals and the settings used) and one summary
line. Needs PostgreSQL and Redis (``make services``); stops everything it started.

    .venv/bin/python bench/xmlrpc.py [--messages 200] [--burst 2000] [--applications 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

# The project's root instead of bench/, where this file would stand for the standard
# library's xmlrpc.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

import xmlrpc.client  # noqa: E402

from basestations.sim import Simulation  # noqa: E402
from tests.system.conftest import logged_in  # noqa: E402
from tests.system.infra import FAST, NEW_PASSWORD, LineLog, pair_cluster, wait_until  # noqa: E402
from tests.system.test_basestations import DEVICE_SECRET, provision  # noqa: E402

LOGIN = "GW-DECT/admin"
BUSY = -2
MAX_PENDING = 16  # messages on their way per application (settings.RPC_MAX_PENDING)
ACCEPTED = 0x81
NO_ALERT = (0,) * 9  # led, icon, color, setup, the alert tone, pattern, volume and timeouts
GUI_PAGES = {"status": "/", "applications": "/messaging/applications/", "users": "/users/"}
GOALS = {"delivery_p95_ms_m": 50, "delivery_p95_ms_s": 100, "burst_per_s": 200,
         "reconnect_over_window_s": 1.0, "gui_slowdown_percent": 20}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def proxy(address: str) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"http://{address}", allow_none=False)


def login(app: xmlrpc.client.ServerProxy) -> int:
    sid = app.session_login(LOGIN, NEW_PASSWORD)
    if not isinstance(sid, int) or sid <= 0:
        raise SystemExit(f"session_login refused: {sid}")
    return sid


def receive_until(app, sid: int, check: Callable[[dict], bool], timeout: float = 15.0) -> dict:
    """Receive until an event passes ``check``; that event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = app.session_receive(sid, 5)
        if not isinstance(batch, list):
            raise SystemExit(f"session_receive answered {batch}")
        for event in batch:
            if check(event):
                return event
    raise SystemExit(f"no matching event within {timeout} s")


def release_of(to: str) -> Callable[[dict], bool]:
    return lambda e: e["type"] == "endpoint_release" and e["from"] == to


def answer_of(to: str, mid: int) -> Callable[[dict], bool]:
    return lambda e: e["type"] == "endpoint_sms_advanced" and e["from"] == to and e["id"] == mid


def latencies(app, sid: int, targets: list[str], count: int, *, advanced: bool) -> list[float]:
    """Milliseconds from each send until its outcome arrived, one message at a time."""
    times = []
    for n in range(count):
        to = targets[n % len(targets)]
        started = time.perf_counter()
        if advanced:
            mid = 1000 + n
            status = app.endpoint_sms_advanced(
                sid, 0x01, 0x01, mid, 3, "endpoint", to, *NO_ALERT, f"Bench {n}", ""
            )
            answer = receive_until(app, sid, answer_of(to, mid))
            ok = answer["action"] == ACCEPTED
        else:
            status = app.endpoint_sms(sid, to, "100", f"Bench {n}")
            ok = receive_until(app, sid, release_of(to))["reason"] == 0
        elapsed = (time.perf_counter() - started) * 1000
        if status != 0 or not ok:
            raise SystemExit(f"message {n} to {to}: status {status}, outcome not delivered")
        times.append(elapsed)
    return times


def burst(app, sid: int, targets: list[str], count: int) -> dict:
    """``count`` text messages as fast as the server takes them, at most MAX_PENDING on
    their way (sending until the server answers busy, then receiving events to free
    slots), until every release arrived."""
    sent, released, busy = 0, 0, 0
    reasons: Counter[int] = Counter()
    started = last = time.perf_counter()
    while released < count:
        if sent < count and sent - released < MAX_PENDING:
            status = app.endpoint_sms(sid, targets[sent % len(targets)], "100", f"Burst {sent}")
            if status == 0:
                sent += 1
                continue
            if status != BUSY:
                raise SystemExit(f"endpoint_sms answered {status} in the burst")
            busy += 1
        batch = app.session_receive(sid, 5)
        if not isinstance(batch, list):
            raise SystemExit(f"session_receive answered {batch} in the burst")
        for event in batch:
            if event["type"] == "endpoint_release":
                released += 1
                reasons[event["reason"]] += 1
                last = time.perf_counter()
        if time.perf_counter() - last > 15:
            raise SystemExit(f"burst: no release for 15 s, {released} of {count} released")
    elapsed = time.perf_counter() - started
    return {"burst_per_s": round(count / elapsed, 1), "burst_s": round(elapsed, 3),
            "burst_busy_answers": busy,
            "burst_not_delivered": sum(n for r, n in reasons.items() if r != 0)}  # fmt: skip


def gui_times(gui, requests: int) -> dict[str, list[float]]:
    """Milliseconds of each GET of each page, the pages in turn."""
    times: dict[str, list[float]] = {name: [] for name in GUI_PAGES}
    for _ in range(requests):
        for name, path in GUI_PAGES.items():
            started = time.perf_counter()
            page = gui.get(path)
            times[name].append((time.perf_counter() - started) * 1000)
            if page.status != 200 or "/login/" in page.url:
                raise SystemExit(f"GET {path}: {page.status} {page.url}")
    return times


class WaitingApplication:
    """An application in a thread of its own, waiting in session_receive(sid, 30) until
    its session ends."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sid = 0
        self.logged_in = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        app = proxy(self.address)
        self.sid = login(app)
        self.logged_in.set()
        try:
            while app.session_receive(self.sid, 30) != -1:
                pass
        except (xmlrpc.client.ProtocolError, OSError):
            pass  # its session was ended


class RedundancyAwareApplication:
    """The SDK's redundancy logic: on a protocol or socket error, switch to the other
    server, log in again and go on receiving. Keeps every event with its arrival time."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.current = 0
        self.events: list[tuple[float, str, dict]] = []
        self.logins: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        sid = None
        while not self.stop.is_set():
            server = self.servers[self.current]
            app = proxy(server)
            try:
                if sid is None:
                    sid = app.session_login(LOGIN, NEW_PASSWORD)
                    if sid <= 0:
                        raise OSError(f"login refused: {sid}")
                    self.logins.append((time.time(), server))
                batch = app.session_receive(sid, 1)
                if batch == -1:
                    sid = None
                    continue
                now = time.time()
                self.events += [(now, server, e) for e in batch]
            except (xmlrpc.client.ProtocolError, OSError):
                sid = None
                self.current = (self.current + 1) % len(self.servers)
                time.sleep(0.2)

    def alarm_from(self, server: str, extension: str, since: float) -> float | None:
        """When the first alarm of ``extension`` arrived from ``server`` at or after ``since``."""
        for at, source, e in self.events:
            if (at >= since and source == server and e.get("type") == "endpoint_status"
                    and e.get("status") == 12 and e.get("from") == extension):  # fmt: skip
                return at
        return None


def figures_of(name: str, times: list[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": round(statistics.median(times), 2),
            f"{name}_p95_ms": round(percentile(times, 0.95), 2)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per latency case")
    parser.add_argument("--burst", type=int, default=2000, help="messages of the burst")
    parser.add_argument("--applications", type=int, default=50, help="waiting applications")
    parser.add_argument("--gui-requests", type=int, default=100, help="GETs of each page")
    parser.add_argument("--handsets", type=int, default=20)
    parser.add_argument("--basestations", type=int, default=10)
    parser.add_argument("--users", type=int, default=40, help="demo users (>= --handsets)")
    parser.add_argument("--window", type=float, default=float(FAST["KWS_DETECTION_WINDOW"]),
                        help="detection window (s)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print the nodes' logs")
    args = parser.parse_args()
    if args.users < args.handsets:
        parser.error("--users must be at least --handsets (each handset is a user's)")

    env = {"KWS_RPC_PAGING_TIMEOUT": "2", "KWS_DETECTION_WINDOW": str(args.window),
           "KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}  # fmt: skip
    log = print if args.verbose else LineLog()
    result: dict = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kws-bench-"))
        pair = stack.enter_context(pair_cluster(
            Path(tmp), log, users=args.users, failover_time=0, master_env=env, backup_env=env,
        ))  # fmt: skip
        pair.wait_paired(timeout=60)
        gui = logged_in(pair.master)  # the first login's password change, replicated
        provision(pair, basestations=args.basestations, media=0)
        master = f"127.0.0.1:{pair.master.port}"
        backup = f"127.0.0.1:{pair.backup.port}"
        sim = stack.enter_context(Simulation(
            server=master, secret=DEVICE_SECRET, basestations=args.basestations, media=0,
            handsets=args.handsets, roam_seconds=(600, 900), seed=1,
        ))  # fmt: skip
        wait_until(lambda: sim.attached_counts() == {master: args.basestations}, timeout=60,
                   what="every base station on the master")  # fmt: skip
        homes = dict(pair.master_db.rows("select extension, home from users_dectuser"))
        extensions = [h.extension for h in sim.handsets]
        on_m = [e for e in extensions if homes[e] == "A"]
        on_s = [e for e in extensions if homes[e] == "B"]
        if not on_m or not on_s:
            raise SystemExit(f"handsets on M: {len(on_m)}, on S: {len(on_s)}; need both")

        app = proxy(master)
        logins = []
        for _ in range(5):
            started = time.perf_counter()
            sid = login(app)
            logins.append((time.perf_counter() - started) * 1000)
            app.session_logout(sid)
        result["login_p50_ms"] = round(statistics.median(logins), 1)
        sid = login(app)
        latencies(app, sid, extensions, 2 * len(extensions), advanced=False)  # warm up
        latencies(app, sid, extensions, len(extensions), advanced=True)
        for name, targets in (("m", on_m), ("s", on_s)):
            times = latencies(app, sid, targets, args.messages, advanced=False)
            result.update(figures_of(f"sms_{name}", times))
            times = latencies(app, sid, targets, args.messages, advanced=True)
            result.update(figures_of(f"advanced_{name}", times))
        result.update(burst(app, sid, extensions, args.burst))
        app.session_logout(sid)

        # The GUI, with no application connected, then with the applications waiting.
        gui_times(gui, 5)  # warm up
        idle = gui_times(gui, args.gui_requests)
        waiting = [WaitingApplication(master) for _ in range(args.applications)]
        started = time.perf_counter()
        for application in waiting:
            application.thread.start()
        for application in waiting:
            if not application.logged_in.wait(300):
                raise SystemExit("a waiting application did not log in within 300 s")
        result["applications_login_s"] = round(time.perf_counter() - started, 2)
        wait_until(lambda: gui.get(GUI_PAGES["applications"]).text.count("waiting for events")
                   == args.applications, timeout=30, what="every application waiting")  # fmt: skip
        time.sleep(2)  # a steady state, not the tail of the logins
        loaded = gui_times(gui, args.gui_requests)
        still = gui.get(GUI_PAGES["applications"]).text.count("waiting for events")
        for application in waiting:
            app.session_logout(application.sid)
        for application in waiting:
            application.thread.join(10)
        # Idle again: how much the figures drift on this machine without the applications.
        after = gui_times(gui, args.gui_requests)
        for case, times in (("idle", idle), ("waiting", loaded), ("idle_after", after)):
            every = [t for page in times.values() for t in page]
            result[f"gui_{case}_p95_ms"] = round(percentile(every, 0.95), 2)
            for page, values in times.items():
                result[f"gui_{case}_{page}_p95_ms"] = round(percentile(values, 0.95), 2)
        result["gui_slowdown_percent"] = round(
            100 * (result["gui_waiting_p95_ms"] / result["gui_idle_p95_ms"] - 1), 1
        )
        result["gui_applications_waiting_after"] = still

        # Reconnect: kill -9 of the master, an alarm raised at once, received via the backup.
        follower = RedundancyAwareApplication([master, backup])
        follower.thread.start()
        try:
            wait_until(lambda: follower.logins, timeout=10, what="the application logged in")
            alarm_by = extensions[0]
            before = time.time()
            sim.press_alarm(alarm_by)
            wait_until(lambda: follower.alarm_from(master, alarm_by, before), timeout=10,
                       what="an alarm via the master")  # fmt: skip
            time.sleep(1)  # receiving from the master, between two receives' starts
            killed_at = time.time()
            pair.master.kill()
            sim.press_alarm(alarm_by)
            arrived = wait_until(lambda: follower.alarm_from(backup, alarm_by, killed_at),
                                 timeout=60, what="the alarm via the backup")  # fmt: skip
            on_backup = next(t for t, s in follower.logins if s == backup and t >= killed_at)
        finally:
            follower.stop.set()
            follower.thread.join(5)
        failover = wait_until(lambda: pair.backup_db.event_since("failover_started", killed_at),
                              timeout=30, what="the failover started")  # fmt: skip
        result["reconnect_s"] = round(arrived - killed_at, 3)
        result["backup_login_s"] = round(on_backup - killed_at, 3)
        result["failover_start_s"] = round(failover[0] - killed_at, 3)
        if sim.error is not None:
            raise SystemExit(f"the simulation failed: {sim.error!r}")

    result.update(
        detection_window_s=args.window,
        reconnect_goal_s=args.window + GOALS["reconnect_over_window_s"],
        goals=GOALS, messages=args.messages, burst=args.burst, applications=args.applications,
        gui_requests=args.gui_requests, handsets=args.handsets, handsets_m=len(on_m),
        handsets_s=len(on_s), basestations=args.basestations, users=args.users,
    )  # fmt: skip
    print(json.dumps(result))
    r = result
    print(
        f"delivery p50/p95: sms {r['sms_m_p50_ms']:.1f}/{r['sms_m_p95_ms']:.1f} ms on M "
        f"(goal p95 <= {GOALS['delivery_p95_ms_m']} ms), {r['sms_s_p50_ms']:.1f}/"
        f"{r['sms_s_p95_ms']:.1f} ms on S (goal <= {GOALS['delivery_p95_ms_s']} ms); advanced "
        f"{r['advanced_m_p50_ms']:.1f}/{r['advanced_m_p95_ms']:.1f} ms on M, "
        f"{r['advanced_s_p50_ms']:.1f}/{r['advanced_s_p95_ms']:.1f} ms on S; one application "
        f"{r['burst_per_s']:.0f} messages/s (goal >= {GOALS['burst_per_s']}); GUI p95 "
        f"{r['gui_idle_p95_ms']:.1f} ms idle, {r['gui_waiting_p95_ms']:.1f} ms with "
        f"{args.applications} applications waiting ({r['gui_slowdown_percent']:+.0f} %, goal "
        f"within {GOALS['gui_slowdown_percent']} %; idle again {r['gui_idle_after_p95_ms']:.1f} "
        f"ms); reconnect {r['reconnect_s']:.2f} s after kill -9 of the master (goal <= "
        f"{r['reconnect_goal_s']:g} s: detection window {args.window:g} s + 1 s; failover "
        f"started after {r['failover_start_s']:.2f} s, a login takes {r['login_p50_ms']:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
