"""manage.py kwslicense keygen|issue|install|list."""

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from licensing import codes
from licensing.models import License
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY
from tests.licensing.factories import OTHER_ARI, OWN_ARI, node_setup

ROOT = Path(__file__).resolve().parents[2]


def kwslicense(*args, stdin=None) -> str:
    out = io.StringIO()
    if stdin is None:
        call_command("kwslicense", *args, stdout=out)
    else:
        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            call_command("kwslicense", *args, stdout=out)
        finally:
            sys.stdin = old
    return out.getvalue()


def test_keygen_makes_a_private_key_only_the_owner_reads_and_the_public_key(tmp_path):
    out = kwslicense("keygen", "--out", str(tmp_path / "vendor"))
    key = tmp_path / "vendor" / "vendor.key"
    public = (tmp_path / "vendor" / "vendor.pub").read_text().strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"KWS_LICENSE_PUBLIC_KEY={public}" in out
    private = codes.private_key_load(key.read_bytes())
    assert codes.public_key_text(private.public_key()) == public


def test_keygen_again_keeps_the_key(tmp_path):
    kwslicense("keygen", "--out", str(tmp_path))
    before = (tmp_path / "vendor.key").read_bytes()
    assert "vendor key exists" in kwslicense("keygen", "--out", str(tmp_path))
    assert (tmp_path / "vendor.key").read_bytes() == before


@pytest.fixture
def vendor_dir(tmp_path) -> Path:
    kwslicense("keygen", "--out", str(tmp_path))
    return tmp_path


def test_issue_prints_a_code_the_public_key_checks(vendor_dir):
    text = kwslicense("issue", "--key", str(vendor_dir / "vendor.key"), "--ari", "10a3f2c5",
                      "--product", "14075250", "--users", "500", "--feature", "messaging",
                      "--serial", "1A2B", "--date", "2025-02-03").strip()  # fmt: skip
    public = codes.public_key_load((vendor_dir / "vendor.pub").read_text())
    code = codes.code_verify(text, public)
    assert (code.ari, code.product, code.users, code.features) == (
        OWN_ARI, MASTER_REDUNDANCY, 500, ("messaging",)
    )  # fmt: skip
    assert (code.serial_text, code.issued.isoformat()) == ("00001A2B", "2025-02-03")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ari", "123"], "no code issued: '123' is not an ARI: it has 3 hexadecimal digits"),
        (["--product", "42"], "no code issued: product 42 is not known"),
        (["--product", "14075200"], "needs a user count (--users N)"),
        (["--feature", "teleport"], "feature 'teleport' is not known"),
        (["--serial", "xyz"], "--serial 'xyz' is not 1 to 8 hexadecimal digits"),
        (["--date", "yesterday"], "'yesterday' is not a date like 2025-01-31"),
    ],
)
def test_issue_refuses_what_cannot_be_licensed(vendor_dir, args, message):
    base = {"--ari": OWN_ARI, "--product": "14075250"}
    extra = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["issue", "--key", str(vendor_dir / "vendor.key")]
    for name, value in {**base, **extra}.items():
        argv += [name, value]
    with pytest.raises(CommandError) as refused:
        kwslicense(*argv)
    assert message in str(refused.value)


def test_issue_without_a_readable_key_says_so(tmp_path):
    with pytest.raises(CommandError, match="cannot read the vendor key"):
        kwslicense("issue", "--key", str(tmp_path / "none.key"), "--ari", OWN_ARI,
                   "--product", "14075250")  # fmt: skip


