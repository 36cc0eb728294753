"""Replication between two real nodes (web, worker and beat each; PostgreSQL and Redis
of their own): many changes converge, another UUID is refused, a backup killed while it
applies a batch converges after restart, an acknowledged change is on the backup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kws_admin.cluster import ROOT, Node
from tests.system.conftest import NodeDB, pair_cluster, wait_until

pytestmark = pytest.mark.system

USER_COLUMNS = ("id, extension, display_name, ipei, access_code, sip_username, sip_password, "
                "subscription, home")  # fmt: skip
ADMIN_COLUMNS = (
    "username, password, is_active, is_staff, is_superuser, first_name, last_name, email"
)

# Mixed changes through the services, as the GUI will make them: users created (some
# reusing the extension of a deleted user, so order matters), edited, moved and deleted;
# shared settings changed; base stations added, renamed and removed.
MIXED_CHANGES = """
import json, random
from basestations.models import BaseStation
from basestations.services import basestation_create, basestation_delete, basestation_update
from core.services import config_update
from users import ipei
from users.models import DectUser
from users.services import dect_user_create, dect_user_delete, dect_user_update
rng = random.Random(%(seed)d)
counts = {"create": 0, "update": 0, "delete": 0, "setting": 0, "device": 0}
freed, serial = [], %(first)d
for n in range(%(count)d):
    ids = list(DectUser.objects.values_list("id", flat=True))
    roll = rng.random()
    if roll < 0.06:
        config_update(actor="systest", changes=rng.choice([
            {"sip.rate": str(rng.randrange(50, 500))},
            {"sip.expires": str(rng.randrange(120, 3600))},
            {"sip.domain": f"site{n}.example"},
            {"sip.transport": rng.choice(["udp", "tcp"])},
        ]))
        counts["setting"] += 1
    elif roll < 0.12:
        rfps = list(BaseStation.objects.all())
        if len(rfps) > 3 and rng.random() < 0.3:
            basestation_delete(basestation=rng.choice(rfps), actor="systest")
        elif rfps and rng.random() < 0.5:
            basestation_update(basestation=rng.choice(rfps), actor="systest",
                               name=f"RFP renamed {n}", location=f"Floor {n %% 7}")
        else:
            basestation_create(actor="systest", name=f"RFP new {n}",
                               mac=f"02:4B:57:09:{n // 256:02X}:{n %% 256:02X}")
        counts["device"] += 1
    elif roll < 0.45 or len(ids) < 10:
        serial += 1
        extension = freed.pop() if freed and rng.random() < 0.5 else str(serial)
        dect_user_create(actor="systest", extension=extension, display_name=f"New {n}",
                         ipei=ipei.make(3180, serial), sip_password=f"pw-{n}")
        counts["create"] += 1
    elif roll < 0.82:
        user = DectUser.objects.get(pk=rng.choice(ids))
        dect_user_update(user=user, actor="systest", display_name=f"Edited {n}",
                         subscription=rng.choice(["none", "enabled", "subscribed"]),
                         access_code=f"{rng.randrange(10000):04d}")
        counts["update"] += 1
    else:
        user = DectUser.objects.get(pk=rng.choice(ids))
        freed.append(user.extension)
        dect_user_delete(user=user, actor="systest")
        counts["delete"] += 1
print(json.dumps(counts))
"""


def run(node: Node, code: str) -> str:
    return node.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def create_user(node: Node, extension: str) -> None:
    """Create a user through the service; returns once the save was acknowledged."""
    code = "from users.services import dect_user_create as c; c(actor='systest', extension='%s')"
    node.manage("shell", "-c", code % extension)


def export(db: NodeDB) -> dict[str, list[tuple]]:
    """Everything replicated, as an outside observer reads it from the node's database."""
    return {
        "users": db.rows(f"select {USER_COLUMNS} from users_dectuser order by id"),
        "admins": db.rows(f"select {ADMIN_COLUMNS} from auth_user order by username"),
        "must_change": db.rows(
            "select u.username from accounts_passwordchangerequired p "
            "join auth_user u on u.id = p.user_id order by 1"
        ),
        "settings": db.rows(
            "select key, value from core_configvalue where key not like 'redundancy.%%' "
            "and key <> 'system.ari' order by key"
        ),
        "basestations": db.rows(
            "select id, name, mac, location from basestations_basestation order by id"
        ),
        "media": db.rows(
            "select id, name, mac, channels, location from basestations_mediaresource order by id"
        ),
    }


def head(db: NodeDB) -> int:
    return db.value("select seq from core_changeloghead where id = 1") or 0


def position(db: NodeDB) -> int:
    return db.value("select position from redundancy_replicationstate where id = 1") or 0


def caught_up(pair) -> bool:
    return position(pair.backup_db) == head(pair.master_db) > 0


