"""The node's SIP process: registers the users this server handles with the PBX."""

import asyncio
import signal

import uvloop
from django.core.management.base import BaseCommand

from users.registration import RegistrationRunner


class Command(BaseCommand):
    help = "Register the users this server handles with the PBX until SIGTERM or SIGINT."

    def handle(self, *args, **options) -> None:
        self.stdout.write("SIP registration started")
        # libuv's event loop: the REGISTERs of a takeover are sent and answered in it.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self._main())
        self.stdout.write("SIP registration stopped")

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await RegistrationRunner().run(stop)
