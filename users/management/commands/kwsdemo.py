"""Fill an empty node with the demo data set."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.locks import Locked
from users.services import dect_user_seed_demo


class Command(BaseCommand):
    help = "Create the demo users on an empty master or single node; safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=200)

    def handle(self, *args, users: int, **options) -> None:
        try:
            created = dect_user_seed_demo(count=users)
        except Locked as exc:
            raise CommandError(f"demo users not created: {exc.reason}") from None
        except ValidationError as exc:
            raise CommandError(f"demo users not created: {' '.join(exc.messages)}") from None
        self.stdout.write(f"{created} demo users created" if created else "demo users exist")
