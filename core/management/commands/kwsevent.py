"""Write an entry of this node's event log from outside its processes (the supervisor)."""

from django.core.management.base import BaseCommand, CommandParser

from core.models import Event
from core.services import event_record


class Command(BaseCommand):
    help = "Record an event in this node's event log (used by the process supervisor)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message")
        parser.add_argument("--kind", default="process")
        parser.add_argument("--severity", default="info", choices=Event.Severity.values)
        parser.add_argument("--actor", default="supervisor")

    def handle(self, *args, message: str, kind: str, severity: str, actor: str, **options) -> None:
        event_record(kind=kind[:40], message=message, severity=severity, actor=actor[:150])
        self.stdout.write("recorded")
