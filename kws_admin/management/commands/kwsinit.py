"""Prepare a node: migrate, give it a database UUID, apply first-boot settings, make the admin."""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.services import admin_account_create
from core import config
from core.locks import Locked
from core.models import ConfigValue
from core.services import config_update
from licensing.codes import LicenseRefused
from licensing.services import node_licenses_setup


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {path}: {exc.strerror}") from None


class Command(BaseCommand):
    help = "Migrate and bootstrap this node; safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="first-boot configuration, applied only while the node has none yet",
        )
        parser.add_argument(
            "--license",
            action="append",
            default=[],
            metavar="CODE",
            help="install this license code before the --set settings (installed ones are skipped)",
        )
        parser.add_argument(
            "--set-file",
            action="append",
            default=[],
            metavar="KEY=PATH",
            help="like --set, the value read from a file (secrets stay out of the process list)",
        )
        parser.add_argument("--admin", default="", help="create this admin account if missing")
        parser.add_argument("--admin-password", default="", help="its password (else generated)")
        parser.add_argument("--admin-password-file", default="", help="read its password here")

    def handle(
        self,
        *args,
        set: list[str],
        set_file: list[str],
        license: list[str],
        admin: str,
        admin_password: str,
        admin_password_file: str,
        **options,
    ) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        first_boot = not ConfigValue.objects.exists()
        changes = {}
        for item in set:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: use KEY=VALUE")
            changes[name] = value
        for item in set_file:
            name, sep, path = item.partition("=")
            if not sep:
                raise CommandError(f"--set-file {item!r}: use KEY=PATH")
            changes[name] = _read(path, f"--set-file {name}")
        if admin_password_file:
            admin_password = _read(admin_password_file, "--admin-password-file")
        try:
            # One transaction: after a refused license or setting the node is as it was,
            # so the corrected re-run is still a first boot.
            with transaction.atomic():
                if first_boot and "system.ari" in changes:
                    # The ARI first: license codes are bound to it, and the ARI is
                    # generated only when none is given.
                    config_update(
                        changes={"system.ari": changes.pop("system.ari")}, actor="kwsinit"
                    )
                for note in node_licenses_setup(codes_text=license, actor="kwsinit"):
                    self.stdout.write(note)
                if first_boot:
                    change = config_update(changes=changes, actor="kwsinit")
                    for note in change.notes:
                        self.stdout.write(note)
                elif changes:
                    self.stdout.write("configuration exists; first-boot settings left alone")
        except config.ConfigError as exc:
            raise CommandError(f"first-boot settings refused: {exc}") from None
        except LicenseRefused as exc:
            raise CommandError(f"license refused, nothing changed: {exc.message}") from None
        if admin:
            self._ensure_admin(admin, admin_password)

    def _ensure_admin(self, username: str, password: str) -> None:
        # Admin accounts are replicated: on a master the new account goes into the
        # change log; a backup that has not joined keeps it locally until the
        # master's accounts replace it at the first snapshot.
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin account {username!r} exists")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        try:
            admin_account_create(username=username, password=password)
        except Locked as exc:
            raise CommandError(f"admin account not created: {exc.reason}") from None
        # A password the operator gave is never printed: only one this command made up.
        shown = f"password {password!r}" if generated else "the password given"
        self.stdout.write(
            f"admin account created: user {username!r}, {shown} (to be changed at first login)"
        )
