"""Which server handles which user: one versioned decision both servers converge on.

Pure: no Django, no I/O.

Each user has a **home**, one of the pair's two **slots** (``A`` and ``B``), chosen
at random once, when the user is created, and kept: across restarts, blips, role
swaps and upgrades. Each server holds one slot: the first master ``A``, its backup
the other one; a server keeps its slot when its role changes (a promotion, a
switchover), and a server that joins takes the slot its master does not hold.

The **assignment** says which slots serve now: both (``AB``: every user on its
home server, half each, as the application note's NODE column shows) or one (the
survivor of a failure serves every user). It carries an **epoch** that every
change raises, and who decided it, so the two servers always agree on the newest
one: each adopts a newer assignment from the peer's heartbeat, the survivor of a
failure raises the epoch when it takes over, and the master raises it again to
give the users back once the pair is whole. A server registers exactly the users
it owns under the newest assignment it knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SLOTS = ("A", "B")
BOTH = "AB"


def other_slot(slot: str) -> str:
    return "B" if slot == "A" else "A"


@dataclass(frozen=True, order=True)
class Assignment:
    """``serving``: ``AB`` or the one slot that serves every user. ``by_master``: the
    master decided it, which wins over the backup's decision of the same epoch (the
    two can only decide one at once when they lost each other)."""

    epoch: int = 0
    by_master: bool = True
    serving: str = BOTH

    def owner(self, home: str) -> str:
        """The slot that handles a user whose home is ``home``."""
        return home if self.serving == BOTH else self.serving

    def serves(self, slot: str) -> bool:
        return slot in self.serving

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Assignment | None:
        """An assignment from a heartbeat or the database; None if it is not one."""
        if not isinstance(data, dict):
            return None
        epoch, serving, by_master = data.get("epoch"), data.get("serving"), data.get("by_master")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            return None
        if serving not in (BOTH, *SLOTS) or not isinstance(by_master, bool):
            return None
        return cls(epoch=epoch, by_master=by_master, serving=serving)

    def describe(self) -> str:
        who = "both servers" if self.serving == BOTH else f"slot {self.serving} alone"
        return f"epoch {self.epoch}: {who}"


def newest(*assignments: Assignment | None) -> Assignment:
    """The newest of the known assignments (a later epoch; the master's of the same)."""
    known = [a for a in assignments if a is not None]
    return max(known) if known else Assignment()


def home_for_new(counts: dict[str, int], coin: float) -> str:
    """The home of a user created now: the slot with fewer users, so the split stays
    within one user of 50/50; a tie is decided by ``coin`` (a random number in [0, 1))."""
    a, b = counts.get("A", 0), counts.get("B", 0)
    if a != b:
        return "A" if a < b else "B"
    return "A" if coin < 0.5 else "B"
