#!/usr/bin/env python
"""Re-registration benchmark: N users REGISTER with digest authentication from one node.

Starts its own Kamailio (users/pbx.py, deploy/kamailio/kamailio.cfg) on a free loopback
port, fills the subscriber table with ``--users`` accounts, and measures:

- ``registrations_per_s``: a fresh SipRegistrationClient (no nonce known: the first user
  is challenged, the others borrow its nonce and need one REGISTER each; with
  ``--no-borrow`` each user is challenge + answer, as SIPp's scenario) registers every
  user, unlimited rate, ``--in-flight`` transactions at once; the count is then checked
  in Kamailio's own location table (``usrloc:registered_users`` and ``ul.dump``).
  ``register_requests_per_s`` counts REGISTER requests instead, and ``vs_sipp`` is
  registrations per second as a share of SIPp's.
- ``unregistrations_per_s``: the same client un-registers them all (nonce reused).
- ``sipp_registrations_per_s``: where SIPp is installed (Debian ``sip-tester``), the
  same users registered by SIPp against the same Kamailio in the same run, with the same
  bound on calls in flight, as a reference load generator; else null with a reason.
- ``client_cpu_percent`` / ``pbx_cpu_percent`` (and ``sipp_cpu_percent`` /
  ``sipp_pbx_cpu_percent``): the CPU the client (SIPp) and Kamailio used while it
  registered, in % of one core: which of the two is the limit on this machine.

- with ``--rate auto``: first the same users with the adaptive rate (users/sip/pace.py,
  the product's default), ``auto_registrations_per_s`` and ``auto_rate_over_time`` (the
  rate every 0.25 s, REGISTERs per second), then the unlimited run above for comparison;
  ``--pbx-limit N`` makes Kamailio answer 503 above N REGISTERs per second.

Prints one JSON line and one summary line; stops everything it started.

    .venv/bin/python bench/reregister.py [--users 2000] [--in-flight 200] [--transport udp]
        [--rate auto|N] [--pbx-limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.system.infra import cpu_seconds  # noqa: E402 - needs the path above
from users.pbx import Kamailio, free_port  # noqa: E402
from users.sip.client import Credentials, SipRegistrationClient  # noqa: E402

SIPP_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="REGISTER with digest">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]t[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Expires: 3600
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]t[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      [field2]
      Expires: 3600
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


async def run_client(
    pbx: Kamailio,
    accounts: dict[str, Credentials],
    transport: str,
    in_flight: int,
    rate: float | str | None = None,
    borrow: bool = True,
) -> dict[str, Any]:
    client = SipRegistrationClient(
        server=(pbx.host, pbx.port),
        borrow_nonces=borrow,
        transport=transport,  # type: ignore[arg-type]
        rate=rate,  # type: ignore[arg-type]
        max_in_flight=in_flight,
        # A failure counts as failed, not retried within the run (a 503 of the adaptive
        # rate is retried: it says "later", not "no").
        backoff_initial=60 if rate != "auto" else 1,
    )
    await client.start()
    started = time.perf_counter()
    cpu0, pbx_cpu0 = time.process_time(), cpu_seconds(pbx.process.pid)
    client.set_accounts(accounts)
    over_time: list[list[float]] = []

    async def sample() -> None:
        while True:
            now = client.rate_now()[0]
            over_time.append([round(time.perf_counter() - started, 2), round(now or 0)])
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    done = (lambda p: p.registered == len(accounts)) if rate == "auto" else (lambda p: p.settled)
    progress = await client.wait(done, timeout=300)
    seconds = time.perf_counter() - started
    cpu, pbx_cpu = time.process_time() - cpu0, cpu_seconds(pbx.process.pid) - pbx_cpu0
    sampler.cancel()
    in_kamailio = pbx.registered_users()
    in_dump = len(pbx.location())
    sent = dict(client.sent)
    started = time.perf_counter()
    await client.stop(unregister=True, timeout=300)
    unregister_s = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "registrations_per_s": round(progress.registered / seconds),
        "register_requests_per_s": round(client.sent["register"] / seconds),
        "failed": progress.failed,
        # Of one core, while it registered: ours (this process) and the PBX's (Kamailio's).
        "client_cpu_percent": round(100 * cpu / seconds),
        "pbx_cpu_percent": round(100 * pbx_cpu / seconds),
        "registered_in_kamailio": in_kamailio,
        "aors_in_location_dump": in_dump,
        "unregistrations_per_s": round(len(accounts) / unregister_s),
        "left_in_kamailio": pbx.registered_users(),
        "register_requests": sent.get("register", 0),
        "retransmissions": sent.get("retransmit", 0),
        "rate_over_time": over_time,
        "rate_last": client.rate_now()[1],
    }


def run_sipp(pbx: Kamailio, accounts: dict[str, Credentials], transport: str, in_flight: int):
    """SIPp registering the same users; ``(figures, None)`` or ``(None, reason)``."""
    sipp = shutil.which("sipp")
    if sipp is None:
        return None, "sipp is not installed (Debian package sip-tester)"
    folder = pbx.dir / "sipp"
    folder.mkdir(exist_ok=True)
    (folder / "register.xml").write_text(SIPP_SCENARIO)
    # SIPp 3.6 does not expand [fieldN] inside [authentication]; a whole keyword in an
    # injection field is expanded, though.
    with (folder / "users.csv").open("w", newline="") as out:
        out.write("SEQUENTIAL\n")
        rows = csv.writer(out, delimiter=";", lineterminator="\n")
        for user, creds in accounts.items():
            auth = f"[authentication username={creds.username} password={creds.password}]"
            rows.writerow([user, pbx.host, auth])
    n = len(accounts)
    command = [
        sipp, f"{pbx.host}:{pbx.port}", "-sf", str(folder / "register.xml"),
        "-inf", str(folder / "users.csv"), "-m", str(n), "-r", "1000000", "-rp", "1000",
        "-l", str(in_flight), "-t", "u1" if transport == "udp" else "t1",
        "-i", pbx.host, "-p", str(free_port(pbx.host)), "-buff_size", str(4 * 1024 * 1024),
        "-nostdin", "-nd", "-timeout", "120s", "-timeout_error",
        "-trace_stat", "-stf", str(folder / "stat.csv"), "-fd", "1",
    ]  # fmt: skip
    started = time.perf_counter()
    pbx_cpu0 = cpu_seconds(pbx.process.pid)
    children0 = os.times()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return None, "sipp did not finish in 180 s"
    seconds = time.perf_counter() - started
    pbx_cpu = cpu_seconds(pbx.process.pid) - pbx_cpu0
    children = os.times()
    sipp_cpu = (children.children_user - children0.children_user
                + children.children_system - children0.children_system)  # fmt: skip
    try:
        rows = [line.rstrip("\n").split(";") for line in (folder / "stat.csv").open()]
        last = dict(zip(rows[0], rows[-1], strict=False))
        ok, failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
    except (OSError, KeyError, ValueError, IndexError) as exc:
        return None, f"sipp exited with {done.returncode} and no statistics ({exc})"
    return {
        "sipp_seconds": round(seconds, 3),
        "sipp_registrations_per_s": round(ok / seconds),
        "sipp_failed": failed,
        "sipp_cpu_percent": round(100 * sipp_cpu / seconds),
        "sipp_pbx_cpu_percent": round(100 * pbx_cpu / seconds),
        "sipp_registered_in_kamailio": pbx.registered_users(),
    }, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=200, help="transactions at once")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--no-sipp", action="store_true", help="skip the SIPp comparison")
    parser.add_argument(
        "--rate", default="", help="auto: measure the adaptive rate first; N: a fixed rate"
    )
    parser.add_argument("--pbx-limit", type=int, default=0, help="503 above N REGISTERs/s")
    parser.add_argument(
        "--no-borrow", action="store_true", help="challenge every user (as SIPp's scenario)"
    )
    args = parser.parse_args()

    accounts = {f"u{i:06d}": Credentials(f"u{i:06d}", f"pw-{i:06d}") for i in range(args.users)}
    result: dict[str, Any] = {
        "users": args.users,
        "transport": args.transport,
        "in_flight": args.in_flight,
    }
    limit = {"REGISTER_LIMIT": args.pbx_limit} if args.pbx_limit else {}
    with Kamailio(defines=limit) as pbx:
        pbx.add_subscribers((user, pbx.host, c.password) for user, c in accounts.items())
        if args.rate == "auto":
            auto = asyncio.run(run_client(pbx, accounts, args.transport, args.in_flight, "auto"))
            result.update({f"auto_{k}": v for k, v in auto.items()})
        fixed = float(args.rate) if args.rate not in ("", "auto") else None
        run = asyncio.run(
            run_client(pbx, accounts, args.transport, args.in_flight, fixed, not args.no_borrow)
        )
        run.pop("rate_over_time")
        run.pop("rate_last")
        result.update(run, rate=fixed, pbx_limit=args.pbx_limit or None)
        if args.no_sipp:
            result.update(sipp_registrations_per_s=None, sipp_reason="--no-sipp")
        else:
            figures, reason = run_sipp(pbx, accounts, args.transport, args.in_flight)
            if figures is None:
                result.update(sipp_registrations_per_s=None, sipp_reason=reason)
            else:
                result.update(figures)
                ratio = result["registrations_per_s"] / max(1, figures["sipp_registrations_per_s"])
                result["vs_sipp"] = round(ratio, 2)
    result["borrowed_nonces"] = not args.no_borrow
    print(json.dumps(result))
    ok = result["registered_in_kamailio"] == args.users and result["failed"] == 0
    sipp = result["sipp_registrations_per_s"]
    print(
        f"{result['registrations_per_s']}/s: {args.users} users registered over "
        f"{args.transport} with digest auth in {result['seconds']} s "
        f"({'all' if ok else 'NOT all'} in Kamailio's location table, "
        f"{result['failed']} failed); un-REGISTER {result['unregistrations_per_s']}/s; "
        + (
            f"SIPp {sipp}/s ({result['vs_sipp']:.2f}x SIPp"
            f"{'' if args.no_borrow else ', nonces borrowed'}"
            f"; {result['register_requests_per_s']} REGISTERs/s); CPU of one core: client "
            f"{result['client_cpu_percent']} % and Kamailio {result['pbx_cpu_percent']} %, "
            f"SIPp {result['sipp_cpu_percent']} % and Kamailio {result['sipp_pbx_cpu_percent']} %"
            if sipp is not None
            else f"SIPp: {result['sipp_reason']}"
        )
    )
    if args.rate == "auto":
        series = " ".join(f"{t:g}s:{r}" for t, r in result["auto_rate_over_time"][:40])
        print(
            f"auto: {result['auto_registrations_per_s']}/s in {result['auto_seconds']} s "
            f"({result['auto_failed']} failed, {result['auto_retransmissions']} retransmissions,"
            f" {result['auto_rate_last']}); rate over time: {series}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
