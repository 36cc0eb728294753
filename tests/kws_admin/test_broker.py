"""The embedded broker (kws_admin.broker): a message file is renamed into place whole, and a
file that is not a message is set aside with a warning instead of killing the consumer."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from kws_admin import broker
from kws_admin.settings import BASE_DIR

TRANSPORT = "kws_admin.broker:Transport"


def options(root: Path, **extra) -> dict:
    queue = root / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(root / "control"),
        "polling_interval": 0.01,
        **extra,
    }


def connect(root: Path, **extra) -> Connection:
    return Connection(
        "filesystem://", transport=TRANSPORT, transport_options=options(root, **extra)
    )


def drain(simple_queue) -> list:
    """Every payload left on the queue, in delivery order."""
    out = []
    while True:
        try:
            message = simple_queue.get(timeout=0.2)
        except Empty:
            return out
        message.ack()
        out.append(message.payload)


def test_a_published_message_is_received_intact(tmp_path):
    sent = {"task": "redundancy.heartbeat", "text": "Grüße ☎", "numbers": [1, 2.5, None]}
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        queue.put(sent)
        message = queue.get(timeout=2)
        message.ack()
        assert message.payload == sent
        queue.close()
    assert os.listdir(tmp_path / "queue") == []  # no temporary or claimed file left behind
    assert (tmp_path / "control" / "q.exchange").exists()


def test_a_final_name_only_ever_holds_a_whole_message(tmp_path, monkeypatch):
    """kombu's own writer creates the final name empty and fills it afterwards; a reader
    listing the folder meanwhile (here a thread, in production the worker) got a torn file."""
    folder = tmp_path / "queue"
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", spy)
    stop, seen, torn = threading.Event(), set(), []

    def watch() -> None:
        while not stop.is_set():
            for name in os.listdir(folder):
                if name.partition(".")[2] != "q.msg" or name in seen:
                    continue  # what kombu's reader would not pick, or already checked
                seen.add(name)
                try:
                    json.loads((folder / name).read_bytes())
                except ValueError:
                    torn.append(name)

    watcher = threading.Thread(target=watch)
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        watcher.start()
        try:
            for n in range(300):
                queue.put({"n": n, "padding": "x" * 20_000})
        finally:
            stop.set()
            watcher.join()
        assert sorted(payload["n"] for payload in drain(queue)) == list(range(300))
        queue.close()
    assert torn == []
    assert len(seen) > 100  # the watcher did look while messages were written
    assert len(renames) == 300
    for src, dst in renames:
        assert Path(src).parent == Path(dst).parent == folder
        assert Path(src).name == f".{Path(dst).name}.tmp"


def test_a_file_still_being_written_is_not_a_message(tmp_path):
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        temp = tmp_path / "queue" / f".1_{uuid.uuid4()}.q.msg.tmp"
        temp.write_bytes(b'{"body": "aGVs')
        assert queue.qsize() == 0
        with pytest.raises(Empty):
            queue.get(timeout=0.2)
        queue.close()
    assert temp.read_bytes() == b'{"body": "aGVs'
    assert not (tmp_path / "rejected").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   \n",
        b'{"body": "c2VjcmV0IHRleHQ=", "content-type": "application/js',
        b"garbage-one-two-three",
        b"\xff\xfe garbage",
        b'["a list", "not a message"]',
        b'{"body": "bm8gcHJvcGVydGllcw=="}',
        b'{"body": "eA==", "properties": {"delivery_info": {}}}',
        b'{"body": "eA=", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}',
        b'{"body": "eA==", "properties": {"delivery_tag": "t", "body_encoding": "rot13"}}',
    ],
    ids=[
        "empty",
        "blank",
        "half",
        "not-json",
        "not-utf8",
        "list",
        "no-properties",
        "no-tag",
        "bad-base64",
        "no-such-codec",
    ],
)
def test_a_bad_file_is_set_aside_with_a_warning_and_the_next_message_is_delivered(
    tmp_path, caplog, content
):
    caplog.set_level(logging.WARNING, logger="kws_admin.broker")
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        bad = f"0_{uuid.uuid4()}.q.msg"  # sorts before any real message: read first
        (tmp_path / "queue" / bad).write_bytes(content)
        queue.put({"good": True})
        message = queue.get(timeout=2)
        message.ack()
        assert message.payload == {"good": True}
        with pytest.raises(Empty):
            queue.get(timeout=0.2)
        queue.close()
    assert (tmp_path / "rejected" / bad).read_bytes() == content
    assert os.listdir(tmp_path / "queue") == []
    warnings = [r for r in caplog.records if r.name == "kws_admin.broker"]
    assert len(warnings) == 1  # once: the file is gone from the queue
    assert warnings[0].levelno == logging.WARNING
    text = warnings[0].getMessage()
    assert bad in text and "rejected" in text
    for fragment in (b"c2VjcmV0", b"garbage", b"a list", b"bm8g", b"eA="):
        assert fragment.decode() not in text  # names the file, never quotes it


def test_store_processed_keeps_the_delivered_file(tmp_path):
    processed = tmp_path / "processed"
    processed.mkdir()
    with connect(tmp_path, store_processed=True, processed_folder=str(processed)) as conn:
        queue = conn.SimpleQueue("q")
        queue.put({"n": 1})
        assert queue.get(timeout=2).payload == {"n": 1}
        queue.close()
    [kept] = os.listdir(processed)
    assert kept.endswith(".q.msg") and json.loads((processed / kept).read_bytes())["body"]


def test_the_fault_injection_tears_every_nth_message_and_the_rest_arrive(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kws_admin.broker")
    with connect(tmp_path, kws_torn_every=3) as conn:
        queue = conn.SimpleQueue("q")
        for n in range(1, 10):
            queue.put({"n": n})
        received = sorted(payload["n"] for payload in drain(queue))
        queue.close()
    assert received == [1, 2, 4, 5, 7, 8]
    rejected = os.listdir(tmp_path / "rejected")
    assert len(rejected) == 3
    assert len([r for r in caplog.records if r.name == "kws_admin.broker"]) == 3


def test_no_fault_injection_unless_asked(tmp_path):
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        for n in range(20):
            queue.put({"n": n})
        assert len(drain(queue)) == 20
        queue.close()
    assert not (tmp_path / "rejected").exists()


# --- The node's settings --------------------------------------------------------------


def node_python(code: str, cwd: Path, data: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` as a node process would, on the embedded broker, from ``cwd``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KWS_")}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(BASE_DIR), "KWS_DATA_DIR": str(data), **env},
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


PUBLISH = """
import json
from kws_admin.celery import app
app.send_task("redundancy.heartbeat")
print(json.dumps({"transport": app.conf.broker_transport,
                  "options": app.conf.broker_transport_options}))
