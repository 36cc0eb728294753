"""The node's SIP process: registers the users this server handles with the PBX."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from users.registration import RegistrationRunner


class Command(BaseCommand):
    help = "Register the users this server handles with the PBX until SIGTERM or SIGINT."

    def handle(self, *args, **options) -> None:
        self.stdout.write("SIP registration started")
        # asyncio's own loop, not uvloop: under uvloop the client's UDP socket (polled with
        # add_reader) is no longer polled once an ICMP error (a PBX not yet listening) has
        # been reported on it, so a PBX that comes up later is never heard.
        asyncio.run(self._main())
        self.stdout.write("SIP registration stopped")

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await RegistrationRunner().run(stop)
