"""manage.py kwsadmin shares the page's services (replicated, the same refusals);
Django's createsuperuser and changepassword, which would bypass replication, are refused
with the command to use."""

import io
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import PasswordChangeRequired
from core.models import ChangeLogEntry
from tests.redundancy.test_replication_fakes import become_backup, become_master

pytestmark = pytest.mark.django_db

PW = "Night shift 2026 pw"


def kwsadmin(*args, stdin=""):
    out = io.StringIO()
    old, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        call_command("kwsadmin", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_add_role_disable_reset_delete_from_the_command_line_are_replicated(tmp_path):
    become_master()
    secret = tmp_path / "pw"
    secret.write_text(PW + "\n")
    assert "added" in kwsadmin("add", "root", "--password-file", str(secret))
    assert "added" in kwsadmin("add", "op", "--role", "operator", "--password-file", "-", stdin=PW)
    listing = kwsadmin("list")
    assert "root\tadministrator\tenabled, password to be changed" in listing
    assert "op\toperator\tenabled" in listing
    kwsadmin("disable", "op")
    assert not get_user_model().objects.get(username="op").is_active
    kwsadmin("enable", "op")
    kwsadmin("role", "op", "administrator")
    assert get_user_model().objects.get(username="op").is_superuser
    kwsadmin("passwd", "op", "--password-file", "-", stdin="Another night 2026")
    op = get_user_model().objects.get(username="op")
    assert op.check_password("Another night 2026")
    assert PasswordChangeRequired.objects.filter(user=op).exists()
    kwsadmin("delete", "op")
    ops = list(ChangeLogEntry.objects.filter(key="op").values_list("op", flat=True))
    assert ops == ["upsert"] * 5 + ["delete"]
    assert PW not in str(list(ChangeLogEntry.objects.values_list("data", flat=True)))


@pytest.mark.parametrize(
    "args", [("delete", "root"), ("disable", "root"), ("role", "root", "operator")]
)
def test_the_last_administrator_is_refused_on_the_command_line_too(args):
    kwsadmin("add", "root", "--password-file", "-", stdin=PW)
    with pytest.raises(CommandError, match="root is the last enabled administrator"):
        kwsadmin(*args)
    root = get_user_model().objects.get(username="root")
    assert root.is_active and root.is_superuser


def test_bad_input_and_a_backup_are_refused_with_the_reason():
    with pytest.raises(CommandError, match="nothing changed: .*too short"):
        kwsadmin("add", "x", "--password-file", "-", stdin="short")
    with pytest.raises(CommandError, match="no administrator account 'ghost'"):
        kwsadmin("disable", "ghost")
    become_backup()
    with pytest.raises(CommandError, match="administrator accounts are managed on the master"):
        kwsadmin("add", "root", "--password-file", "-", stdin=PW)
    assert not get_user_model().objects.exists()


def test_createsuperuser_and_changepassword_are_refused_with_the_command_to_use():
    with pytest.raises(CommandError, match="kwsadmin add NAME --role administrator"):
        call_command("createsuperuser", "--username", "eve", "--noinput")
    get_user_model().objects.create_superuser("alice", password=PW)
    with pytest.raises(CommandError, match="kwsadmin passwd NAME"):
        call_command("changepassword", "alice")
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
