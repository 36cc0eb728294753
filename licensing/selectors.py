"""Reads of the licensing app: licensed features, the ARIs, and what a node type needs.

The redundancy engine and the Users list call these; the rules they apply
live in the pure modules (``licensing.products``, ``licensing.ari``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from core import config
from core.models import NodeState
from core.selectors import config_read
from licensing import products
from licensing.ari import SystemAri, ari_fields, system_ari_decide
from licensing.codes import LicenseRefused, public_key_load
from licensing.config import SYSTEM_ARI_KEY
from licensing.models import License


def licensed_features() -> dict[str, Any]:
    """This server's licensed features, as the heartbeat carries them and join compares them.

    ``{"redundancy": True, "users": 500, "messaging": True}``: ``redundancy``
    when a redundancy license (14075250 or 14075260) is installed, so a master
    and its backup compare equal; ``users`` the licensed user count (the
    largest user count of the installed codes); one key per licensed feature.
    Keys are absent when not licensed, so a server without licenses gives
    ``{}``. One query.
    """
    features: dict[str, Any] = {}
    for product, users, names in License.objects.values_list("product", "users", "features"):
        if product in products.REDUNDANCY_PRODUCTS:
            features["redundancy"] = True
        if users:
            features["users"] = max(users, features.get("users", 0))
        for name in names:
            features[name] = True
    return features


def licensed_user_count() -> int | None:
    """How many users the licenses allow, or None when no installed code has a user count.

    A code names the user count of the server ("a 500 user license"), so with
    several codes the largest counts: an upgrade is a new code for the new
    total. None means no user license is installed and no limit applies.
    """
    return License.objects.filter(users__gt=0).aggregate(most=Max("users"))["most"]


def user_limit_message(*, users_after: int) -> str:
    """'' when this many users fit the licensed user count, else why not (for the Users list)."""
    limit = licensed_user_count()
    if limit is None or users_after <= limit:
        return ""
    return (
        f"the licenses of this server allow {limit} users and this would make {users_after}: "
        f"order a user license ({products.USER_LICENSE}) for more users on the Licenses page"
    )


def redundancy_license_missing(mode: str) -> str:
    """'' when this server has the license its node type needs, else what to order.

    Master needs 14075250 and backup (``slave``) 14075260, each for this
    server's own ARI (codes are refused for any other ARI, so every installed
    code is bound to it). A single server needs none.
    """
    needed = products.REQUIRED_FOR_MODE.get(mode)
    if needed is None or License.objects.filter(product=needed).exists():
        return ""
    ari = own_ari() or "(none yet)"
    return (
        f"node type {config.MODE_LABELS.get(mode, mode)} needs license "
        f"{products.product_label(needed)} for this server's ARI {ari}: order it "
        "(Licenses page, order request) and install the code on this server"
    )


def own_ari() -> str:
    """This server's own ARI (``system.ari``), '' before one is generated or set."""
    return config_read()["system.ari"]


def system_ari_status(values: dict[str, Any] | None = None) -> SystemAri:
    """This server's own ARI, the system ARI and the ARI it acts under, with the reason.
    ``values`` is this server's configuration if the caller has just read it."""
    values = values or config_read()
    mode = values["redundancy.mode"]
    subscribed = values[SYSTEM_ARI_KEY]
    if mode != "slave" and (not subscribed or subscribed == values["system.ari"]):
        # The common case needs no query: the server's own ARI is the system ARI.
        return system_ari_decide(
            own=values["system.ari"], subscribed=subscribed, mode=mode, swap_license=False,
            phase="", peer_mode="", peer_ari="",
        )  # fmt: skip
    state = NodeState.load()
    claims = (state.peer_status or {}).get("claims") or {}
    return system_ari_decide(
        own=values["system.ari"],
        subscribed=subscribed,
        mode=mode,
        swap_license=License.objects.filter(product=products.BACKUP_REDUNDANCY).exists(),
        phase=state.phase,
        peer_mode=str(claims.get("mode") or ""),
        peer_ari=str(claims.get("ari") or ""),
    )


def system_ari() -> str:
    """The ARI the system refers to: the master's on a backup with the ARI swap, else our own."""
    return system_ari_status().system


