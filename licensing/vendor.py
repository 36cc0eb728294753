"""The vendor's side for the demo, the tests and the benchmarks: a key pair and the
license codes a redundant pair needs (the real vendor keeps its key elsewhere)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensing import codes, products

KEY_FILE = "vendor.key"


@dataclass(frozen=True)
class Vendor:
    private_key: Ed25519PrivateKey
    public_key: str  # KWS_LICENSE_PUBLIC_KEY's form

    @classmethod
    def create(cls) -> Vendor:
        pem, public = codes.keypair_generate()
        return cls(codes.private_key_load(pem), public)

    @classmethod
    def in_folder(cls, folder: Path) -> Vendor:
        """The key pair kept in ``folder`` (made there the first time)."""
        path = folder / KEY_FILE
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            pem, _ = codes.keypair_generate()
            path.write_bytes(pem)
            path.chmod(0o600)
        key = codes.private_key_load(path.read_bytes())
        return cls(key, codes.public_key_text(key.public_key()))

    def issue(
        self, *, ari: str, product: int, users: int = 0, features: tuple[str, ...] = ()
    ) -> str:
        return codes.code_issue(
            private_key=self.private_key,
            ari=ari,
            product=product,
            issued=date.today(),
            serial=secrets.randbelow(1 << 32),
            users=users,
            features=features,
        )

    def server_codes(self, *, ari: str, mode: str, users: int) -> list[str]:
        """The codes one server of a pair needs: its redundancy license and a user license."""
        found = [self.issue(ari=ari, product=products.REQUIRED_FOR_MODE[mode])]
        if users:
            found.append(self.issue(ari=ari, product=products.USER_LICENSE, users=users))
        return found
