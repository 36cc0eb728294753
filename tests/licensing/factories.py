"""A test vendor: its own Ed25519 key pair, issuing codes as ``kwslicense issue`` does."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensing import codes
from licensing.products import MASTER_REDUNDANCY

OWN_ARI = "10A3F2C5"
OTHER_ARI = "1B22C001"
PAIRING_SECRET = "a-pairing-secret-of-some-length"

_serials = itertools.count(0x1000)


@dataclass
class Vendor:
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_text(self) -> str:
        return codes.public_key_text(self.private_key.public_key())

    def issue(
        self,
        *,
        ari: str = OWN_ARI,
        product: int = MASTER_REDUNDANCY,
        users: int = 0,
        features: tuple[str, ...] = (),
        serial: int | None = None,
        issued: date = date(2025, 1, 15),
    ) -> str:
        return codes.code_issue(
            private_key=self.private_key,
            ari=ari,
            product=product,
            issued=issued,
            serial=next(_serials) if serial is None else serial,
            users=users,
            features=features,
        )


def node_setup(*, ari: str = OWN_ARI, mode: str = "single") -> None:
    """This node with an ARI and a node type (a paired type gets a peer and a secret)."""
    from kws_admin.services import config_update

    changes = {"system.ari": ari, "redundancy.mode": mode}
    if mode != "single":
        changes.update({"redundancy.peer": "10.0.0.2", "redundancy.secret": PAIRING_SECRET})
    config_update(changes=changes, actor="test")