def test_hundreds_of_mixed_changes_on_the_master_reach_the_backup(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=40) as pair:
        pair.wait_paired()
        wait_until(lambda: caught_up(pair), timeout=20, what="backup took the first snapshot")

        started = time.monotonic()
        counts = json.loads(run(pair.master, MIXED_CHANGES % {"seed": 7, "first": 5000,
                                                              "count": 400}))  # fmt: skip
        took = time.monotonic() - started
        assert sum(counts.values()) == 400 and min(counts.values()) >= 10, counts

        wait_until(lambda: caught_up(pair), timeout=20, what="backup at the master's head")
        exported = export(pair.master_db)
        assert export(pair.backup_db) == exported
        assert exported["basestations"] and ("sip.rate",) in {r[:1] for r in exported["settings"]}
        print(f"400 acknowledged changes in {took:.1f} s: {counts}")


def test_an_acknowledged_change_is_on_the_backup_when_the_master_dies(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=10) as pair:
        pair.wait_paired()
        wait_until(lambda: caught_up(pair), timeout=20, what="backup in sync")
        create_user(pair.master, "4242")
        pair.master.kill()
        assert pair.backup_db.rows("select extension from users_dectuser where extension='4242'")


def test_a_backup_with_another_database_uuid_applies_nothing_and_says_why(tmp_path, cluster_log):
    other = "99999999-8888-4777-8666-555555555555"
    with pair_cluster(tmp_path, cluster_log, users=10) as pair:
        pair.wait_paired()
        wait_until(lambda: caught_up(pair), timeout=20, what="backup in sync")
        # Only the backup's web server runs, so its engine cannot change the phase:
        # the replication check itself must refuse, whatever the phase says.
        pair.backup.stop()
        pair.backup.start(roles=("web",))
        pair.backup.wait_ready()
        pair.backup.manage("kwsconfig", "set", f"redundancy.database_uuid={other}")
        pair.backup_db.rows("update core_nodestate set phase = 'normal' where id = 1 "
                            "returning id")  # fmt: skip
        before = export(pair.backup_db)
        master_uuid = pair.master_db.config("redundancy.database_uuid")
        create_user(pair.master, "4343")
        for _ in range(2):
            outcome = run(pair.backup, "from redundancy.follower import replication_pull; "
                                       "print(replication_pull().outcome)")  # fmt: skip
            assert outcome == "refused"
        assert export(pair.backup_db) == before
        events = pair.backup_db.events("replication")
        refusals = [message for _, message in events if "refused" in message]
        assert len(refusals) == 1
        assert master_uuid in refusals[0] and other in refusals[0]


# The backup's applying process stops dead in the middle of its second batch.
PULL_UNTIL_KILLED = """
import sys, time
from redundancy import follower as replication
from core.models import NodeState
NodeState.objects.filter(pk=1).update(phase="normal")
real, applied = replication._entry_apply, [0]
def slow(entry):
    applied[0] += 1
    if applied[0] == replication.BATCH_SIZE + 250:
        print("MID-APPLY", entry["seq"], flush=True)
        time.sleep(60)
    return real(entry)
replication._entry_apply = slow
replication.replication_pull()
print("NOT KILLED", flush=True)
"""


def test_a_backup_killed_while_applying_a_batch_converges_after_restart(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=40) as pair:
        pair.wait_paired()
        wait_until(lambda: caught_up(pair), timeout=20, what="backup in sync")
        pair.backup.kill()
        # More than one batch and a half: the applier is killed inside the second.
        run(pair.master, MIXED_CHANGES % {"seed": 11, "first": 6000, "count": 850})
        start = position(pair.backup_db)
        before = export(pair.backup_db)

        applier = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", PULL_UNTIL_KILLED],
            cwd=ROOT, env=pair.backup.environ("cli"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        marker = _wait_for_line(applier, "MID-APPLY", timeout=60)
        os.kill(applier.pid, signal.SIGKILL)
        applier.wait()
        # The first batch committed with its position; the second left no trace.
        assert position(pair.backup_db) == start + 500 and int(marker.split()[1]) > start + 500
        assert len(export(pair.backup_db)["users"]) != 0 and export(pair.backup_db) != before

        pair.backup.start()
        pair.backup.wait_ready()
        pair.wait_paired()
        wait_until(lambda: caught_up(pair), timeout=30, what="backup caught up after restart")
        assert export(pair.backup_db) == export(pair.master_db)
        extensions = [row[1] for row in export(pair.backup_db)["users"]]
        assert len(extensions) == len(set(extensions))
        assert not pair.backup_db.rows(
            "select 1 from core_event where kind = 'replication' and severity = 'error'"
        )


def _wait_for_line(proc: subprocess.Popen, text: str, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return line.strip()
    raise AssertionError(f"no {text!r} from the applying process:\n{''.join(seen)[-3000:]}")
