"""Fill an empty node with the demo data set, and drive the running demo: a failover of
its master and the master's return."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import demo_control
from core.locks import Locked
from users.selectors import sip_credentials
from users.services import dect_user_seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo users on an empty master or single node (safe to re-run); "
        "'kwsdemo failover' kills the running demo's master, 'kwsdemo restore' brings it back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=demo_control.ACTIONS,
                            help="failover: kill every process of the demo's master; "
                                 "restore: start them again")  # fmt: skip
        parser.add_argument("--users", type=int, default=200)
        parser.add_argument(
            "--sip-accounts",
            type=Path,
            help="write every user's SIP username and password to this file (0600), "
            "for the demo's registrar",
        )
        parser.add_argument(
            "--demo-dir",
            type=Path,
            default=settings.BASE_DIR / "var" / "demo",
            help="the running demo's data folder (make demo: var/demo)",
        )

    def handle(self, *args, action: str | None, users: int, sip_accounts: Path | None,
               demo_dir: Path, **options) -> None:  # fmt: skip
        if action:
            self._control(demo_dir.resolve() / "control", action)
            return
        try:
            created = dect_user_seed_demo(count=users)
        except Locked as exc:
            raise CommandError(f"demo users not created: {exc.reason}") from None
        except ValidationError as exc:
            raise CommandError(f"demo users not created: {' '.join(exc.messages)}") from None
        self.stdout.write(f"{created} demo users created" if created else "demo users exist")
        if sip_accounts is not None:
            lines = [f"{user}\t{password}" for user, password in sip_credentials()]
            sip_accounts.touch(mode=0o600)
            sip_accounts.chmod(0o600)
            sip_accounts.write_text("".join(f"{line}\n" for line in lines))
            self.stdout.write(f"SIP accounts of {len(lines)} users written to {sip_accounts}")

    def _control(self, folder: Path, action: str) -> None:
        self.stdout.write(
            "killing the master's processes ..." if action == "failover" else
            "starting the master again ..."
        )  # fmt: skip
        try:
            ok, message = demo_control.request_send(folder, action, timeout=90.0)
        except demo_control.ControlError as exc:
            raise CommandError(str(exc)) from None
        if not ok:
            raise CommandError(message)
        self.stdout.write(message)
