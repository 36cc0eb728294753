"""Print this server's statistics (and its peer's, as its last heartbeat said)."""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandParser

from redundancy.statistics import statistics_overview, statistics_reset


class Command(BaseCommand):
    help = "Print the statistics of this server and its peer as JSON; --reset zeroes this server's."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="start this server's counters from 0 first"
        )

    def handle(self, *args, reset: bool, **options) -> None:
        if reset:
            statistics_reset(actor="kwsstats")
        own, peer = statistics_overview()
        result = {"self": asdict(own), "peer": asdict(peer) if peer else None}
        self.stdout.write(json.dumps(result, indent=2, sort_keys=True, default=str))
