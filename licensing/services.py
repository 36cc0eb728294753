"""Writes of the licensing app: install a license code, give a server its ARI.

Licenses are node-local: each server installs the codes bound to its own ARI,
even a backup whose other configuration is locked. Nothing here writes the
replication change log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from core import config
from core.audit import audit_record
from core.locks import write_check
from core.models import ConfigValue
from core.rules import Scope
from core.selectors import config_read, peer_claims
from core.services import config_update, event_record
from licensing import codes, products
from licensing.ari import ari_generate
from licensing.codes import LicenseRefused
from licensing.config import SYSTEM_ARI_KEY
from licensing.models import License
from licensing.selectors import redundancy_license_missing
from licensing.signals import system_ari_changed

logger = logging.getLogger(__name__)

ARI_KEY = "system.ari"


def license_install(*, text: str, actor: str) -> License:
    """Check one license code and install it on this server, all or nothing.

    Raises LicenseRefused, whose ``cause`` and message name why, and writes
    nothing: garbage (not a code), forged (signature does not match: altered
    or not from the vendor), no_key / bad_key (the vendor public key setting),
    format / unknown_product (not for this firmware), no_ari (this server has
    no ARI yet), other_ari (the code is for another server), installed (a code
    with this serial is installed already), role (a backup redundancy code on
    a master, or a master redundancy code on a backup). Raises
    core.locks.Locked during a failover, when nothing may change.
    On success records a ``license`` event.
    """
    write_check(Scope.LOCAL)
    key = codes.public_key_load(settings.LICENSE_PUBLIC_KEY)
    code = codes.code_verify(text, key)
    with transaction.atomic():
        # Hold the ARI row so it cannot change while a code is bound to it.
        list(ConfigValue.objects.select_for_update().filter(key=ARI_KEY))
        values = config_read()
        _install_check(code, own=values[ARI_KEY], mode=values["redundancy.mode"])
        try:
            with transaction.atomic():
                installed = License.objects.create(
                    code=code.text,
                    serial=code.serial,
                    ari=code.ari,
                    product=code.product,
                    users=code.users,
                    features=list(code.features),
                    issued=code.issued,
                    installed_by=actor,
                )
        except IntegrityError:
            raise _already_installed(code) from None
        event_record(kind="license", message=f"License installed: {_describe(code)}", actor=actor)
        audit_record(
            kind="license",
            object_id=installed.serial_text,
            object_repr=str(installed),
            action="installed",
            summary=f"License installed: {_describe(code)}",
            after={
                "product": products.product_label(code.product),
                "serial": installed.serial_text,
                "ari": code.ari,
                "users": code.users,
                "features": list(code.features),
                "issued": str(code.issued),
            },
            actor=actor,
        )
    return installed


def _install_check(code: codes.LicenseCode, *, own: str, mode: str) -> None:
    if not own:
        raise LicenseRefused(
            "no_ari",
            "this server has no ARI yet, so no code can be bound to it: run manage.py kwsinit "
            "or set system.ari",
        )
    if code.ari != own:
        raise LicenseRefused(
            "other_ari",
            f"this code is for the server with ARI {code.ari}, not for this server (ARI {own}): "
            f"install it on the server with ARI {code.ari}, or order a code for ARI {own}",
        )
    if License.objects.filter(serial=code.serial).exists():
        raise _already_installed(code)
    product = products.PRODUCTS[code.product]
    if product.mode and mode != "single" and mode != product.mode:
        here = config.MODE_LABELS[mode].lower()
        meant = config.MODE_LABELS[product.mode].lower()
        needed = products.REQUIRED_FOR_MODE[mode]
        raise LicenseRefused(
            "role",
            f"license {products.product_label(code.product)} is for a {meant} server, and this "
            f"server is configured as {here}: install it on the {meant}; this server needs "
            f"{products.product_label(needed)}",
        )


def _already_installed(code: codes.LicenseCode) -> LicenseRefused:
    return LicenseRefused(
        "installed",
        f"this code is already installed (license {products.product_label(code.product)}, "
        f"serial {code.serial_text})",
    )


def _describe(code: codes.LicenseCode) -> str:
    parts = [products.product_label(code.product), f"serial {code.serial_text}"]
    if code.users:
        parts.append(f"{code.users} users")
    if code.features:
        parts.append("features " + ", ".join(code.features))
    return f"{', '.join(parts)} for ARI {code.ari}"


def ari_ensure(*, actor: str) -> str:
    """Give this server an ARI when it has none (installation). Returns the new ARI, or ''.

    The ARI is random (licensing.ari.ari_generate) and differs from the peer's
    when the peer has told its ARI.
    """
    if config_read()[ARI_KEY]:
        return ""
    peer_ari = str(peer_claims().get("ari") or "")
    ari = ari_generate(avoid={peer_ari})
    config_update(changes={ARI_KEY: ari}, actor=actor)
    logger.info("ARI generated: %s", ari)
    return ari


def ari_bound_check(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """A configuration check: ``system.ari`` cannot change once a license code is bound
    to it (config.ConfigError). Registered with core, so ``kwsconfig set``, imports and
    forms all stop here."""
    if old[ARI_KEY] == new[ARI_KEY]:
        return []
    count = License.objects.count()
    if count:
        raise config.ConfigError(
            {
                ARI_KEY: f"cannot be changed: {count} installed license code"
                f"{'s are' if count > 1 else ' is'} bound to this server's ARI "
                f"{old[ARI_KEY] or '(none)'}, and codes for another ARI are refused"
            }
        )
    return []


ROLE_LICENSE_CHECK = "licensing.role_license"
ARI_BOUND_CHECK = "licensing.ari_bound"
SYSTEM_ARI_FIXED_CHECK = "licensing.system_ari_fixed"


def system_ari_fixed_check(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """A configuration check: the system ARI, once recorded, changes only by the explicit
    action (``system_ari_change``), never as a side effect of a form, an import or
    ``kwsconfig set``: every handset is subscribed to it."""
    before, after = old[SYSTEM_ARI_KEY], new[SYSTEM_ARI_KEY]
    if not before or before == after:
        return []
    raise config.ConfigError(
        {
            SYSTEM_ARI_KEY: f"is {before}, the ARI every handset is subscribed to: change it "
            "only with 'Change the system ARI' on the Licenses page (kwslicense system-ari), "
            "and re-subscribe every handset after"
        }
    )


def system_ari_adopt(*, actor: str, ari: str = "") -> str:
    """Record the system ARI where none is recorded yet: ``ari`` (the master's, at a
    promotion), else this server's own. Only a master or single server records it (a
    replicated write); a backup receives it from its master. Returns what was recorded,
    or ''."""
    values = config_read()
    if values[SYSTEM_ARI_KEY] or values["redundancy.mode"] == "slave":
        return ""
    ari = ari or values[ARI_KEY]
    if not ari:
        return ""
    config_update(changes={SYSTEM_ARI_KEY: ari}, actor=actor, skip_write_check=True)
    logger.info("System ARI recorded: %s", ari)
    return ari


def system_ari_change(*, ari: str, actor: str) -> str:
    """The administrator's explicit change of the system ARI (on a master or single
    server). Every handset subscribed to the old one must be re-subscribed: the event
    says so. Returns the new system ARI; ConfigError for a bad ARI, Locked on a backup
    or during a failover."""
    values = config_read()
    if values["redundancy.mode"] == "slave":
        raise config.ConfigError(
            {SYSTEM_ARI_KEY: "is the master's: change it on the master, the backup follows"}
        )
    old = values[SYSTEM_ARI_KEY] or values[ARI_KEY]
    with transaction.atomic():
        change = config_update(
            changes={SYSTEM_ARI_KEY: ari}, actor=actor, skip_checks={SYSTEM_ARI_FIXED_CHECK}
        )
        new = config_read()[SYSTEM_ARI_KEY]
        if change.changed:
            system_ari_changed.send(sender=__name__, old=old, new=new, actor=actor)
            event_record(
                kind="license",
                message=f"System ARI changed from {old or '(none)'} to {new} by {actor}: every "
                "handset subscribed to the old ARI must be re-subscribed",
                severity="warning",
                actor=actor,
            )
            audit_record(
                kind="scenario",
                object_id="system_ari_change",
                object_repr="system ARI change",
                action="system ARI change",
                summary=f"System ARI changed from {old or '(none)'} to {new}: every handset "
                "subscribed to the old ARI must be re-subscribed.",
                before={SYSTEM_ARI_KEY: old},
                after={SYSTEM_ARI_KEY: new},
                actor=actor,
            )
    return new


def role_license_check(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """A configuration check on a change of the node type: a master or backup needs a
    redundancy license (14075250 master, 14075260 backup).

    A server without any is refused, naming the product to order. A server that
    holds the other role's license may still take this role, as the note's
    administration scenarios need (the promoted backup leads; the repaired
    master rejoins as backup before the roles swap back): it gets a note saying
    which product to order to keep the role for good. Promotion and switchover
    skip this check (``ROLE_LICENSE_CHECK``): they keep the licenses the server has.
    """
    mode = new["redundancy.mode"]
    if mode == old["redundancy.mode"]:
        return []
    missing = redundancy_license_missing(mode)
    if not missing:
        return []
    if not License.objects.filter(product__in=products.REDUNDANCY_PRODUCTS).exists():
        raise config.ConfigError({"redundancy.mode": missing})
    return [f"This server holds the other role's redundancy license: {missing}."]


def node_licenses_setup(*, codes_text: Iterable[str], actor: str) -> list[str]:
    """Installation (kwsinit): make sure the server has an ARI, then install codes.

    A code that is already installed is skipped, so kwsinit can be re-run;
    any other refusal raises LicenseRefused. Returns notes for the admin.
    """
    notes = []
    generated = ari_ensure(actor=actor)
    if generated:
        notes.append(f"ARI generated: {generated}.")
    adopted = system_ari_adopt(actor=actor)
    if adopted:
        notes.append(f"System ARI: {adopted} (handsets subscribe to it).")
    for text in codes_text:
        try:
            installed = license_install(text=text, actor=actor)
        except LicenseRefused as exc:
            if exc.cause != "installed":
                raise
            notes.append(f"License skipped: {exc.message}.")
        else:
            notes.append(f"License installed: {installed}.")
    return notes
