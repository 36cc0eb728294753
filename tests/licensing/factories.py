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


# The vendor the node under test trusts (set by the ``trusted`` fixture).
TRUSTED: list[Vendor] = []


def node_setup(*, ari: str = OWN_ARI, mode: str = "single", licensed: bool = True) -> None:
    """This node with an ARI and a node type (a paired type gets a peer and a secret).

    A master or backup first gets the license its node type needs, as an
    administrator must install it before saving the node type. ``licensed=False``
    makes a node that lost its license since (its rows written directly)."""
    from core.models import ConfigValue
    from core.services import config_update
    from licensing.products import REQUIRED_FOR_MODE
    from licensing.services import license_install

    config_update(changes={"system.ari": ari}, actor="test")
    if mode == "single":
        return
    if not licensed:
        rows = {"redundancy.mode": mode, "redundancy.peer": "10.0.0.2",
                "redundancy.secret": PAIRING_SECRET}  # fmt: skip
        for key, value in rows.items():
            ConfigValue.objects.update_or_create(key=key, defaults={"value": value})
        return
    license_install(text=TRUSTED[-1].issue(ari=ari, product=REQUIRED_FOR_MODE[mode]), actor="test")
    config_update(
        changes={"redundancy.mode": mode, "redundancy.peer": "10.0.0.2",
                 "redundancy.secret": PAIRING_SECRET},
        actor="test",
    )  # fmt: skip
