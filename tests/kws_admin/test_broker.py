"""The embedded broker (kws_admin.broker): a message file is renamed into place whole, and a
file that is not a message is set aside with a warning instead of killing the consumer."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from kws_admin import broker

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
