"""Fill an empty node with the demo data set."""

from django.core.management.base import BaseCommand, CommandParser

from users.services import dect_user_seed_demo


class Command(BaseCommand):
    help = "Create the demo users on an empty node; safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=200)

    def handle(self, *args, users: int, **options) -> None:
        created = dect_user_seed_demo(count=users)
        self.stdout.write(f"{created} demo users created" if created else "demo users exist")
