#!/usr/bin/env python
"""Replication benchmark: how long a change on the master takes to reach the backup.

Starts a paired master and backup (each on its own PostgreSQL database and
Redis server; the engine pairs them), waits until the backup has taken its
first snapshot, then makes ``--changes`` user changes on the master through
the services (creates and edits, alternating) at ``--rate`` per second,
while this script watches the backup's applied position in its database.

The lag of change #n is the moment the backup's position reached n minus the
moment the entry was written on the master (both on this machine's clock).
Each save also waits for the backup's acknowledgement while the pair is in
sync, so the save time is reported too.

Prints one JSON line (keys p50_s, p95_s, max_s, changes, plus save_p50_s,
save_p95_s and the settings) and one summary line. Needs PostgreSQL and
Redis (``make services``); stops everything it started.

    .venv/bin/python bench/replication.py [--changes 500] [--rate 20] [--users 200]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")

import psycopg  # noqa: E402

from tests.system.infra import LineLog, NodeDB, pair_cluster, wait_until  # noqa: E402

WRITER = """
import json, random, time
from users.models import DectUser
from users.services import dect_user_create, dect_user_update
rng, saves, interval = random.Random(1), [], 1.0 / %(rate)f
ids = list(DectUser.objects.values_list("id", flat=True))
start = time.monotonic()
for n in range(%(changes)d):
    time.sleep(max(0.0, start + n * interval - time.monotonic()))
    began = time.monotonic()
    if n %% 2 == 0:
        ids.append(dect_user_create(actor="bench", extension=str(900000 + n)).pk)
    else:
        user = DectUser.objects.get(pk=rng.choice(ids))
        dect_user_update(user=user, actor="bench", display_name=f"edit {n}")
    saves.append(time.monotonic() - began)
print(json.dumps(saves))
"""


def head(db: NodeDB) -> int:
    return db.value("select seq from core_changeloghead where id = 1") or 0


def position(db: NodeDB) -> int:
    return db.value("select position from redundancy_replicationstate where id = 1") or 0


class PositionWatcher(threading.Thread):
    """Polls the backup's applied position and remembers when each value was first seen."""

    def __init__(self, url: str, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.seen: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            last = -1
            while not self.stopping.is_set():
                row = conn.execute(
                    "select position from redundancy_replicationstate where id = 1"
                ).fetchone()
                now = time.time()
                if row and row[0] != last:
                    last = row[0]
                    self.seen.append((now, last))
                time.sleep(self.interval)

    def reached(self, seq: int) -> float | None:
        for moment, pos in self.seen:
            if pos >= seq:
                return moment
        return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="changes per second")
    parser.add_argument("--users", type=int, default=200, help="demo users to start with")
    parser.add_argument("--verbose", action="store_true", help="print the nodes' logs")
    args = parser.parse_args()

    env = {"KWS_LOG_LEVEL": "INFO" if args.verbose else "WARNING"}
    log = print if args.verbose else LineLog()
    with tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp, pair_cluster(
        Path(tmp), log, users=args.users, master_env=env, backup_env=env,
    ) as pair:  # fmt: skip
        pair.wait_paired(timeout=60)
        wait_until(lambda: position(pair.backup_db) == head(pair.master_db) > 0, timeout=60,
                   what="the backup's first snapshot")  # fmt: skip
        time.sleep(2)  # a steady state, not the tail of the join
        start = head(pair.master_db)
        watcher = PositionWatcher(pair.backup_db.url)
        watcher.start()
        result = pair.master.manage("shell", "-c", WRITER % vars(args))
        saves = json.loads(result.stdout.strip().splitlines()[-1])
        end = head(pair.master_db)
        wait_until(lambda: watcher.reached(end), timeout=60, what="the backup at the head")
        watcher.stopping.set()
        watcher.join()
        written = pair.master_db.rows(
            "select seq, created from core_changelogentry where seq > %s and seq <= %s "
            "order by seq", start, end,
        )  # fmt: skip

    lags = [watcher.reached(seq) - created.timestamp() for seq, created in written]
    figures = {
        "p50_s": round(percentile(lags, 0.50), 4),
        "p95_s": round(percentile(lags, 0.95), 4),
        "max_s": round(max(lags), 4),
        "changes": len(lags),
        "save_p50_s": round(statistics.median(saves), 4),
        "save_p95_s": round(percentile(saves, 0.95), 4),
        "rate_per_s": args.rate,
        "users": args.users,
    }
    print(json.dumps(figures))
    print(
        f"replication lag of {figures['changes']} changes at {args.rate:g}/s: "
        f"p50 {figures['p50_s'] * 1000:.0f} ms, p95 {figures['p95_s'] * 1000:.0f} ms, "
        f"max {figures['max_s'] * 1000:.0f} ms (goal p95 <= 1 s); a save waited "
        f"{figures['save_p50_s'] * 1000:.0f} ms (p50) for the backup's acknowledgement"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
