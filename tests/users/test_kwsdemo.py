"""``manage.py kwsdemo``: the demo users and their SIP accounts for the demo's PBX, and the
failover and restore requests that reach the running demo through its control folder."""

import threading

import pytest
from django.core.management import CommandError, call_command

from core import demo_control
from tests.redundancy.test_replication_fakes import become_backup
from users.models import DectUser

pytestmark = pytest.mark.django_db


def test_the_demo_users_and_their_sip_accounts_are_written_for_the_pbx(tmp_path):
    accounts = tmp_path / "sip_accounts"
    call_command("kwsdemo", "--users=6", f"--sip-accounts={accounts}")
    rows = dict(line.split("\t") for line in accounts.read_text().splitlines())
    assert rows == dict(DectUser.objects.values_list("sip_username", "sip_password"))
    assert len(rows) == 6 and accounts.stat().st_mode & 0o777 == 0o600
    call_command("kwsdemo", "--users=6")  # a second run changes nothing
    assert DectUser.objects.count() == 6


def test_no_demo_users_on_a_backup():
    become_backup()
    with pytest.raises(CommandError, match="demo users not created"):
        call_command("kwsdemo", "--users=4")
    assert not DectUser.objects.exists()


def test_failover_without_a_running_demo_says_so(tmp_path):
    with pytest.raises(CommandError, match="no demo is running"):
        call_command("kwsdemo", "failover", f"--demo-dir={tmp_path}")


def test_a_request_reaches_the_launcher_and_its_answer_is_printed(tmp_path, capsys):
    control = tmp_path / "control"
    demo_control.launcher_claim(control)
    seen: list[str] = []
    stop = threading.Event()

    def launcher() -> None:  # what kws_admin/demo.py's loop does
        while not stop.wait(0.05):
            for request in demo_control.requests_take(control):
                seen.append(request.action)
                ok = request.action == "failover"
                demo_control.reply_write(control, request, ok=ok,
                                         message=f"did {request.action}" if ok else "refused")  # fmt: skip

    thread = threading.Thread(target=launcher)
    thread.start()
    try:
        call_command("kwsdemo", "failover", f"--demo-dir={tmp_path}")
        assert "did failover" in capsys.readouterr().out
        with pytest.raises(CommandError, match="refused"):
            call_command("kwsdemo", "restore", f"--demo-dir={tmp_path}")
    finally:
        stop.set()
        thread.join()
        demo_control.launcher_release(control)
    assert seen == ["failover", "restore"]
    assert not list(control.glob("re*-*"))  # every request and reply taken
    with pytest.raises(demo_control.ControlError):
        demo_control.request_send(control, "failover")
