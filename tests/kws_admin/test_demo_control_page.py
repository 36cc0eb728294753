"""Only in the demo, the backup's Status page fails the master and brings it back."""

import threading

import pytest
from django.urls import reverse

from core import demo_control

pytestmark = pytest.mark.django_db


@pytest.fixture
def launcher(tmp_path, settings):
    """A stand-in for the demo launcher's loop (kws_admin/demo.py) on a control folder."""
    control = tmp_path / "control"
    settings.DEMO_CONTROL_DIR = str(control)
    demo_control.launcher_claim(control)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.wait(0.05):
            for request in demo_control.requests_take(control):
                seen.append(request.action)
                ok = request.action == "failover"
                demo_control.reply_write(control, request, ok=ok,
                                         message="master killed" if ok else "the master runs")  # fmt: skip

    thread = threading.Thread(target=serve)
    thread.start()
    yield seen
    stop.set()
    thread.join()
    demo_control.launcher_release(control)


def test_outside_the_demo_there_is_no_button_and_no_action(admin_client, settings):
    settings.DEMO_CONTROL_DIR = ""
    assert 'id="demo-control"' not in admin_client.get(reverse("status")).text
    assert admin_client.post(reverse("demo_action", args=["failover"])).status_code == 404


def test_the_buttons_ask_the_launcher_and_show_its_answer(admin_client, launcher):
    page = admin_client.get(reverse("status")).text
    assert 'id="demo-control"' in page and "Fail the master" in page
    failed = admin_client.post(reverse("demo_action", args=["failover"]), follow=True)
    assert "master killed" in failed.text
    refused = admin_client.post(reverse("demo_action", args=["restore"]), follow=True)
    assert "the master runs" in refused.text
    assert admin_client.post(reverse("demo_action", args=["reboot"])).status_code == 404
    assert launcher == ["failover", "restore"]


def test_a_demo_that_stopped_is_named(admin_client, tmp_path, settings):
    settings.DEMO_CONTROL_DIR = str(tmp_path / "control")  # no launcher claims it
    answer = admin_client.post(reverse("demo_action", args=["failover"]), follow=True)
    assert "The demo did not do it: no demo is running" in answer.text


def test_an_operator_cannot_fail_the_master(client, launcher, django_user_model):
    client.force_login(django_user_model.objects.create_user("olga", password="x" * 20))
    assert client.post(reverse("demo_action", args=["failover"])).status_code == 403
    assert launcher == []