"""


def test_the_embedded_broker_keeps_everything_in_the_data_folder(tmp_path):
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    result = node_python(PUBLISH, cwd, data)
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout)
    assert conf["transport"] == TRANSPORT
    assert conf["options"]["kws_torn_every"] == 0
    assert conf["options"]["control_folder"] == str(data / "broker" / "control")
    assert list(cwd.iterdir()) == []  # kombu's default: a "control" folder right here
    assert (data / "broker" / "control" / "celery.exchange").exists()
    [message] = os.listdir(data / "broker" / "queue")
    assert message.endswith(".celery.msg")


def test_kws_broker_torn_every_turns_on_the_fault_injection(tmp_path):
    code = "from django.conf import settings as s; print(s.CELERY_BROKER_TRANSPORT_OPTIONS)"
    env = {"DJANGO_SETTINGS_MODULE": "kws_admin.settings", "KWS_BROKER_TORN_EVERY": "4"}
    result = node_python(code, tmp_path, tmp_path / "data", **env)
    assert result.returncode == 0, result.stderr
    assert "'kws_torn_every': 4" in result.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2.5", "is not a whole number"),
        ("-1", "must be a whole number from 0 up"),
        ("x", "is not a whole number"),
    ],
)
def test_a_bad_kws_broker_torn_every_stops_the_node(tmp_path, value, message):
    result = node_python(
        "import kws_admin.settings", tmp_path, tmp_path / "data", KWS_BROKER_TORN_EVERY=value
    )
    error = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in error and f"KWS_BROKER_TORN_EVERY={value!r}" in error
    assert message in error


# --- A real worker ----------------------------------------------------------------------

TINY_APP = '''\
"""A standalone Celery app on kws_admin.broker, generated by tests/kws_admin/test_broker.py."""
import json
from pathlib import Path

from celery import Celery

HERE = Path(__file__).resolve().parent
app = Celery("tornapp")
app.conf.update(json.loads((HERE / "conf.json").read_text()))


@app.task(name="tornapp.record")
def record(n):
    with open(HERE / "done.txt", "a") as f:
        f.write(f"{n}\\n")
'''


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s; worker log:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.mark.system
def test_a_worker_lives_on_through_torn_messages_and_runs_the_good_tasks(tmp_path):
    from celery import Celery

    conf = {
        "broker_url": "filesystem://",
        "broker_transport": TRANSPORT,
        "broker_transport_options": options(tmp_path / "broker", kws_torn_every=3),
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "worker_hijack_root_logger": True,
    }
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    (tmp_path / "tornapp.py").write_text(TINY_APP)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KWS_", "CELERY_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(BASE_DIR)]), PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tornapp", "worker", "--pool", "threads",
             "--concurrency", "2", "--loglevel", "INFO", "--without-heartbeat",
             "--without-gossip", "--without-mingle", "--hostname", "torn@%h"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    done, rejected = tmp_path / "done.txt", tmp_path / "broker" / "rejected"

    def executed() -> list[int]:
        return sorted(int(n) for n in done.read_text().split()) if done.exists() else []

    try:
        wait_for(lambda: " ready." in log.read_text(), 60, "worker ready", log)
        # No Django fixup: this test process has DJANGO_SETTINGS_MODULE set.
        client = Celery("tornapp-client", set_as_current=False, fixups=[])
        client.conf.update(conf)
        with client.connection_for_write() as conn:
            # One connection: its 3rd, 6th, 9th and 12th message are written torn.
            for n in range(1, 13):
                client.send_task("tornapp.record", args=[n], connection=conn)
            wait_for(lambda: len(executed()) >= 8, 30, "8 good tasks executed", log)
            wait_for(lambda: len(os.listdir(rejected)) >= 4, 30, "4 torn set aside", log)
            assert worker.poll() is None, log.read_text()
            client.send_task("tornapp.record", args=[13], connection=conn)  # after them all
            wait_for(lambda: 13 in executed(), 30, "a task after the torn ones", log)
        assert executed() == [1, 2, 4, 5, 7, 8, 10, 11, 13]
        assert len(os.listdir(rejected)) == 4
        assert worker.poll() is None
        text = log.read_text()
        assert text.count("moved it to") == 4, text
        for name in os.listdir(rejected):
            assert name in text
        assert "Unrecoverable" not in text and "CRITICAL" not in text
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=5)
