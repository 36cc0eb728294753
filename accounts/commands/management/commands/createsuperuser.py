"""Django's createsuperuser would write the account without replicating it: refused."""

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Not used here: use manage.py kwsadmin add NAME --role administrator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs="*")
        parser.add_argument("--username")
        parser.add_argument("--email")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args, **options) -> None:
        raise CommandError(
            "createsuperuser is not used on a KWS: it would bypass replication to the backup. "
            "Use manage.py kwsadmin add NAME --role administrator (kwsadmin --help lists the "
            "account commands)."
        )
