#!/usr/bin/env python
"""Device protocol benchmark: what a keep-alive costs a node (the figures behind HTTP/JSON).

Starts one node (web, worker, beat and sip; PostgreSQL and Redis of its own, as
in production), configures ``--devices`` base stations and the device secret,
then measures:

- ``keepalive_p50_ms`` / ``keepalive_p95_ms``: one signed keep-alive end to
  end, ``--samples`` times one after another (an idle server);
- ``probe_p50_ms``: the unsigned probe, which does no database work: the
  HTTP and Django part of a keep-alive;
- ``web_idle_cpu_percent``: the web server's CPU with the devices configured and none
  keeping alive (what it costs without them);
- under load, ``--devices`` simulated base stations keeping alive every second
  for ``--seconds``: keep-alives served per second and the CPU the node's web
  server used (``web_cpu_percent`` of one core, from /proc).

Prints one JSON line and one summary line. Needs PostgreSQL and Redis
(``make services``); stops everything it started.

    .venv/bin/python bench/keepalive.py [--devices 100] [--seconds 20] [--samples 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

from basestations import protocol  # noqa: E402
from basestations.sim import Simulation, keepalive_once  # noqa: E402
from tests.system.infra import LineLog, cpu_seconds, started_node  # noqa: E402

DEVICE_SECRET = "bench-device-secret-0123"


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="seconds of the web server's CPU measured before the devices start",
    )
    parser.add_argument(
        "--attach-wait",
        type=float,
        default=120.0,
        help="seconds the devices may take to attach before the measurement",
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp,
        started_node(
            "node",
            log=LineLog(),
            tmp=Path(tmp),
            init_args=[f"--set=system.device_secret={DEVICE_SECRET}"],
        ) as node,  # fmt: skip
    ):
        node.manage("kwssim", "--provision", "--seconds=0", f"--basestations={args.devices}",
                    "--media=0")  # fmt: skip
        server = f"{node.host}:{node.port}"
        report: protocol.KeepAlive = {"mac": protocol.sim_mac("rfp", 1), "kind": "rfp",
                                      "firmware": "PCS06B", "state": "synced",
                                      "peer_reachable": None}  # fmt: skip
        assert keepalive_once(server=server, secret=DEVICE_SECRET, report=report).status == 200
        keepalives, probes = [], []
        for _ in range(args.samples):
            started = time.perf_counter()
            answer = keepalive_once(server=server, secret=DEVICE_SECRET, report=report)
            keepalives.append((time.perf_counter() - started) * 1000)
            assert answer.status == 200, answer.body
            started = time.perf_counter()
            conn = http.client.HTTPConnection(node.host, node.port, timeout=5)
            conn.request("GET", protocol.PROBE_PATH)
            assert conn.getresponse().status == 200
            conn.close()
            probes.append((time.perf_counter() - started) * 1000)

        web = node.processes["web"].pid
        idle0, idle_wall0 = cpu_seconds(web), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(web) - idle0) / (time.monotonic() - idle_wall0)
        with Simulation(server=server, secret=DEVICE_SECRET, basestations=args.devices,
                        seed=1) as sim:  # fmt: skip
            deadline = time.monotonic() + args.attach_wait
            while sim.attached_counts() != {server: args.devices}:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {sim.attached_counts()} attached")
                time.sleep(0.2)
            time.sleep(2)  # past the attach burst
            cpu0, wall0 = cpu_seconds(web), time.monotonic()
            served0 = sum(d.keepalives for d in sim.devices)
            time.sleep(args.seconds)
            cpu1, wall1 = cpu_seconds(web), time.monotonic()
            served1 = sum(d.keepalives for d in sim.devices)

    wall = wall1 - wall0
    result = {
        "keepalive_p50_ms": round(statistics.median(keepalives), 2),
        "keepalive_p95_ms": round(percentile(keepalives, 0.95), 2),
        "probe_p50_ms": round(statistics.median(probes), 2),
        "devices": args.devices,
        "served_per_s": round((served1 - served0) / wall, 1),
        "web_cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1),
        "web_idle_cpu_percent": round(100 * idle_cpu, 1),
        "seconds": args.seconds,
    }
    print(json.dumps(result))
    print(
        f"keep-alive {result['keepalive_p50_ms']:.1f} ms end to end (p95 "
        f"{result['keepalive_p95_ms']:.1f} ms; the probe without database work "
        f"{result['probe_p50_ms']:.1f} ms); {args.devices} devices: "
        f"{result['served_per_s']:.0f} keep-alives/s for {result['web_cpu_percent']:.0f} % "
        f"of one core in the web server ({result['web_idle_cpu_percent']:.0f} % without them)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
