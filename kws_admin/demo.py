"""``make demo``: a master and a backup on loopback, paired, with demo data.

Master at http://127.0.0.1:8000, backup at http://127.0.0.1:8001, each with its
own data folder under var/demo/ (SQLite and the filesystem broker: no servers
needed), its own ARI and the license codes of its role (14075250 master,
14075260 backup, 1000 users) from a demo vendor key in var/demo/vendor/, and a
handful of simulated base stations, media resources and handsets as real
network clients of the master (they move to the backup if the master dies), and a
PBX both servers register their users with: Kamailio when it is installed, otherwise
the small registrar of users/sip/registrar.py. ``manage.py kwsdemo failover`` kills the
master's processes and ``kwsdemo restore`` starts them again (through the control
folder var/demo/control, see core/demo_control.py). Ctrl-C stops every process this
started.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from basestations.sim import Simulation
from core import demo_control
from kws_admin.cluster import ROOT, Node, stop_all
from licensing.ari import ari_generate
from licensing.vendor import Vendor
from phonebook import ldapserver
from users import pbx
from users.sip.registrar import Registrar

DEMO_DIR = ROOT / "var" / "demo"


def _directory(folder: Path) -> tuple[ldapserver.Slapd | None, str]:
    """The corporate phonebook's directory: a slapd of the demo's own (its port kept in
    the folder, so the master's setting stays right across runs), or None and why not."""
    missing = ldapserver.slapd_available()
    if missing:
        return None, missing
    port_file = folder / "port"
    try:
        port = int(port_file.read_text())
    except (OSError, ValueError):
        port = ldapserver.free_port()
    try:
        server = ldapserver.Slapd(port=port, workdir=folder)
        server.start()
    except (ldapserver.SlapdError, OSError) as exc:
        return None, str(exc)
    port_file.write_text(str(port))
    atexit.register(server.stop)  # also when the demo fails before its own clean-up
    return server, ""


class _Pbx:
    """The demo's PBX: a Kamailio of its own when installed, else the small registrar;
    its port is kept in the folder, so the master's sip.registrar stays right across runs."""

    def __init__(self, folder: Path, choice: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        port_file = folder / "port"
        try:
            port = int(port_file.read_text())
        except (OSError, ValueError):
            port = pbx.free_port()
        port_file.write_text(str(port))
        self.port = port
        missing = pbx.kamailio_available()
        self.kamailio: pbx.Kamailio | None = None
        self.registrar: Registrar | None = None
        if choice == "kamailio" and missing:
            raise RuntimeError(missing)
        self.name = "Kamailio" if choice == "kamailio" or (choice == "auto" and not missing) else (
            "the demo's registrar"
        )  # fmt: skip
        self._folder = folder
        self.choice = choice

    def start(self, accounts: Path) -> None:
        credentials = dict(
            line.split("\t", 1) for line in accounts.read_text().splitlines() if "\t" in line
        )
        if self.name == "Kamailio":
            try:
                # Its own temporary folder: Kamailio runs as nobody when we are root, and
                # nobody may not reach a data dir under a private home or /tmp/tmp.XXXX.
                self.kamailio = pbx.Kamailio(port=self.port)
                self.kamailio.add_subscribers(
                    (user, "127.0.0.1", password) for user, password in credentials.items()
                )
                self.kamailio.start()
                atexit.register(self.kamailio.close)
                return
            except (pbx.KamailioError, OSError) as exc:
                if self.choice == "kamailio":
                    raise RuntimeError(f"Kamailio did not start: {exc}") from None
                if self.kamailio is not None:
                    self.kamailio.close()
                    self.kamailio = None
                first_line = (str(exc).strip().splitlines() or ["?"])[0][:160]
                self.name = f"the demo's registrar (Kamailio did not start: {first_line})"
        if self.kamailio is None:
            self.registrar = Registrar(credentials=credentials, port=self.port).start()
            atexit.register(self.registrar.stop)

    def stop(self) -> None:
        if self.kamailio is not None:
            self.kamailio.close()
        if self.registrar is not None:
            self.registrar.stop()


def _secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _licenses(folder: Path, users: int) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    """The demo vendor's public key, and each server's ARI and license codes (made once)."""
    vendor = Vendor.in_folder(folder)
    path = folder / "servers.json"
    if not path.exists():
        master_ari = ari_generate()
        backup_ari = ari_generate(avoid={master_ari})
        servers = {
            "master": (master_ari, vendor.server_codes(ari=master_ari, mode="master", users=users)),
            "backup": (backup_ari, vendor.server_codes(ari=backup_ari, mode="slave", users=users)),
        }
        path.write_text(json.dumps(servers, indent=2))
    servers = {name: (ari, codes) for name, (ari, codes) in json.loads(path.read_text()).items()}
    return vendor.public_key, servers


def _control(
    action: str, master: Node, backup: Node, failover_time: int | None
) -> tuple[bool, str]:
    """Do one request of ``kwsdemo``: kill the master as a crash would, or start it again."""
    running = bool(master.processes)
    if action == "failover":
        if not running:
            return False, "The master is already stopped; kwsdemo restore starts it again."
        master.kill()
        wait = f"{failover_time} s" if failover_time is not None else "the failover time"
        return True, (
            f"The master's web, worker, beat and sip processes were killed, as a crash would. "
            f"The backup notices within the detection window, takes over every user after "
            f"{wait} and registers them with the PBX: watch the Status and Users pages of "
            f"{backup.url}/. kwsdemo restore brings the master back."
        )
    if action == "restore":
        if running:
            return False, "The master is running; kwsdemo failover stops it first."
        master.start()
        try:
            master.wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            return False, f"The master did not start again: {exc}"
        return True, (
            f"The master runs again at {master.url}/: it rejoins the pair, and once both "
            "serve it takes its half of the users back (the NODE column shows M again)."
        )
    return False, f"{action!r} is not something the demo can do (failover or restore)."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="demo users on the master")
    parser.add_argument("--basestations", type=int, default=4, help="simulated base stations")
    parser.add_argument("--media", type=int, default=1, help="simulated media resources")
    parser.add_argument("--handsets", type=int, default=8, help="simulated handsets")
    parser.add_argument("--data-dir", type=Path, default=DEMO_DIR, help="where both nodes live")
    parser.add_argument("--master-port", type=int, default=8000)
    parser.add_argument("--backup-port", type=int, default=8001)
    parser.add_argument(
        "--pbx",
        choices=("auto", "kamailio", "registrar"),
        default="auto",
        help="the PBX the users register with (auto: Kamailio when installed)",
    )
    parser.add_argument(
        "--failover-time",
        type=int,
        help="redundancy.failover_time of the pair (default: the product's)",
    )
    args = parser.parse_args(argv)
    data = args.data_dir.resolve()

    # Secrets live in files (0600) and reach the commands by path, never on a command line.
    secret_file, password_file = data / "pairing_secret", data / "admin_password"
    device_secret_file = data / "device_secret"
    admin_password = _secret(password_file)
    device_secret = _secret(device_secret_file)
    _secret(secret_file)
    lock = threading.Lock()

    def output(line: str) -> None:
        with lock:
            print(line, flush=True)

    public_key, servers = _licenses(data / "vendor", users=1000)
    directory, no_directory = _directory(data / "ldap")
    phonebook: list[str] = []
    if directory is not None:
        reader_file = data / "ldap_password"
        reader_file.write_text(ldapserver.PHONEBOOK_PASSWORD)
        reader_file.chmod(0o600)
        phonebook = [
            "--set=phonebook.source=ldap",
            f"--set=phonebook.ldap_url={directory.url}",
            f"--set=phonebook.base_dn={ldapserver.BASE_DN}",
            f"--set=phonebook.bind_dn={ldapserver.BIND_DN}",
            f"--set-file=phonebook.bind_password={reader_file}",
        ]
    the_pbx = _Pbx(data / "pbx", args.pbx)
    shared_settings = [f"--set=sip.registrar=127.0.0.1:{the_pbx.port}"]
    if args.failover_time is not None:
        shared_settings.append(f"--set=redundancy.failover_time={args.failover_time}")
    env = {"KWS_LICENSE_PUBLIC_KEY": public_key}
    master = Node("master", args.master_port, data / "master", env=env, output=output)
    # The backup's Status page fails the master and brings it back through the launcher.
    backup_env = {**env, "KWS_DEMO_CONTROL_DIR": str(data / "control")}
    backup = Node("backup", args.backup_port, data / "backup", env=backup_env, output=output)
    for node, mode, peer in ((master, "master", backup), (backup, "slave", master)):
        ari, codes = servers[node.name]
        # The device secret is shared configuration: set on the master, replicated.
        shared = (
            [f"--set-file=system.device_secret={device_secret_file}", *phonebook, *shared_settings]
            if mode == "master"
            else []
        )
        result = node.manage(
            "kwsinit",
            f"--set=system.ari={ari}",
            *[f"--license={code}" for code in codes],
            f"--set=redundancy.mode={mode}",
            f"--set=redundancy.peer={peer.host}:{peer.port}",
            f"--set-file=redundancy.secret={secret_file}",
            *shared,
            "--admin=admin",
            f"--admin-password-file={password_file}",
        )
        for line in result.stdout.splitlines():
            output(f"[{node.name}/init] {line}")
    accounts_file = data / "sip_accounts"
    for command in (
        ("kwsdemo", f"--users={args.users}", f"--sip-accounts={accounts_file}"),
        ("kwssim", "--provision", "--seconds=0", f"--basestations={args.basestations}",
         f"--media={args.media}"),
    ):  # fmt: skip
        for line in master.manage(*command).stdout.splitlines():
            if "secret" not in line:
                output(f"[master/init] {line}")

    the_pbx.start(accounts_file)
    control = data / "control"
    demo_control.launcher_claim(control)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    nodes = (master, backup)
    parent = os.getppid()
    simulation = None
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        simulation = Simulation(
            server=f"{master.host}:{master.port}",
            secret=device_secret,
            basestations=args.basestations,
            media=args.media,
            handsets=args.handsets,
            on_change=lambda change: (
                None
                if change.state == "roamed"  # roaming handsets would flood the log
                else output(f"[devices] {change.line()}")
            ),
            control_dir=data / "handsets",
        ).start()
        demo_arg = "" if data == DEMO_DIR.resolve() else f" --demo-dir {data}"
        output(
            "\n"
            "KWS Admin demo is running:\n"
            f"  master  {master.url}/\n"
            f"  backup  {backup.url}/\n"
            f"  log in as admin / {admin_password} (you are asked to change it at first login)\n"
            f"  {args.basestations} simulated base stations, {args.media} media resources and "
            f"{args.handsets} handsets keep alive with the master\n"
            f"  applications connect to {master.url}/RPC2 (XML-RPC, as GW-DECT/admin); a "
            f"handset's screen: .venv/bin/python manage.py kwssim --control-dir "
            f"{data / 'handsets'} --handset 2000 [--alarm | --lookup alice]\n"
            + (
                f"  corporate phonebook: LDAP at {directory.url} (slapd)\n"
                if directory is not None
                else f"  no corporate phonebook: {no_directory}\n"
            )
            + f"  PBX: {the_pbx.name} at 127.0.0.1:{the_pbx.port} (UDP); the Users page shows "
            "who is registered\n"
            f"  failover: .venv/bin/python manage.py kwsdemo failover{demo_arg} kills the "
            f"master; kwsdemo restore{demo_arg} brings it back\n"
            f"  data in {data} (rm -r it to start afresh); Ctrl-C stops everything\n"
        )
        # A process that dies is restarted by its node's supervisor (kws_admin.cluster);
        # the demo stops only when asked.
        while not stopping.wait(0.5):
            if os.getppid() != parent:  # the terminal or make went away: do not linger
                stopping.set()
            for request in demo_control.requests_take(control):
                ok, message = _control(request.action, master, backup, args.failover_time)
                output(f"[demo] {request.action}: {message}")
                demo_control.reply_write(control, request, ok=ok, message=message)
    except (RuntimeError, TimeoutError) as exc:
        output(f"demo failed: {exc}")
        return 1
    finally:
        if simulation is not None:
            simulation.stop()
        output("stopping both nodes ...")
        stop_all(list(nodes), timeout=4.0)
        demo_control.launcher_release(control)
        the_pbx.stop()
        if directory is not None:
            directory.stop()
        output("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
