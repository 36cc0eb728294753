"""Django's changepassword would write the password without replicating it: refused."""

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Not used here: use manage.py kwsadmin passwd NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args, **options) -> None:
        raise CommandError(
            "changepassword is not used on a KWS: it would bypass replication to the backup. "
            "Use manage.py kwsadmin passwd NAME (the account must change it at its next login)."
        )
