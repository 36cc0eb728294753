#!/usr/bin/env python
"""Users list benchmark: the page an administrator works in, at 10,000 users.

Makes a fresh database (PostgreSQL by default, as in production; ``--sqlite``
for the embedded default), gives it ``--users`` users, half handled by this
server with a registration state of its own and half by the peer with the
state its heartbeats reported, then requests the Users list as a logged-in
administrator the way the page's htmx does (the table fragment) and times
each kind of request ``--repeat`` times: the first page, a page in the middle,
a search, each filter, sorting by registration and by name.

Prints one JSON line (per request kind: p50_ms, max_ms, queries; plus
``users`` and ``database``) and one summary line. Needs PostgreSQL unless
``--sqlite`` (``make services``); drops what it made.

    .venv/bin/python bench/users_list.py [--users 10000] [--repeat 20] [--sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

# The project instead of bench/, whose xmlrpc.py would hide the standard library's.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

REQUESTS = {
    "first_page": {},
    "middle_page": {"page": "100"},
    "search": {"q": "Berg"},
    "filter_node": {"node": "S"},
    "filter_registration": {"registration": "failed"},
    "sort_registration": {"sort": "registration"},
    "sort_name": {"sort": "-display_name", "page": "7"},
}


def seed(count: int) -> None:
    from datetime import UTC, datetime, timedelta

    from core.assignment import Assignment
    from core.models import ConfigValue, NodeState
    from users import ipei
    from users.models import DectUser, PeerRegistration, SipRegistration

    # A master (slot A) whose pair serves each user on its home: NODE M is home A, S home B.
    # Stored directly: config_update would ask for the redundancy licenses.
    for key, value in {"redundancy.mode": "master", "redundancy.peer": "127.0.0.1:9",
                       "redundancy.secret": "bench-secret-0123456789"}.items():  # fmt: skip
        ConfigValue.objects.update_or_create(key=key, defaults={"value": value})
    NodeState.objects.update_or_create(
        pk=1, defaults={"slot": "A", "assignment": Assignment(1, True, "AB").as_dict(),
                        "registering": "A", "last_tick": datetime.now(UTC)},
    )  # fmt: skip

    names = ["Anna Berg", "Bo Holm", "Carla Jensen", "Dev Kaur", "Emil Lund", "Freja Park"]
    DectUser.objects.bulk_create(
        DectUser(extension=str(10000 + n), display_name=f"{names[n % 6]} {n}",
                 ipei=ipei.make(3180, n), access_code=f"{n % 10000:04d}",
                 sip_username=str(10000 + n), sip_password=f"pw-{n}",
                 subscription="subscribed", home="A" if n % 2 else "B")
        for n in range(count)
    )  # fmt: skip
    now = datetime.now(UTC)
    ours, theirs = [], []
    for n, (pk, home) in enumerate(DectUser.objects.values_list("pk", "home")):
        state = "failed" if n % 50 == 0 else "registered"
        reason = "403 Forbidden" if state == "failed" else ""
        at = now - timedelta(seconds=n)
        if home == "A":
            ours.append(SipRegistration(user_id=pk, state=state, reason=reason, changed_at=at))
        else:
            theirs.append(PeerRegistration(user_id=pk, state=state, reason=reason, changed_at=at))
    SipRegistration.objects.bulk_create(ours)
    PeerRegistration.objects.bulk_create(theirs)


def measure(repeat: int) -> dict[str, dict[str, float]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    admin = get_user_model().objects.create_superuser("bench", password="bench-password-1")
    # The table fragment, as htmx asks for it, from a host the node answers to.
    client = Client(HTTP_HX_REQUEST="true", HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    results = {}
    for name, params in REQUESTS.items():
        assert client.get("/users/", params).status_code == 200  # warm
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get("/users/", params)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        results[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "queries": len(queries),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="the embedded default database")
    args = parser.parse_args()

    with ExitStack() as stack:
        os.environ["KWS_DATA_DIR"] = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ.pop("KWS_BROKER_URL", None)
        if args.sqlite:
            os.environ.pop("KWS_DATABASE_URL", None)
        else:
            from tests.system.infra import pg_database

            os.environ["KWS_DATABASE_URL"] = stack.enter_context(pg_database("kws_bench_users"))
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        seed(args.users)
        if not args.sqlite:
            from django.db import connection

            # Autovacuum analyzes the new rows within a minute or so; the requests start
            # seconds after seeding, when the planner would still guess the row counts.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        results = measure(args.repeat)
        from django.db import connections

        connections.close_all()

    database = "sqlite" if args.sqlite else "postgresql"
    print(json.dumps({**results, "users": args.users, "database": database}))
    slowest = max(results, key=lambda name: results[name]["p50_ms"])
    queries = sorted({r["queries"] for r in results.values()})
    print(
        f"Users list at {args.users} users ({database}): first page "
        f"{results['first_page']['p50_ms']:.0f} ms, slowest {slowest} "
        f"{results[slowest]['p50_ms']:.0f} ms (p50 of {args.repeat}); "
        f"{'/'.join(map(str, queries))} queries a request whatever the page"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