@pytest.mark.django_db
def test_install_and_list(node):
    text = node.issue(product=MASTER_REDUNDANCY, users=500, serial=0xBEEF)
    assert kwslicense("install", text) == (
        f"installed: 14075250 (master redundancy) serial 0000BEEF for ARI {OWN_ARI}\n"
    )
    listed = kwslicense("list")
    assert f"ARI: {OWN_ARI} (class B, EIC 0A3F, FPN 2C, FPS 5)" in listed
    assert f"system ARI (handsets subscribe to it): {OWN_ARI}" in listed
    assert f"acts under: {OWN_ARI}" in listed
    assert "licensed users: 500" in listed
    assert "14075250  Software license for master KIRK Wireless Server 6000 redundancy" in listed
    assert "500 users; issued 2025-01-15; serial 0000BEEF; waiting: takes effect" in listed


@pytest.mark.django_db
def test_install_reads_standard_input(node):
    kwslicense("install", "-", stdin=node.issue() + "\n")
    assert License.objects.count() == 1


@pytest.mark.django_db
def test_install_refuses_with_the_cause_and_installs_none_of_the_codes(node):
    good, wrong = node.issue(), node.issue(ari=OTHER_ARI)
    with pytest.raises(CommandError) as refused:
        kwslicense("install", good, wrong)
    assert str(refused.value) == (
        f"refused, nothing changed: this code is for the server with ARI {OTHER_ARI}, not for "
        f"this server (ARI {OWN_ARI}): install it on the server with ARI {OTHER_ARI}, or order a "
        f"code for ARI {OWN_ARI}"
    )
    assert not License.objects.exists()


@pytest.mark.django_db
def test_install_of_a_backup_code_on_a_master_is_refused(db, trusted):
    node_setup(mode="master")
    with pytest.raises(CommandError, match="refused, nothing changed: license 14075260"):
        kwslicense("install", trusted.issue(product=BACKUP_REDUNDANCY))


@pytest.mark.django_db
def test_list_without_licenses_says_so_and_what_is_missing(db, settings):
    settings.LICENSE_PUBLIC_KEY = ""
    listed = kwslicense("list")
    assert "ARI: (none yet)" in listed
    assert "no license installed" in listed
    assert "note: no vendor public key is configured" in listed


# --- From a clean node, as an administrator types it ------------------------------


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.system  # real manage.py processes, a few seconds
def test_from_a_clean_node_keygen_issue_install_and_refusals_exit_non_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWS_")}
    # SQLite in its own folder: a node as a clean clone makes it, beside the test database.
    env["KWS_DATA_DIR"] = str(tmp_path / "node")
    assert manage("kwslicense", "keygen", "--out", str(tmp_path), env=env).returncode == 0
    env["KWS_LICENSE_PUBLIC_KEY_FILE"] = str(tmp_path / "vendor.pub")
    init = manage("kwsinit", env=env)
    assert init.returncode == 0, init.stderr
    ari = init.stdout.split("ARI generated: ")[1].split(".")[0]
    assert manage("kwsconfig", "get", "system.ari", env=env).stdout == f"system.ari = {ari}\n"

    def issue(for_ari: str) -> str:
        done = manage("kwslicense", "issue", "--key", str(tmp_path / "vendor.key"),
                      "--ari", for_ari, "--product", "14075250", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    code = issue(ari)
    installed = manage("kwslicense", "install", code, env=env)
    assert installed.returncode == 0, installed.stderr
    assert "installed: 14075250 (master redundancy)" in installed.stdout

    other = OTHER_ARI if ari != OTHER_ARI else OWN_ARI
    wrong = manage("kwslicense", "install", issue(other), env=env)
    assert wrong.returncode != 0
    assert f"refused, nothing changed: this code is for the server with ARI {other}" in wrong.stderr

    altered = code[:42] + ("Z" if code[42] != "Z" else "Y") + code[43:]
    forged = manage("kwslicense", "install", altered, env=env)
    assert forged.returncode != 0
    assert "refused, nothing changed: this code is not genuine" in forged.stderr

    again = manage("kwslicense", "install", code, env=env)
    assert again.returncode != 0
    assert "this code is already installed" in again.stderr
    assert "14075250  Software license for master" in manage("kwslicense", "list", env=env).stdout