@dataclass(frozen=True)
class LicenseRow:
    """One installed license as the Licenses page and ``kwslicense list`` show it."""

    product: int
    product_name: str
    users: int
    features: tuple[str, ...]
    issued: date
    serial: str
    state: str
    note: str
    code: str


def license_rows(*, mode: str | None = None, ari: SystemAri | None = None) -> list[LicenseRow]:
    """The installed licenses with their state on a server of this node type (and, with
    ``ari``, the backup license's ARI swap in use on a server that is no backup)."""
    if mode is None:
        mode = config_read()["redundancy.mode"]
    rows = []
    for lic in License.objects.all():
        product = products.PRODUCTS.get(lic.product)
        state, note = products.license_state(product=lic.product, mode=mode)
        if lic.product == products.BACKUP_REDUNDANCY and ari and ari.swapped and mode != "slave":
            state, note = (
                "active",
                (
                    f"its ARI swap lets this server act under the system ARI {ari.system}; "
                    "keep it installed"
                ),
            )
        rows.append(
            LicenseRow(
                product=lic.product,
                product_name=product.name if product else "unknown product",
                users=lic.users,
                features=tuple(lic.features),
                issued=lic.issued,
                serial=lic.serial_text,
                state=state,
                note=note,
                code=lic.code,
            )
        )
    return rows


def vendor_key_problem() -> str:
    """'' when the vendor public key setting can check codes, else what is wrong with it."""
    try:
        public_key_load(settings.LICENSE_PUBLIC_KEY)
    except LicenseRefused as exc:
        return exc.message
    return ""


@dataclass(frozen=True)
class LicensesOverview:
    """Everything the Licenses page and ``kwslicense list`` show."""

    mode: str
    ari: SystemAri
    # The own ARI's fields ("class B, EIC 0A3F, FPN 2C, FPS 5"), '' without an ARI.
    ari_fields: str
    rows: list[LicenseRow]
    user_count: int | None
    features: dict[str, Any]
    missing: str
    key_problem: str


def licenses_overview() -> LicensesOverview:
    mode = config_read()["redundancy.mode"]
    ari = system_ari_status()
    return LicensesOverview(
        mode=mode,
        ari=ari,
        ari_fields=ari_fields(ari.own).describe() if ari.own else "",
        rows=license_rows(mode=mode, ari=ari),
        user_count=licensed_user_count(),
        features=licensed_features(),
        missing=redundancy_license_missing(mode),
        key_problem=vendor_key_problem(),
    )


def peer_claims_now() -> dict[str, Any]:
    """What the peer said of itself, only while it answers heartbeats (within the detection
    window): a server that has gone (erased, replaced) is not named as if it existed."""
    state = NodeState.load()
    if state.peer_seen_at is None:
        return {}
    if (timezone.now() - state.peer_seen_at).total_seconds() > settings.DETECTION_WINDOW:
        return {}
    return dict((state.peer_status or {}).get("claims") or {})


def order_initial() -> dict[str, Any]:
    """The order form as this server can fill it: its own ARI in its role, and the peer's
    while the peer answers (never the ARI of a server that is gone)."""
    mode = config_read()["redundancy.mode"]
    own = own_ari()
    peer = str(peer_claims_now().get("ari") or "")
    if mode == "slave":
        master, backup = peer, own
    else:
        master, backup = own, peer
    features = licensed_features()
    return {
        "situation": "upgrade" if mode == "single" else "pair",
        "master_ari": master,
        "backup_ari": backup,
        "users": features.get("users"),
        "features": sorted(name for name in features if name in products.FEATURES),
    }


def order_known_licenses(*, role: str, ari: str) -> dict[str, Any]:
    """What the server with this ARI is known to have, for the order (``{}`` if unknown).

    This server knows its own licenses; of the peer we know what its last
    heartbeat said. "redundancy" means the redundancy license of ``role``.
    """
    if ari and ari == own_ari():
        known = licensed_features()
        needed = products.REQUIRED_FOR_MODE[role]
        known["redundancy"] = License.objects.filter(product=needed).exists()
        return known
    claims = peer_claims_now()
    if ari and ari == claims.get("ari"):
        known = dict(claims.get("features") or {})
        if claims.get("mode") != role:
            known.pop("redundancy", None)
        return known
    return {}
