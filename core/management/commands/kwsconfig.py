"""Read and write this node's configuration by dotted key."""

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import config
from core.backup import RestoreError, backup_build, backup_open, backup_restore
from core.backupfile import PASSPHRASE_MIN_LENGTH
from core.locks import Locked
from core.selectors import config_export, config_read
from core.services import config_import, config_update

ACTOR = "kwsconfig"


def _refusal(exc: config.ConfigError) -> CommandError:
    lines = [f"  {key}: {message}" for key, message in exc.errors.items()]
    return CommandError("refused, nothing changed:\n" + "\n".join(lines))


class Command(BaseCommand):
    help = "Get, set, export or import configuration keys (e.g. redundancy.mode)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        get = sub.add_parser("get", help="print keys and values (all keys without arguments)")
        get.add_argument("keys", nargs="*")
        put = sub.add_parser("set", help="set KEY VALUE, or several KEY=VALUE, all or nothing")
        put.add_argument("assignments", nargs="+")
        exp = sub.add_parser("export", help="write the configuration as a readable file")
        exp.add_argument("file", nargs="?", default="-", help="file, or - for standard output")
        exp.add_argument("--include-secrets", action="store_true")
        imp = sub.add_parser("import", help="apply an exported file; a bad file changes nothing")
        imp.add_argument("file", help="file, or - for standard input")
        bak = sub.add_parser(
            "backup", help="write a backup file: configuration and replicated data"
        )
        bak.add_argument("file")
        bak.add_argument("--include-secrets", action="store_true", help="sealed by a passphrase")
        bak.add_argument("--passphrase-file", help="read the passphrase from this file")
        res = sub.add_parser("restore", help="restore a backup file, all or nothing")
        res.add_argument("file")
        res.add_argument("--dry-run", action="store_true", help="only show what would change")
        res.add_argument("--passphrase-file", help="read the passphrase from this file")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"handle_{action}")(**options)
        except config.ConfigError as exc:
            raise _refusal(exc) from None
        except RestoreError as exc:
            lines = [exc.message] + [f"  {key}: {message}" for key, message in exc.errors.items()]
            raise CommandError("\n".join(lines)) from None
        except Locked as exc:
            raise CommandError(
                f"refused, nothing changed: configuration locked: {exc.reason}"
            ) from None

    def handle_get(self, *, keys: list[str], **_) -> None:
        values = config_read()
        unknown = {k: config.unknown_key_message(k) for k in keys if k not in config.KEYS}
        if unknown:
            raise config.ConfigError(unknown)
        for name in keys or sorted(values):
            if config.KEYS[name].secret:
                shown = "(set)" if values[name] else "(not set)"
            else:
                shown = config.format_value(name, values[name])
            self.stdout.write(f"{name} = {shown}")

    def handle_set(self, *, assignments: list[str], **_) -> None:
        if len(assignments) == 2 and "=" not in assignments[0]:
            changes = {assignments[0]: assignments[1]}
        else:
            changes = {}
            for item in assignments:
                name, sep, value = item.partition("=")
                if not sep:
                    raise CommandError(f"{item!r}: use KEY VALUE or KEY=VALUE")
                if name.strip() in changes:
                    raise CommandError(f"{name.strip()} is given twice; nothing changed")
                changes[name.strip()] = value
        self._report(config_update(changes=changes, actor=ACTOR))

    def handle_export(self, *, file: str, include_secrets: bool, **_) -> None:
        text = config_export(include_secrets=include_secrets)
        if file == "-":
            self.stdout.write(text, ending="")
        else:
            # Readable by its owner only: the file may hold the pairing secret.
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # also when the file existed with wider rights
            with os.fdopen(fd, "w") as out:
                out.write(text)
            self.stdout.write(f"exported to {file}")

    def handle_import(self, *, file: str, **_) -> None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        self._report(config_import(text=text, actor=ACTOR))

    def _passphrase(self, passphrase_file: str | None, *, twice: bool) -> str:
        if passphrase_file:
            try:
                return Path(passphrase_file).read_text().rstrip("\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read {passphrase_file}: {exc}") from None
        passphrase = getpass.getpass("Passphrase: ")
        if twice and passphrase != getpass.getpass("Passphrase again: "):
            raise CommandError("the two passphrases differ; nothing written")
        return passphrase

    def handle_backup(self, *, file: str, include_secrets: bool, passphrase_file, **_) -> None:
        passphrase = ""
        if include_secrets:
            passphrase = self._passphrase(passphrase_file, twice=True)
            if len(passphrase) < PASSPHRASE_MIN_LENGTH:
                raise CommandError(
                    f"a passphrase of at least {PASSPHRASE_MIN_LENGTH} characters is needed"
                )
        data = backup_build(actor=ACTOR, include_secrets=include_secrets, passphrase=passphrase)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        how = "with secrets, protected by the passphrase" if include_secrets else "without secrets"
        self.stdout.write(f"backup written to {file} ({how})")

    def handle_restore(self, *, file: str, dry_run: bool, passphrase_file, **_) -> None:
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        try:
            backup = backup_open(data)
        except RestoreError as exc:
            if "passphrase" not in exc.message:
                raise
            backup = backup_open(data, passphrase=self._passphrase(passphrase_file, twice=False))
        plan = backup_restore(backup=backup, actor=ACTOR, dry_run=dry_run)
        header = plan.header
        self.stdout.write(
            f"backup of {header['node']} written {header['created']} "
            f"({'with' if header['secrets'] else 'without'} secrets)"
        )
        for note in plan.notes:
            self.stdout.write(note)
        for change in plan.config:
            shown = "changed" if change.secret else f"{change.old} -> {change.new}"
            self.stdout.write(f"{change.name}: {shown}")
        for name, _label, mine, theirs in plan.local_keys:
            if mine != theirs:
                self.stdout.write(f"{name}: this server's own, not restored (file: {theirs})")
        for entity in plan.entities:
            for what in ("added", "changed", "removed"):
                for row in getattr(entity, what):
                    detail = f" ({'; '.join(row.fields)})" if row.fields else ""
                    self.stdout.write(f"{entity.title} {what}: {row.label}{detail}")
        if not plan.changes:
            self.stdout.write("nothing to restore: this server already equals the file")
        elif dry_run:
            self.stdout.write(f"dry run, nothing changed: {plan.summary()}")
        else:
            self.stdout.write(f"restored: {plan.summary()}")

    def _report(self, change) -> None:
        for note in change.notes:
            self.stdout.write(note)
        if not change.changed:
            self.stdout.write("nothing changed")
        for name, value in sorted(change.changed.items()):
            shown = "(secret)" if config.KEYS[name].secret else config.format_value(name, value)
            self.stdout.write(f"{name} = {shown}")
