"""Print the audit trail of this server, newest first, with the Audit page's filters."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import KINDS, audit_records


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Print the audit trail (who changed what, when, from where), newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", default="")
        parser.add_argument("--kind", default="", choices=["", *KINDS])
        parser.add_argument(
            "--object", default="", help="an object's id; 'sip.' for every key under it"
        )
        parser.add_argument("--since", default="", help="UTC, YYYY-MM-DD[THH:MM], inclusive")
        parser.add_argument("--until", default="", help="UTC, YYYY-MM-DD[THH:MM], exclusive")
        parser.add_argument("--text", default="")
        parser.add_argument("--limit", type=int, default=50)

    def handle(self, *args, **options) -> None:
        records = audit_records(
            account=options["account"],
            kind=options["kind"],
            object_id=options["object"],
            since=_moment(options["since"]) if options["since"] else None,
            until=_moment(options["until"]) if options["until"] else None,
            text=options["text"],
        )[: max(options["limit"], 0)]
        for record in records:
            who = record.account or "-"
            where = f" from {record.address}" if record.address else ""
            self.stdout.write(
                f"{record.created:%Y-%m-%d %H:%M:%S} {record.server} {who}{where}: {record.summary}"
            )
            for change in record.changes:
                if change.get("secret"):
                    self.stdout.write(f"    {change['field']}: changed")
                else:
                    before, after = change["before"] or "-", change["after"] or "-"
                    self.stdout.write(f"    {change['field']}: {before} -> {after}")
