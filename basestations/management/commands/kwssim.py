"""Run simulated base stations, media resources and handsets against a node."""

from __future__ import annotations

import signal
import threading
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from basestations import protocol
from basestations.services import devices_provision
from basestations.sim import Change, Simulation
from core.locks import Locked
from core.selectors import config_read


class Command(BaseCommand):
    help = "Simulate base stations, media resources and handsets keeping alive with a node."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--server", help="HOST:PORT the devices are configured with (the master)"
        )
        parser.add_argument("--basestations", type=int, default=10)
        parser.add_argument("--media", type=int, default=1)
        parser.add_argument("--handsets", type=int, default=0)
        parser.add_argument(
            "--secret", help="the device secret (default: this node's system.device_secret)"
        )
        parser.add_argument("--firmware", default="PCS06B")
        parser.add_argument(
            "--extensions-from", type=int, default=2000,
            help="extension of the first handset (the demo users start at 2000)",
        )  # fmt: skip
        parser.add_argument(
            "--provision", action="store_true",
            help="first configure the simulated devices on this node (a master); safe to re-run",
        )  # fmt: skip
        parser.add_argument(
            "--seconds", type=float, default=None,
            help="stop after this many seconds (0 with --provision: only provision)",
        )  # fmt: skip

    def handle(self, *args, **opts) -> None:
        if opts["provision"]:
            self._provision(opts["basestations"], opts["media"])
            if opts["seconds"] == 0:
                return
        if not opts["server"]:
            raise CommandError("--server HOST:PORT is required to run the devices")
        secret = opts["secret"] or self._node_secret()
        try:
            protocol.firmware_parse(opts["firmware"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        lock = threading.Lock()

        def output(change: Change) -> None:
            with lock:
                self.stdout.write(change.line())
                self.stdout.flush()

        sim = Simulation(
            server=opts["server"], secret=secret, basestations=opts["basestations"],
            media=opts["media"], handsets=opts["handsets"], firmware=opts["firmware"],
            extensions_from=opts["extensions_from"], on_change=output,
        )  # fmt: skip
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        self.stdout.write(
            f"kwssim: {opts['basestations']} base stations, {opts['media']} media resources, "
            f"{opts['handsets']} handsets -> {opts['server']}; Ctrl-C stops"
        )
        started = time.monotonic()
        sim.start()
        try:
            while not stopping.wait(0.5):
                if sim.error is not None:
                    raise CommandError(f"simulation failed: {sim.error}")
                if opts["seconds"] is not None and time.monotonic() - started >= opts["seconds"]:
                    break
        finally:
            sim.stop()
        with lock:
            self.stdout.write(
                f"kwssim stopped: attached {sim.attached_counts() or 'nowhere'}, "
                f"states {sim.states()}"
            )

    def _provision(self, basestations: int, media: int) -> None:
        try:
            added = devices_provision(basestations=basestations, media=media, actor="kwssim")
        except Locked as exc:
            raise CommandError(f"devices not provisioned: {exc.reason}") from None
        except ValidationError as exc:
            raise CommandError(f"devices not provisioned: {' '.join(exc.messages)}") from None
        self.stdout.write(
            f"provisioned {added['rfp']} base stations and {added['media']} media resources "
            f"({basestations} and {media} wanted)"
        )

    def _node_secret(self) -> str:
        secret = config_read()["system.device_secret"]
        if not secret:
            raise CommandError(
                "no --secret given and this node has no system.device_secret configured"
            )
        return secret
