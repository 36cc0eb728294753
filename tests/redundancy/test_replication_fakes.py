"""A master in memory for the replication tests, and proof that it answers like the real one.

``FakeMaster`` serves ``/api/peer/changes`` and ``/api/peer/snapshot`` from a
list of entries and counts the requests; the tests below check that its
answers have the shape of ``changes_page`` and ``snapshot_build``.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from core.assignment import Assignment
from core.models import ConfigValue, NodeState, Phase
from core.peer import PeerError
from users import ipei

SECRET = "pairing-secret-0123456789"
UUID = "11111111-2222-4333-8444-555555555555"


def _configure(values: dict[str, str]) -> None:
    # Stored directly: these tests are about replication, not about the rules (and
    # licenses) a change of node type goes through in config_update.
    for key, value in values.items():
        ConfigValue.objects.update_or_create(key=key, defaults={"value": value})


# The master holds slot A and the backup slot B, and both serve their halves: NODE M is
# home A, NODE S home B (core.assignment).
HOME = {"M": "A", "S": "B"}


def halves_served(slot: str) -> None:
    """This node's engine has just decided: the pair serves each user on its home."""
    NodeState.objects.update_or_create(
        pk=1,
        defaults={"slot": slot, "assignment": Assignment(1, True, "AB").as_dict(),
                  "registering": slot, "last_tick": timezone.now()},
    )  # fmt: skip


def become_master() -> None:
    _configure({"redundancy.mode": "master", "redundancy.peer": "127.0.0.1:9",
                "redundancy.secret": SECRET, "redundancy.database_uuid": UUID})  # fmt: skip
    halves_served("A")


def become_backup(*, database_uuid: str = UUID, phase: str = Phase.NORMAL) -> None:
    _configure({"redundancy.mode": "slave", "redundancy.peer": "127.0.0.1:9",
                "redundancy.secret": SECRET,
                "redundancy.database_uuid": database_uuid})  # fmt: skip
    NodeState.objects.update_or_create(pk=1, defaults={"phase": phase})
    halves_served("B")


def user_row(pk: int, extension: str | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "id": pk,
        "extension": extension or str(3000 + pk),
        "display_name": f"User {pk}",
        "ipei": ipei.make(3180, 500000 + pk),
        "access_code": "1234",
        "sip_username": str(3000 + pk),
        "sip_password": f"pw{pk}",
        "subscription": "subscribed",
        "home": "A",
        **overrides,
    }


@dataclass
class FakeMaster:
    """The master's side of the peer API, in memory. Entries are applied to its own
    table of users so a snapshot is the state at ``head``."""

    database_uuid: str = UUID
    log_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    entries: list[dict[str, Any]] = field(default_factory=list)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    admins: dict[str, dict[str, Any]] = field(default_factory=dict)
    head: int = 0
    requests: list[str] = field(default_factory=list)
    down: bool = False

    def add(self, entity: str, op: str, key: str, data: Any) -> int:
        self.head += 1
        self.entries.append({"seq": self.head, "created": "2026-11-25T12:00:00+00:00",
                             "entity": entity, "op": op, "key": key, "data": data})  # fmt: skip
        if entity == "user" and op == "upsert":
            self.users[data["id"]] = copy.deepcopy(data)
        elif entity == "user" and op == "delete":
            self.users.pop(int(key), None)
        elif entity == "user_assignment":
            pass  # an older version's entry: applied as nothing
        elif entity == "admin_account" and op == "upsert":
            self.admins[key] = copy.deepcopy(data)
        elif entity == "admin_account" and op == "delete":
            self.admins.pop(key, None)
        return self.head

    def upsert(self, pk: int, **overrides: Any) -> int:
        return self.add("user", "upsert", str(pk), user_row(pk, **overrides))

    def delete(self, pk: int) -> int:
        return self.add("user", "delete", str(pk), {})

    def trim(self, through: int) -> None:
        self.entries = [e for e in self.entries if e["seq"] > through]

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        self.requests.append(path)
        if self.down:
            raise PeerError("peer 127.0.0.1:9 unreachable: connection refused")
        url = urlsplit(path)
        if url.path == "/api/peer/changes":
            query = parse_qs(url.query)
            after, limit = int(query["after"][0]), int(query["limit"][0])
            page = [e for e in self.entries if e["seq"] > after][:limit]
            return copy.deepcopy({"database_uuid": self.database_uuid, "log_id": self.log_id,
                                  "head": self.head, "entries": page})  # fmt: skip
        if url.path == "/api/peer/snapshot":
            return copy.deepcopy({
                "database_uuid": self.database_uuid, "log_id": self.log_id, "head": self.head,
                "entities": {"user": sorted(self.users.values(), key=lambda u: u["id"]),
                             "admin_account": list(self.admins.values())},
            })  # fmt: skip
        raise AssertionError(f"unexpected request {method} {path}")

    def snapshots_served(self) -> int:
        return sum(1 for path in self.requests if path == "/api/peer/snapshot")


# --- The fake answers like the real master ------------------------------------


@pytest.mark.django_db
def test_the_fake_master_answers_with_the_real_masters_shape():
    from core.changelog import snapshot_build
    from redundancy.durability import changes_page
    from users.services import dect_user_create

    become_master()
    dect_user_create(actor="test", extension="3001", ipei=ipei.make(3180, 500001))
    real_page, real_snapshot = changes_page(after=0), snapshot_build()
    fake = FakeMaster()
    fake.upsert(1)
    fake_page = fake.call("GET", "/api/peer/changes?after=0&limit=500")
    fake_snapshot = fake.call("GET", "/api/peer/snapshot")

    assert set(fake_page) == set(real_page)
    assert set(fake_page["entries"][0]) == set(real_page["entries"][0])
    assert set(fake_page["entries"][0]["data"]) == set(real_page["entries"][0]["data"])
    assert set(fake_snapshot) == set(real_snapshot)
    assert set(fake_snapshot["entities"]["user"][0]) == set(real_snapshot["entities"]["user"][0])
