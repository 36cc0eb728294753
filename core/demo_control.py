"""The demo's control channel: a folder in the demo's data dir through which
``manage.py kwsdemo failover`` / ``restore`` reach the running launcher (kws_admin/demo.py)
without signals or a second terminal's knowledge of process ids.

- The launcher claims the folder at start (``launcher`` holds its pid) and releases it
  at its end.
- A command writes one request file ``request-<id>`` (``{"action": ...}``, written to a
  temporary name and renamed, so the launcher never reads half a file).
- The launcher takes each request in turn, does it, and writes ``reply-<id>``
  (``{"ok": bool, "message": str}``) the same way; the command prints it and removes it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACTIONS = ("failover", "restore")


class ControlError(RuntimeError):
    """No launcher answers on this folder, or it did not answer in time."""


@dataclass(frozen=True)
class Request:
    id: str
    action: str


def _write(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def launcher_claim(folder: Path) -> None:
    """Mark ``folder`` as served by this process; stale requests of an earlier run go."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("request-*"):
        old.unlink(missing_ok=True)
    (folder / "launcher").write_text(str(os.getpid()))


def launcher_release(folder: Path) -> None:
    (folder / "launcher").unlink(missing_ok=True)


def launcher_running(folder: Path) -> bool:
    try:
        pid = int((folder / "launcher").read_text())
    except (OSError, ValueError):
        return False
    return _alive(pid)


def requests_take(folder: Path) -> Iterator[Request]:
    """The waiting requests, oldest first, each removed as it is handed out."""
    waiting = sorted(folder.glob("request-*"), key=lambda p: p.stat().st_mtime)
    for path in waiting:
        try:
            action = json.loads(path.read_text()).get("action", "")
        except (OSError, ValueError):
            action = ""
        path.unlink(missing_ok=True)
        yield Request(id=path.name.removeprefix("request-"), action=action)


def reply_write(folder: Path, request: Request, *, ok: bool, message: str) -> None:
    _write(folder / f"reply-{request.id}", {"ok": ok, "message": message})


def request_send(folder: Path, action: str, *, timeout: float = 60.0) -> tuple[bool, str]:
    """Ask the launcher serving ``folder`` to do ``action``; wait for and return its reply.

    Raises ControlError when no launcher serves the folder or it does not answer in time."""
    if action not in ACTIONS:
        raise ValueError(f"{action!r} is not one of {', '.join(ACTIONS)}")
    if not launcher_running(folder):
        raise ControlError(f"no demo is running with its data in {folder.parent} (make demo)")
    request_id = f"{time.time_ns():x}-{secrets.token_hex(3)}"
    _write(folder / f"request-{request_id}", {"action": action})
    reply = folder / f"reply-{request_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reply.exists():
            answer = json.loads(reply.read_text())
            reply.unlink(missing_ok=True)
            return bool(answer.get("ok")), str(answer.get("message", ""))
        if not launcher_running(folder):
            raise ControlError("the demo stopped before it answered")
        time.sleep(0.1)
    (folder / f"request-{request_id}").unlink(missing_ok=True)
    raise ControlError(f"the demo did not answer within {timeout:g} s")
