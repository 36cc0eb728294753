"""Administrator accounts from the command line, with the services of Administration >
Administrators: replicated like the page's writes, refused where the page is."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ADMINISTRATOR, ROLES, PasswordChangeRequired, account_role
from accounts.services import (
    AccountError,
    admin_account_active_set,
    admin_account_add,
    admin_account_delete,
    admin_account_role_set,
    admin_password_reset,
)
from core.locks import Locked

ACTOR = "kwsadmin"


class Command(BaseCommand):
    help = (
        "List, add, disable, enable, delete administrator accounts, set a role, reset a password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="the accounts, their roles and states")
        add = sub.add_parser("add", help="add an account (its password changed at first login)")
        add.add_argument("username")
        add.add_argument("--role", choices=sorted(ROLES), default=ADMINISTRATOR)
        passwd = sub.add_parser("passwd", help="reset a password (changed at the next login)")
        passwd.add_argument("username")
        for parser_ in (add, passwd):
            parser_.add_argument(
                "--password-file", default="", help="read the password here (- for stdin); "
                "else it is asked twice"
            )  # fmt: skip
        for name, text in (("disable", "disable an account (it cannot log in)"),
                           ("enable", "enable a disabled account"),
                           ("delete", "delete an account")):  # fmt: skip
            sub.add_parser(name, help=text).add_argument("username")
        role = sub.add_parser("role", help="give an account a role")
        role.add_argument("username")
        role.add_argument("role", choices=sorted(ROLES))

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            self._list()
            return
        username = options["username"]
        try:
            if action == "add":
                password = self._password(options["password_file"])
                admin_account_add(
                    username=username, password=password, role=options["role"], actor=ACTOR
                )
                done = (
                    f"account {username} added ({options['role']}): password changed at first login"
                )
            elif action == "passwd":
                password = self._password(options["password_file"])
                admin_password_reset(username=username, password=password, actor=ACTOR)
                done = f"password of {username} reset; it is changed at the next login"
            elif action in ("disable", "enable"):
                admin_account_active_set(username=username, active=action == "enable", actor=ACTOR)
                done = f"account {username} {action}d"
            elif action == "delete":
                admin_account_delete(username=username, actor=ACTOR)
                done = f"account {username} deleted"
            else:
                admin_account_role_set(username=username, role=options["role"], actor=ACTOR)
                done = f"account {username} is now {options['role']}"
        except AccountError as exc:
            raise CommandError(f"nothing changed: {exc.message}") from None
        except Locked as exc:
            raise CommandError(f"nothing changed: {exc.reason}") from None
        self.stdout.write(done)

    def _list(self) -> None:
        must_change = set(PasswordChangeRequired.objects.values_list("user_id", flat=True))
        for user in get_user_model().objects.order_by("username"):
            state = "enabled" if user.is_active else "disabled"
            note = ", password to be changed" if user.pk in must_change else ""
            self.stdout.write(f"{user.get_username()}\t{account_role(user)}\t{state}{note}")

    def _password(self, path: str) -> str:
        if path == "-":
            return sys.stdin.readline().rstrip("\n")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise CommandError(f"--password-file: cannot read {path}: {exc.strerror}") from None
        if not sys.stdin.isatty():
            raise CommandError("give the password with --password-file (- for stdin)")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the two passwords differ: nothing changed")
        return first
