"""The license products and licensable features this firmware knows.

The two redundancy products are the seed's: 14075250 (master) and 14075260
(backup, which contains the ARI swap license). The seed names no product
number for user counts or other features; 14075200 (users) and 14075210
(features) are ours. Any code may also carry a user count and features, so a
redundancy license for a 500-user system can be a single code.

Feature bits are part of the license code format: a name keeps its bit forever.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MASTER_REDUNDANCY = 14075250
BACKUP_REDUNDANCY = 14075260
USER_LICENSE = 14075200
FEATURE_LICENSE = 14075210

MAX_USERS = 65535  # what a code can carry; the product is designed for 10,000


@dataclass(frozen=True)
class Product:
    number: int
    name: str
    short: str
    # The node type (redundancy.mode) this license is for; "" for any.
    mode: str = ""
    needs_users: bool = False
    needs_features: bool = False


PRODUCTS: dict[int, Product] = {
    p.number: p
    for p in (
        Product(
            MASTER_REDUNDANCY,
            "Software license for master KIRK Wireless Server 6000 redundancy",
            "master redundancy",
            mode="master",
        ),
        Product(
            BACKUP_REDUNDANCY,
            "Software license for backup KIRK Wireless Server 6000 redundancy "
            "(includes the ARI swap license)",
            "backup redundancy",
            mode="slave",
        ),
        Product(
            USER_LICENSE,
            "Software license for KIRK Wireless Server 6000 users",
            "users",
            needs_users=True,
        ),
        Product(
            FEATURE_LICENSE,
            "Software license for KIRK Wireless Server 6000 features",
            "features",
            needs_features=True,
        ),
    )
}

# The product a node type needs, and the node type each redundancy product is for.
REQUIRED_FOR_MODE = {"master": MASTER_REDUNDANCY, "slave": BACKUP_REDUNDANCY}
REDUNDANCY_PRODUCTS = frozenset(REQUIRED_FOR_MODE.values())

# Licensable features: name -> (bit in a code, description).
FEATURES: dict[str, tuple[int, str]] = {
    "messaging": (0, "messaging to handsets (MSF / XML-RPC)"),
    "location": (1, "handset location by base station"),
    "alarm": (2, "alarm handling (man-down, pull-cord)"),
    "sip-tls": (3, "SIP over TLS with SRTP"),
}
# Names that licensed_features() uses for itself; never a feature name.
RESERVED_NAMES = frozenset({"users", "redundancy"})
assert not RESERVED_NAMES & set(FEATURES)


class ProductError(ValueError):
    """A product number, user count or feature name that cannot be licensed; str() says why."""


def product_get(number: int) -> Product:
    try:
        return PRODUCTS[number]
    except KeyError:
        known = ", ".join(f"{p.number} ({p.short})" for p in PRODUCTS.values())
        raise ProductError(f"product {number} is not known; known products: {known}") from None


def product_label(number: int) -> str:
    """``14075260 (backup redundancy)``, or the bare number for an unknown product."""
    product = PRODUCTS.get(number)
    return f"{number} ({product.short})" if product else str(number)


def features_to_mask(names: tuple[str, ...] | list[str]) -> int:
    mask = 0
    for name in names:
        if name not in FEATURES:
            raise ProductError(
                f"feature {name!r} is not known; known features: {', '.join(sorted(FEATURES))}"
            )
        mask |= 1 << FEATURES[name][0]
    return mask


def features_from_mask(mask: int) -> tuple[str, ...]:
    """The feature names of a mask, sorted; ProductError for bits this firmware does not know."""
    names = tuple(sorted(name for name, (bit, _) in FEATURES.items() if mask & (1 << bit)))
    if mask != features_to_mask(names):
        raise ProductError(
            f"the code licenses features this firmware does not know (mask {mask:#06x}): "
            "update the firmware"
        )
    return names


def license_check(*, product: int, users: int, features: tuple[str, ...]) -> Product:
    """Check that a product, user count and features make a license; ProductError otherwise."""
    found = product_get(product)
    if not 0 <= users <= MAX_USERS:
        raise ProductError(f"a user count is 0 to {MAX_USERS}, not {users}")
    features_to_mask(features)
    if found.needs_users and users == 0:
        raise ProductError(f"product {product} ({found.short}) needs a user count (--users N)")
    if found.needs_features and not features:
        raise ProductError(f"product {product} ({found.short}) needs at least one feature")
    return found


def license_state(*, product: int, mode: str) -> tuple[str, str]:
    """Whether an installed license takes effect on a server of this node type, and a note.

    Returns ("active" | "waiting" | "inactive", note). A redundancy license is
    active on a server of its node type, waiting on a single server (it takes
    effect when the node type is set), inactive on a server of the other type.
    """
    found = PRODUCTS.get(product)
    if found is None or not found.mode:
        return "active", ""
    want = "master" if found.mode == "master" else "backup (slave)"
    if mode == found.mode:
        return "active", ""
    if mode == "single":
        return "waiting", f"takes effect when this server's node type is {want}"
    return "inactive", f"this server is not a {want}, so this license does not apply here"
