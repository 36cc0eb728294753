"""The structure of docker-compose.yml: two complete, independent nodes, a PBX and the
LDAP directory of the corporate phonebook.

No Docker engine is needed: the file is parsed with PyYAML (anchors and ``<<``
merge keys resolved) and checked. Every check is a function returning a list of
problems, run once against the real file (no problems) and once against a
deliberately broken copy (the problem must be reported), so no check can pass
by checking nothing.
"""

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
LDAP_DIR = ROOT / "deploy" / "ldap"

NODES = ("a", "b")
ROLES = ("web", "worker", "beat", "sip", "init")  # the node's own code, one image
STORES = ("postgres", "redis")
PEER_OF = {"a": "b", "b": "a"}
MODE_OF = {"a": "master", "b": "slave"}
WEB_PORT_OF = {"a": 8000, "b": 8001}
SECRET_MIN_LENGTH = 16


# --- Reading the compose file ---------------------------------------------------


def load() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}|\$\$")


def interpolate(text: str) -> str:
    """Compose interpolation with no environment set: every ``${X:-d}`` becomes d (a
    required ``${X:?message}``, which compose refuses to start without, becomes '')."""

    def value(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        if (m.group("op") or "").endswith("?"):
            return ""
        return m.group("default") or ""

    return _VAR.sub(value, text)


def required(expression: str) -> bool:
    """Whether every variable of ``expression`` is required (``${X:?message}``)."""
    found = list(_VAR.finditer(expression))
    return bool(found) and all((m.group("op") or "") == ":?" for m in found if m.group(0) != "$$")


def service(compose: dict, name: str) -> dict:
    return compose.get("services", {}).get(name) or {}


def environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def host_of(url: str) -> str | None:
    return urlsplit(interpolate(url)).hostname


def named_volumes(svc: dict) -> set[str]:
    """Named volumes (not bind mounts) a service mounts."""
    names = set()
    for volume in svc.get("volumes") or []:
        source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
        if source and not source.startswith((".", "/", "~")):
            names.add(source)
    return names


def command_args(svc: dict) -> list[str]:
    """The argument vector, looking through ``sh -c "..."`` and compose's ``$$``."""
    command = svc.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    if len(command) >= 3 and command[0] in ("sh", "bash", "/bin/sh") and command[1] == "-c":
        command = shlex.split(command[2].replace("$$", "$"))
    return [str(arg) for arg in command]


def init_settings(svc: dict) -> dict[str, str]:
    """The ``--set KEY=VALUE`` pairs of a kwsinit command (shell variables as written)."""
    args = command_args(svc)
    if "kwsinit" not in args:
        return {}
    settings = {}
    for i, arg in enumerate(args):
        if arg.startswith("--set="):
            item = arg[len("--set=") :]
        elif arg == "--set" and i + 1 < len(args):
            item = args[i + 1]
        else:
            continue
        key, _, value = item.partition("=")
        settings[key] = value
    return settings


def init_admin_password(svc: dict) -> str:
    """The ``--admin-password=...`` argument of a kwsinit command ('' without one)."""
    for arg in command_args(svc):
        if arg.startswith("--admin-password="):
            return arg[len("--admin-password=") :]
    return ""


def resolve_shell_var(value: str, svc: dict) -> str:
    """``$X`` / ``${X}`` taken from the container environment, as the shell would."""
    m = re.fullmatch(r"\$(\w+)|\$\{(\w+)\}", value)
    if not m:
        return value
    return environment(svc).get(m.group(1) or m.group(2), "")


def is_long_running(name: str, svc: dict) -> bool:
    return str(svc.get("restart", "")).lower() != "no" and not name.endswith("-init")


# --- The checks: each returns a list of problems ----------------------------------


def expected_services() -> list[str]:
    names = [f"node-{n}-{part}" for n in NODES for part in (*ROLES, *STORES)]
    return [*names, "pbx", "ldap"]


def check_complete(compose: dict) -> list[str]:
    problems = [f"{name}: missing" for name in expected_services() if not service(compose, name)]
    for n in NODES:
        for store, image in (("postgres", "postgres:15"), ("redis", "redis:7")):
            svc = service(compose, f"node-{n}-{store}")
            if svc and svc.get("image") != image:
                problems.append(f"node-{n}-{store}: image {svc.get('image')!r}, not {image}")
        for role in ROLES:
            svc = service(compose, f"node-{n}-{role}")
            if svc and not (svc.get("build") or svc.get("image")):
                problems.append(f"node-{n}-{role}: neither build nor image")
    return problems


def check_healthchecks(compose: dict) -> list[str]:
    problems = []
    for name, svc in compose.get("services", {}).items():
        if not is_long_running(name, svc):
            continue
        health = svc.get("healthcheck") or {}
        test = health.get("test")
        if health.get("disable") or not test or test in (["NONE"], "NONE"):
            problems.append(f"{name}: no healthcheck")
    return problems


def check_own_stores(compose: dict) -> list[str]:
    problems = []
    for n in NODES:
        for role in ROLES:
            name = f"node-{n}-{role}"
            env = environment(service(compose, name))
            for var, store in (("KWS_DATABASE_URL", "postgres"), ("KWS_BROKER_URL", "redis")):
                if var not in env:
                    problems.append(f"{name}: no {var}")
                elif host_of(env[var]) != f"node-{n}-{store}":
                    problems.append(f"{name}: {var} points at {host_of(env[var])!r}")
    return problems


def check_nothing_shared(compose: dict) -> list[str]:
    problems = []
    hosts = {n: set() for n in NODES}
    volumes = {n: set() for n in NODES}
    for name, svc in compose.get("services", {}).items():
        for n in NODES:
            if name.startswith(f"node-{n}-"):
                env = environment(svc)
                for var in ("KWS_DATABASE_URL", "KWS_BROKER_URL"):
                    if env.get(var):
                        hosts[n].add(host_of(env[var]))
                volumes[n] |= named_volumes(svc)
    for kind, per_node in (("database/broker host", hosts), ("volume", volumes)):
        for shared in sorted(per_node["a"] & per_node["b"]):
            problems.append(f"both nodes use the {kind} {shared!r}")
    for n in NODES:
        other = PEER_OF[n]
        for host in sorted(hosts[n]):
            if host and host.startswith(f"node-{other}-"):
                problems.append(f"node {n} uses node {other}'s {host!r}")
    return problems


def check_redundancy(compose: dict) -> list[str]:
    problems = []
    secrets = {}
    for n in NODES:
        init = service(compose, f"node-{n}-init")
        settings = init_settings(init)
        if not settings:
            problems.append(f"node-{n}-init: does not run kwsinit --set ...")
            continue
        if settings.get("redundancy.mode") != MODE_OF[n]:
            problems.append(f"node-{n}: mode {settings.get('redundancy.mode')!r}, not {MODE_OF[n]}")
        peer = settings.get("redundancy.peer", "")
        host, _, port = peer.partition(":")
        if host != f"node-{PEER_OF[n]}-web":
            problems.append(f"node-{n}: peer {peer!r} is not node-{PEER_OF[n]}-web")
        web_args = command_args(service(compose, f"node-{PEER_OF[n]}-web"))
        binds = "--host" in web_args and web_args[web_args.index("--host") + 1] == "0.0.0.0"
        binds = binds and "--port" in web_args and web_args[web_args.index("--port") + 1] == port
        if port and not binds:
            problems.append(f"node-{n}: peer port {port} is not where node-{PEER_OF[n]}-web binds")
        secrets[n] = resolve_shell_var(settings.get("redundancy.secret", ""), init)
    if len(secrets) == len(NODES):
        if secrets["a"] != secrets["b"]:
            problems.append(f"pairing secrets differ: {secrets['a']!r} != {secrets['b']!r}")
        for n, expression in secrets.items():
            if "${" not in expression:
                problems.append(f"node-{n}: pairing secret is not taken from a variable")
            elif not required(expression):
                problems.append(
                    f"node-{n}: pairing secret has a default ({interpolate(expression)!r}): "
                    "a shipped secret is no secret"
                )
        for n in NODES:
            init = service(compose, f"node-{n}-init")
            password = resolve_shell_var(init_admin_password(init), init)
            if not password or not required(password):
                problems.append(f"node-{n}: the admin password is not required (no default)")
    return problems


def check_startup_order(compose: dict) -> list[str]:
    problems = []
    for n in NODES:
        for role in ("web", "worker", "beat", "sip"):
            name = f"node-{n}-{role}"
            depends = service(compose, name).get("depends_on") or {}
            if isinstance(depends, list) or (
                (depends.get(f"node-{n}-init") or {}).get("condition")
                != "service_completed_successfully"
            ):
                problems.append(f"{name}: does not wait for node-{n}-init to complete")
        init = service(compose, f"node-{n}-init")
        depends = init.get("depends_on") or {}
        if f"node-{n}-postgres" not in depends:
            problems.append(f"node-{n}-init: does not wait for node-{n}-postgres")
        for dep in depends:
            if not dep.startswith(f"node-{n}-"):
                problems.append(f"node-{n}-init: depends on {dep}")
    return problems


def check_ports(compose: dict) -> list[str]:
    problems = []
    for n, port in WEB_PORT_OF.items():
        ports = [interpolate(str(p)) for p in service(compose, f"node-{n}-web").get("ports") or []]
        if f"{port}:8000" not in ports:
            problems.append(f"node-{n}-web: {port}:8000 not published (has {ports})")
    return problems


def check_pbx(compose: dict) -> list[str]:
    pbx = service(compose, "pbx")
    mounts = [str(v) for v in pbx.get("volumes") or []]
    if not any(
        m.split(":")[0] in ("./deploy/kamailio/kamailio.cfg", "deploy/kamailio/kamailio.cfg")
        for m in mounts
    ):
        return ["pbx: deploy/kamailio/kamailio.cfg is not mounted"]
    return []


def check_ldap(compose: dict) -> list[str]:
    """The directory is Debian's slapd with the small directory, its passwords required
    variables, and the master is set to read it (the backup gets it by replication)."""
    problems = []
    ldap = service(compose, "ldap")
    build = ldap.get("build") or {}
    dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    text = dockerfile.read_text() if build and dockerfile.is_file() else ""
    if "apt-get install" not in text or "slapd" not in text or "FROM debian" not in text:
        problems.append("ldap: not built from Debian's slapd package")
    if "directory.ldif" not in text:
        problems.append("ldap: the image does not hold deploy/ldap/directory.ldif")
    env = environment(ldap)
    for var in ("KWS_LDAP_ADMIN_PASSWORD", "KWS_LDAP_PHONEBOOK_PASSWORD"):
        if not required(env.get(var, "")):
            problems.append(f"ldap: {var} is not a required variable (no default)")
    master = init_settings(service(compose, "node-a-init"))
    if master.get("phonebook.source") != "ldap":
        problems.append("node-a: phonebook.source is not ldap")
    url = master.get("phonebook.ldap_url", "")
    if urlsplit(url).hostname != "ldap" or urlsplit(url).scheme not in ("ldap", "ldaps"):
        problems.append(f"node-a: phonebook.ldap_url {url!r} is not the ldap service")
    if not master.get("phonebook.base_dn", "").endswith("dc=kws,dc=example"):
        problems.append("node-a: phonebook.base_dn is not in the directory")
    password = resolve_shell_var(
        master.get("phonebook.bind_password", ""), service(compose, "node-a-init")
    )
    if password != env.get("KWS_LDAP_PHONEBOOK_PASSWORD"):
        problems.append("node-a: phonebook.bind_password is not the directory's phonebook password")
    backup = init_settings(service(compose, "node-b-init"))
    if any(key.startswith("phonebook.") for key in backup):
        problems.append("node-b: sets phonebook keys (a backup gets the master's by replication)")
    return problems


def check_files_exist(compose: dict) -> list[str]:
    problems = []
    for name, svc in compose.get("services", {}).items():
        build = svc.get("build")
        if isinstance(build, dict):
            dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: {dockerfile.relative_to(ROOT)} does not exist")
        test = (svc.get("healthcheck") or {}).get("test") or []
        for arg in test if isinstance(test, list) else []:
            if str(arg).startswith("deploy/") and not (ROOT / arg).is_file():
                problems.append(f"{name}: healthcheck script {arg} does not exist")
        for mount in svc.get("volumes") or []:
            source = str(mount).split(":")[0]
            if source.startswith("./") and not (ROOT / source).exists():
                problems.append(f"{name}: {source} does not exist")
    return problems


# --- Breaking a copy ---------------------------------------------------------------


def broken(compose: dict, change) -> dict:
    copied = copy.deepcopy(compose)
    change(copied)
    return copied


def _drop(name):
    return lambda c: c["services"].pop(name)


def _set_env(name, var, value):
    return lambda c: c["services"][name]["environment"].__setitem__(var, value)


def _set_command(name, old, new):
    def change(c):
        svc = c["services"][name]
        svc["command"] = [str(a).replace(old, new) for a in svc["command"]]

    return change


BREAKS = {
    "missing worker": (check_complete, _drop("node-b-worker"), "node-b-worker: missing"),
    "missing pbx": (check_complete, _drop("pbx"), "pbx: missing"),
    "wrong postgres": (
        check_complete,
        lambda c: c["services"]["node-a-postgres"].__setitem__("image", "mysql:8"),
        "node-a-postgres: image",
    ),
    "no healthcheck": (
        check_healthchecks,
        lambda c: c["services"]["node-a-beat"].pop("healthcheck"),
        "node-a-beat: no healthcheck",
    ),
    "disabled healthcheck": (
        check_healthchecks,
        lambda c: c["services"]["pbx"].__setitem__("healthcheck", {"disable": True}),
        "pbx: no healthcheck",
    ),
    "worker on the other node's broker": (
        check_own_stores,
        _set_env("node-b-worker", "KWS_BROKER_URL", "redis://node-a-redis:6379/0"),
        "node-b-worker: KWS_BROKER_URL points at 'node-a-redis'",
    ),
    "web on the other node's database": (
        check_own_stores,
        _set_env("node-a-web", "KWS_DATABASE_URL", "postgres://kws:kws@node-b-postgres:5432/kws"),
        "node-a-web: KWS_DATABASE_URL points at 'node-b-postgres'",
    ),
    "beat without a broker": (
        check_own_stores,
        lambda c: c["services"]["node-a-beat"]["environment"].pop("KWS_BROKER_URL"),
        "node-a-beat: no KWS_BROKER_URL",
    ),
    "shared broker": (
        check_nothing_shared,
        _set_env("node-b-worker", "KWS_BROKER_URL", "redis://node-a-redis:6379/0"),
        "both nodes use the database/broker host 'node-a-redis'",
    ),
    "shared volume": (
        check_nothing_shared,
        lambda c: c["services"]["node-b-beat"]["volumes"].append("node-a-data:/shared"),
        "both nodes use the volume 'node-a-data'",
    ),
    "two masters": (
        check_redundancy,
        _set_command("node-b-init", "redundancy.mode=slave", "redundancy.mode=master"),
        "node-b: mode 'master', not slave",
    ),
    "peer is itself": (
        check_redundancy,
        _set_command("node-a-init", "redundancy.peer=node-b-web", "redundancy.peer=node-a-web"),
        "node-a: peer 'node-a-web:8000' is not node-b-web",
    ),
    "peer on a wrong port": (
        check_redundancy,
        _set_command("node-b-init", "node-a-web:8000", "node-a-web:8001"),
        "node-b: peer port 8001",
    ),
    "different secrets": (
        check_redundancy,
        _set_env(
            "node-b-init", "KWS_PAIRING_SECRET", "${KWS_PAIRING_SECRET_B:-another-long-secret-b}"
        ),
        "pairing secrets differ",
    ),
    "short default secret": (
        check_redundancy,
        lambda c: [
            _set_env(f"node-{n}-init", "KWS_PAIRING_SECRET", "${KWS_PAIRING_SECRET:-short}")(c)
            for n in NODES
        ],
        "node-a: pairing secret has a default ('short')",
    ),
    "default admin password": (
        check_redundancy,
        _set_env("node-a-init", "KWS_ADMIN_PASSWORD", "${KWS_ADMIN_PASSWORD:-}"),
        "node-a: the admin password is not required (no default)",
    ),
    "web does not wait for init": (
        check_startup_order,
        lambda c: c["services"]["node-b-web"]["depends_on"].pop("node-b-init"),
        "node-b-web: does not wait for node-b-init",
    ),
    "web waits for init to start only": (
        check_startup_order,
        lambda c: c["services"]["node-a-web"]["depends_on"].__setitem__(
            "node-a-init", {"condition": "service_started"}
        ),
        "node-a-web: does not wait for node-a-init",
    ),
    "init waits for the other node": (
        check_startup_order,
        lambda c: c["services"]["node-a-init"]["depends_on"].__setitem__(
            "node-b-postgres", {"condition": "service_healthy"}
        ),
        "node-a-init: depends on node-b-postgres",
    ),
    "node B on port 8000 too": (
        check_ports,
        lambda c: c["services"]["node-b-web"].__setitem__("ports", ["8000:8000"]),
        "node-b-web: 8001:8000 not published",
    ),
    "pbx without its config": (
        check_pbx,
        lambda c: c["services"]["pbx"].__setitem__("volumes", []),
        "pbx: deploy/kamailio/kamailio.cfg is not mounted",
    ),
    "missing ldap": (check_complete, _drop("ldap"), "ldap: missing"),
    "ldap without healthcheck": (
        check_healthchecks,
        lambda c: c["services"]["ldap"].pop("healthcheck"),
        "ldap: no healthcheck",
    ),
    "ldap from another image": (
        check_ldap,
        lambda c: c["services"]["ldap"].__setitem__(
            "build", {"context": "deploy/compose", "dockerfile": "pbx.Dockerfile"}
        ),
        "ldap: not built from Debian's slapd package",
    ),
    "ldap admin password with a default": (
        check_ldap,
        _set_env("ldap", "KWS_LDAP_ADMIN_PASSWORD", "${KWS_LDAP_ADMIN_PASSWORD:-secret}"),
        "ldap: KWS_LDAP_ADMIN_PASSWORD is not a required variable",
    ),
    "master not set to the directory": (
        check_ldap,
        _set_command("node-a-init", "ldap://ldap:389", "ldap://elsewhere:389"),
        "node-a: phonebook.ldap_url 'ldap://elsewhere:389' is not the ldap service",
    ),
    "master with a CSV phonebook": (
        check_ldap,
        _set_command("node-a-init", "phonebook.source=ldap", "phonebook.source=csv"),
        "node-a: phonebook.source is not ldap",
    ),
    "backup sets the phonebook": (
        check_ldap,
        _set_command("node-b-init", "--admin=admin", "--set=phonebook.source=ldap --admin=admin"),
        "node-b: sets phonebook keys",
    ),
    "missing Dockerfile": (
        check_files_exist,
        lambda c: c["services"]["node-a-web"].__setitem__(
            "build", {"context": ".", "dockerfile": "deploy/Nope"}
        ),
        "node-a-web: deploy/Nope does not exist",
    ),
}

CHECKS = [
    check_complete,
    check_healthchecks,
    check_own_stores,
    check_nothing_shared,
    check_redundancy,
    check_startup_order,
    check_ports,
    check_pbx,
    check_ldap,
    check_files_exist,
]


# --- Tests -----------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_compose_file_passes(compose, check):
    assert check(compose) == []


@pytest.mark.parametrize("case", list(BREAKS), ids=str)
def test_broken_copy_is_detected(compose, case):
    check, change, expected = BREAKS[case]
    assert check(compose) == [], "the real file must pass before the broken copy means anything"
    problems = check(broken(compose, change))
    assert any(expected in p for p in problems), problems


def test_every_check_has_a_broken_case():
    assert {check for check, _, _ in BREAKS.values()} == set(CHECKS)


def test_merge_keys_are_resolved(compose):
    # The file relies on anchors and << merges; a loader that ignored them would
    # leave services without commands and the other checks would prove nothing.
    assert "<<" not in yaml.safe_dump(compose)
    for n in NODES:
        assert "uvicorn" in command_args(service(compose, f"node-{n}-web"))
        assert "worker" in command_args(service(compose, f"node-{n}-worker"))
        assert "beat" in command_args(service(compose, f"node-{n}-beat"))


def test_helpers():
    assert interpolate("a${X:-def}b${Y}c$$d") == "adefbc$d"
    assert host_of("postgres://kws:${P:-x:y}@node-a-postgres:5432/kws") == "node-a-postgres"
    assert resolve_shell_var("$S", {"environment": ["S=v"]}) == "v"
    assert named_volumes({"volumes": ["./x:/y", "data:/z", {"source": "v2"}]}) == {"data", "v2"}
    svc = {"command": ["sh", "-c", 'exec python manage.py kwsinit --set=a.b="$$X" --set c.d=2']}
    assert init_settings(svc) == {"a.b": "$X", "c.d": "2"}


# --- The PBX configuration ---------------------------------------------------------

REGISTRAR_LINES = [
    'modparam("usrloc", "db_mode", 0)',
    'modparam("auth_db", "calculate_ha1", yes)',
    'modparam("auth_db", "password_column", "password")',
    'modparam("auth_db", "load_credentials", "")',
    "maxbuffer=4194304",
    'if (method != "REGISTER")',
    'auth_check("$fd", "subscriber", "1")',
    'auth_challenge("$fd", "1")',
    "consume_credentials()",
    'save("location")',
]


def test_kamailio_cfg_is_a_registrar():
    text = KAMAILIO_CFG.read_text()
    modules = "ctl jsonrpcs sl pv kex maxfwd xlog db_sqlite auth auth_db usrloc registrar"
    for module in modules.split():
        assert f'loadmodule "{module}.so"' in text
    for line in REGISTRAR_LINES:
        assert line in text


def test_kamailio_cfg_parses(tmp_path):
    kamailio = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    assert kamailio, "kamailio is not installed (make test installs it: deploy/ensure-services.sh)"
    result = subprocess.run(
        [
            kamailio,
            "-c",
            "-f",
            str(KAMAILIO_CFG),
            "-A",
            "SIP_PORT=15999",
            "-A",
            f'DBURL="sqlite://{tmp_path}/k.sqlite"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "127.0.0.1 [127.0.0.1]:15999" in output


def test_the_image_holds_every_app_of_the_project():
    from django.conf import settings

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    apps = [app for app in settings.INSTALLED_APPS if (ROOT / app / "apps.py").exists()]
    missing = [app for app in apps if f"COPY {app}/ {app}/" not in dockerfile]
    assert len(apps) >= 7 and not missing, f"the Dockerfile does not copy {missing}"
