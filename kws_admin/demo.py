"""``make demo``: a master and a backup on loopback, paired, with demo data.

Master at http://127.0.0.1:8000, backup at http://127.0.0.1:8001, each with its
own data folder under var/demo/ (SQLite and the filesystem broker: no servers
needed), its own ARI and the license codes of its role (14075250 master,
14075260 backup, 1000 users) from a demo vendor key in var/demo/vendor/, and a
handful of simulated base stations, media resources and handsets as real
network clients of the master (they move to the backup if the master dies).
Ctrl-C stops every process this started.
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
from kws_admin.cluster import ROOT, Node, stop_all
from licensing.ari import ari_generate
from licensing.vendor import Vendor
from phonebook import ldapserver

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="demo users on the master")
    parser.add_argument("--basestations", type=int, default=4, help="simulated base stations")
    parser.add_argument("--media", type=int, default=1, help="simulated media resources")
    parser.add_argument("--handsets", type=int, default=8, help="simulated handsets")
    parser.add_argument("--data-dir", type=Path, default=DEMO_DIR, help="where both nodes live")
    parser.add_argument("--master-port", type=int, default=8000)
    parser.add_argument("--backup-port", type=int, default=8001)
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
    env = {"KWS_LICENSE_PUBLIC_KEY": public_key}
    master = Node("master", args.master_port, data / "master", env=env, output=output)
    backup = Node("backup", args.backup_port, data / "backup", env=env, output=output)
    for node, mode, peer in ((master, "master", backup), (backup, "slave", master)):
        ari, codes = servers[node.name]
        # The device secret is shared configuration: set on the master, replicated.
        shared = (
            [f"--set-file=system.device_secret={device_secret_file}", *phonebook]
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
    for command in (
        ("kwsdemo", f"--users={args.users}"),
        ("kwssim", "--provision", "--seconds=0", f"--basestations={args.basestations}",
         f"--media={args.media}"),
    ):  # fmt: skip
        for line in master.manage(*command).stdout.splitlines():
            if "secret" not in line:
                output(f"[master/init] {line}")

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
            + f"  data in {data} (rm -r it to start afresh); Ctrl-C stops everything\n"
        )
        # A process that dies is restarted by its node's supervisor (kws_admin.cluster);
        # the demo stops only when asked.
        while not stopping.wait(0.5):
            if os.getppid() != parent:  # the terminal or make went away: do not linger
                stopping.set()
    except (RuntimeError, TimeoutError) as exc:
        output(f"demo failed: {exc}")
        return 1
    finally:
        if simulation is not None:
            simulation.stop()
        output("stopping both nodes ...")
        stop_all(list(nodes), timeout=4.0)
        if directory is not None:
            directory.stop()
        output("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
