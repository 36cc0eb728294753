"""The order request: the text an administrator sends to the vendor for redundancy licenses.

The seed's rules it carries: the master needs 14075250 and the backup
14075260, each ordered with the ARI of the server it is for; both servers need
the same licensed features (a 500 user license on the master means a 500 user
license on the backup); and when an existing single server is upgraded to a
pair, the order names the existing server's ARI and the new backup's ARI, with
the warning of what a code generated for the wrong server costs.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from licensing import products

UPGRADE_WARNING = (
    "Make sure the master redundancy license code is not generated for the wrong server. "
    "The backup's ARI is changed to the master's (ARI swap), and after the licenses have "
    "activated the whole redundant system refers to the master's ARI. If the codes are "
    "generated for the wrong servers, all handsets must be subscribed again and the master "
    "server must be configured again from scratch."
)


@dataclass(frozen=True)
class OrderRequest:
    """What the administrator asks for. ARIs are canonical (licensing.ari.ari_parse)."""

    master_ari: str
    backup_ari: str
    # An existing single server becomes the master; the backup is a new server.
    upgrade: bool = False
    # The user count both servers need (0: no user license asked for).
    users: int = 0
    features: tuple[str, ...] = ()
    reference: str = ""


@dataclass(frozen=True)
class OrderLine:
    product: int
    description: str
    # Already licensed on that server (as far as known): listed, not ordered.
    installed: bool = False


@dataclass(frozen=True)
class ServerOrder:
    role: str
    title: str
    ari: str
    lines: list[OrderLine] = field(default_factory=list)

    @property
    def ordered(self) -> list[OrderLine]:
        return [line for line in self.lines if not line.installed]


def order_check(request: OrderRequest) -> dict[str, str]:
    """Rules of an order, by form field; empty when it can be sent."""
    errors: dict[str, str] = {}
    if request.master_ari and request.master_ari == request.backup_ari:
        errors["backup_ari"] = (
            f"the master and the backup both have ARI {request.master_ari}: every server has its "
            "own ARI and each code is bound to one; read the backup's ARI on its Licenses page"
        )
    if not 0 <= request.users <= products.MAX_USERS:
        errors["users"] = f"a user count is 0 to {products.MAX_USERS}"
    return errors


def _lines(role: str, request: OrderRequest, licensed: Mapping[str, Any]) -> list[OrderLine]:
    redundancy = products.REQUIRED_FOR_MODE[role]
    lines = [
        OrderLine(
            redundancy,
            products.PRODUCTS[redundancy].name,
            installed=bool(licensed.get("redundancy")),
        )
    ]
    if request.users:
        have = licensed.get("users") or 0
        lines.append(
            OrderLine(
                products.USER_LICENSE,
                f"{products.PRODUCTS[products.USER_LICENSE].name}: {request.users} users",
                installed=isinstance(have, int) and have >= request.users,
            )
        )
    for name in request.features:
        lines.append(
            OrderLine(
                products.FEATURE_LICENSE,
                f"{products.PRODUCTS[products.FEATURE_LICENSE].name}: {name} "
                f"({products.FEATURES[name][1]})",
                installed=bool(licensed.get(name)),
            )
        )
    return lines


def order_servers(
    request: OrderRequest,
    *,
    master_licensed: Mapping[str, Any] | None = None,
    backup_licensed: Mapping[str, Any] | None = None,
) -> list[ServerOrder]:
    """The products to order for each server, master first.

    ``*_licensed`` are what each server is known to have already, in the
    shape of ``licensed_features()`` ("redundancy" meaning the redundancy
    license of that server's role); what a server has is listed but not
    ordered again.
    """
    master_title = "Master server" + (" (the existing server)" if request.upgrade else "")
    backup_title = "Backup server" + (" (the NEW server)" if request.upgrade else "")
    return [
        ServerOrder("master", master_title, request.master_ari,
                    _lines("master", request, master_licensed or {})),
        ServerOrder("slave", backup_title, request.backup_ari,
                    _lines("slave", request, backup_licensed or {})),
    ]  # fmt: skip


def order_text(request: OrderRequest, *, servers: list[ServerOrder], today: date) -> str:
    """The order request as plain text, ready to copy into an e-mail or attach."""
    out = [
        "KIRK Wireless Server 6000 - license order request",
        f"Date: {today.isoformat()}",
    ]
    if request.reference:
        out.append(f"Reference: {request.reference}")
    out += [
        "",
        "Situation: "
        + (
            "upgrade of an existing single server to a redundant pair (master and a new backup)"
            if request.upgrade
            else "redundant pair (master and backup)"
        ),
        "Please generate each license code for the ARI code given with it: a code is bound to "
        "the ARI of one server.",
    ]
    for server in servers:
        out += ["", f"{server.title}: ARI {server.ari}"]
        for line in server.lines:
            note = "  (already installed, not ordered)" if line.installed else ""
            out.append(f"  {line.product}  {line.description}{note}")
        if not server.ordered:
            out.append("  nothing to order for this server")
    out += [
        "",
        "Both servers must have the same licensed features and user count: a backup with "
        "other licenses than the master is rejected when it connects.",
    ]
    if request.upgrade:
        out += ["", f"Important: {UPGRADE_WARNING}"]
    return "\n".join(out) + "\n"


def order_filename(request: OrderRequest) -> str:
    return f"kws-license-order-{request.master_ari}-{request.backup_ari}.txt"
