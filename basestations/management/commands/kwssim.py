"""Run simulated base stations, media resources and handsets against a node."""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from basestations import protocol
from basestations.services import devices_provision
from basestations.sim import Change, Simulation
from basestations.sim.device import BEHAVIOURS
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
        parser.add_argument(
            "--control-dir",
            help="folder where the running simulation writes its handsets' state and reads "
            "commands (default: the data folder's handsets/)",
        )
        parser.add_argument(
            "--handset", metavar="EXT",
            help="show this handset of a running simulation (its screen), or with one of the "
            "options below make it act",
        )  # fmt: skip
        parser.add_argument("--alarm", action="store_true", help="--handset: press the alarm")
        parser.add_argument("--charger", choices=("in", "out"), help="--handset: the charger")
        parser.add_argument("--send-to", metavar="NUMBER", help="--handset: send --text to it")
        parser.add_argument("--text", default="", help="the text --send-to sends")
        parser.add_argument(
            "--behave", choices=BEHAVIOURS, help="--handset: how it answers from now on"
        )
        parser.add_argument(
            "--lookup", metavar="TEXT",
            help="--handset: look a name or number up in the corporate phonebook (through "
            "the handset's server) and print the entries found",
        )  # fmt: skip
        parser.add_argument(
            "--wait", type=float, default=15.0, help="--lookup: seconds to wait for the answer"
        )

    def handle(self, *args, **opts) -> None:
        control = Path(opts["control_dir"] or Path(settings.DATA_DIR) / "handsets")
        if opts["handset"]:
            self._handset(control, opts)
            return
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
            extensions_from=opts["extensions_from"], on_change=output, control_dir=control,
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

    def _handset(self, control: Path, opts: dict) -> None:
        """Show a handset of the running simulation, or queue a command for it."""
        extension = opts["handset"]
        command = None
        if opts["alarm"]:
            command = {"action": "alarm"}
        elif opts["charger"]:
            command = {"action": "charger", "into": opts["charger"] == "in"}
        elif opts["send_to"]:
            command = {"action": "send", "to": opts["send_to"], "text": opts["text"][:72]}
        elif opts["behave"]:
            command = {"action": "behave", "behaviour": opts["behave"]}
        elif opts["lookup"] is not None:
            text = opts["lookup"].strip()[: protocol.LOOKUP_TEXT_MAX]
            if not text:
                raise CommandError("--lookup needs a name or number to look up")
            command = {"action": "lookup", "text": text, "ref": secrets.randbelow(2**31 - 2) + 1}
        state_file = control / "handsets.json"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            raise CommandError(
                f"no running simulation writes {state_file}: start one (kwssim --handsets N, "
                "or make demo) or give its --control-dir"
            ) from None
        if extension not in state:
            raise CommandError(f"no handset {extension} in the simulation: it has "
                               f"{', '.join(sorted(state)) or 'none'}")  # fmt: skip
        if command is not None:
            name = control / f"{time.time_ns()}.command.json"
            temporary = name.with_suffix(".tmp")
            temporary.write_text(json.dumps({"handset": extension, **command}))
            temporary.replace(name)
            if command["action"] == "lookup":
                self._lookup_answer(state_file, extension, command, opts["wait"])
                return
            self.stdout.write(f"handset {extension}: {command['action']} queued")
            return
        handset = state[extension]
        self.stdout.write(
            f"handset {extension} on {handset['basestation'] or 'no base station'}, "
            f"answers: {handset['behaviour']}, "
            f"{'in' if handset['in_charger'] else 'out of'} the charger"
        )
        for line in handset["screen"] or ["(nothing shown yet)"]:
            self.stdout.write(f"  | {line}")

    def _lookup_answer(self, state_file: Path, extension: str, command: dict,
                       wait: float) -> None:  # fmt: skip
        """Wait for the phonebook's answer to the handset's lookup and print it."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                lookups = json.loads(state_file.read_text())[extension].get("lookups", [])
            except (OSError, ValueError, KeyError):
                lookups = []
            answer = next((a for a in lookups if a.get("ref") == command["ref"]), None)
            if answer is not None:
                break
            time.sleep(0.2)
        else:
            raise CommandError(
                f"handset {extension}: no answer to the lookup of {command['text']!r} within "
                f"{wait:g} s (is its base station attached to a server?)"
            )
        if answer["error"]:
            raise CommandError(f"handset {extension}: phonebook lookup of {command['text']!r} "
                               f"failed: {answer['error']}")  # fmt: skip
        entries = answer["entries"]
        count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        self.stdout.write(f"handset {extension}: {count} for {command['text']!r}")
        for entry in entries:
            self.stdout.write(f"  {entry['name']}  {entry['number']}")

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
