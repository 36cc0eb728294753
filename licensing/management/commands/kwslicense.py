"""Vendor key pair and license codes (vendor side); install and list this server's licenses."""

from __future__ import annotations

import os
import re
import secrets
import sys
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core import config
from core.locks import Locked
from licensing import codes, products
from licensing.codes import LicenseRefused
from licensing.selectors import licenses_overview
from licensing.services import license_install, system_ari_change

KEY_FILE = "vendor.key"
PUBLIC_FILE = "vendor.pub"
ACTOR = "kwslicense"


def _refused(message: str) -> CommandError:
    return CommandError(f"refused, nothing changed: {message}")


class Command(BaseCommand):
    help = "Make a vendor key pair, issue license codes, install and list this server's licenses."
    # keygen and issue are the vendor's and need no database; install and list check it anyway.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        keygen = sub.add_parser(
            "keygen", help=f"make a vendor key pair: DIR/{KEY_FILE} (private) and DIR/{PUBLIC_FILE}"
        )
        keygen.add_argument("--out", required=True, metavar="DIR")
        issue = sub.add_parser("issue", help="print a license code signed with the vendor key")
        issue.add_argument("--key", required=True, metavar="FILE", help=f"the vendor's {KEY_FILE}")
        issue.add_argument("--ari", required=True, help="the ARI of the server the code is for")
        issue.add_argument(
            "--product",
            required=True,
            type=int,
            help=", ".join(f"{p.number} {p.short}" for p in products.PRODUCTS.values()),
        )
        issue.add_argument("--users", type=int, default=0, help="licensed user count")
        issue.add_argument(
            "--feature",
            action="append",
            default=[],
            metavar="NAME",
            help=f"licensed feature, repeatable: {', '.join(products.FEATURES)}",
        )
        issue.add_argument("--serial", help="8 hexadecimal digits (default: random)")
        issue.add_argument("--date", help="issue date YYYY-MM-DD (default: today)")
        install = sub.add_parser(
            "install", help="install license codes on this server, all or nothing (- reads stdin)"
        )
        install.add_argument("code", nargs="+", metavar="CODE")
        sub.add_parser("list", help="this server's ARI, the system ARI and the installed licenses")
        change = sub.add_parser(
            "system-ari",
            help="change the system ARI (every handset must then be re-subscribed)",
        )
        change.add_argument("ari", metavar="ARI")
        change.add_argument(
            "--resubscribe-every-handset", action="store_true", dest="confirmed",
            help="required: confirms that every handset will be re-subscribed",
        )  # fmt: skip

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"handle_{action.replace('-', '_')}")(**options)

    def handle_keygen(self, *, out: str, **_) -> None:
        folder = Path(out)
        key_path, public_path = folder / KEY_FILE, folder / PUBLIC_FILE
        if key_path.exists():
            try:
                key = codes.private_key_load(key_path.read_bytes())
            except (OSError, ValueError) as exc:
                raise CommandError(f"{key_path} exists and is not a vendor key: {exc}") from None
            public = codes.public_key_text(key.public_key())
            self.stdout.write(f"vendor key exists in {folder}: kept")
        else:
            pem, public = codes.keypair_generate()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                # Created private from the start: never readable by others, even briefly.
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
            except OSError as exc:
                raise CommandError(f"cannot write {key_path}: {exc}") from None
            self.stdout.write(f"vendor key pair made in {folder}")
        public_path.write_text(public + "\n")
        self.stdout.write(
            f"  {key_path}: the private key; keep it secret, it issues license codes\n"
            f"  {public_path}: the public key {public}\n"
            f"give each server the public key: KWS_LICENSE_PUBLIC_KEY={public} "
            f"or KWS_LICENSE_PUBLIC_KEY_FILE={public_path.resolve()}"
        )

    def handle_issue(
        self,
        *,
        key: str,
        ari: str,
        product: int,
        users: int,
        feature: list[str],
        serial: str | None,
        date: str | None,
        **_,
    ) -> None:
        try:
            private = codes.private_key_load(Path(key).read_bytes())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the vendor key {key}: {exc}") from None
        if serial and not re.fullmatch(r"[0-9A-Fa-f]{1,8}", serial):
            raise CommandError(
                f"no code issued: --serial {serial!r} is not 1 to 8 hexadecimal digits"
            )
        try:
            number = int(serial, 16) if serial else secrets.randbits(32)
            issued = _date(date) if date else _today()
            code = codes.code_issue(
                private_key=private,
                ari=ari,
                product=product,
                issued=issued,
                serial=number,
                users=users,
                features=feature,
            )
        except ValueError as exc:  # AriError, ProductError and bad dates alike
            raise CommandError(f"no code issued: {exc}") from None
        self.stdout.write(code)

    def handle_install(self, *, code: list[str], **_) -> None:
        texts = [sys.stdin.read() if text == "-" else text for text in code]
        try:
            with transaction.atomic():
                installed = [license_install(text=text, actor=ACTOR) for text in texts]
        except LicenseRefused as exc:
            raise _refused(exc.message) from None
        except Locked as exc:
            raise _refused(f"configuration locked: {exc.reason}") from None
        for lic in installed:
            self.stdout.write(
                f"installed: {products.product_label(lic.product)} serial {lic.serial_text} "
                f"for ARI {lic.ari}"
            )

    def handle_system_ari(self, *, ari: str, confirmed: bool, **_) -> None:
        if not confirmed:
            raise _refused(
                "changing the system ARI means re-subscribing every handset: add "
                "--resubscribe-every-handset to confirm"
            )
        try:
            new = system_ari_change(ari=ari, actor=ACTOR)
        except config.ConfigError as exc:
            raise _refused(str(exc)) from None
        except Locked as exc:
            raise _refused(f"configuration locked: {exc.reason}") from None
        self.stdout.write(f"system ARI: {new}; re-subscribe every handset")

    def handle_list(self, **_) -> None:
        overview = licenses_overview()
        ari = overview.ari
        self.stdout.write(
            f"ARI: {ari.own or '(none yet)'}" + (f" ({overview.ari_fields})" if ari.own else "")
        )
        self.stdout.write(f"system ARI (handsets subscribe to it): {ari.subscribed or '(none)'}")
        self.stdout.write(f"acts under: {ari.system or '(none)'} ({ari.reason})")
        users = overview.user_count
        self.stdout.write(f"licensed users: {users if users else 'no user license (no limit)'}")
        if not overview.rows:
            self.stdout.write("no license installed")
        for row in overview.rows:
            details = [f"issued {row.issued.isoformat()}", f"serial {row.serial}"]
            if row.users:
                details.insert(0, f"{row.users} users")
            if row.features:
                details.insert(0, "features " + ", ".join(row.features))
            state = f"{row.state}: {row.note}" if row.note else row.state
            self.stdout.write(f"{row.product}  {row.product_name}; {'; '.join(details)}; {state}")
        for problem in (ari.problem, overview.missing, overview.key_problem):
            if problem:
                self.stdout.write(f"note: {problem}")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2025-01-31") from None


def _today() -> date:
    from django.utils import timezone

    return timezone.localdate()
