"""Container healthchecks of a KWS Admin node (python:3.11-slim has no curl or ps).

    python deploy/compose/healthcheck.py web|worker|beat|sip

Exit status 0 means healthy. Runs inside the node container, so it sees the
node's KWS_* environment.
"""

import os
import socket
import sys
import urllib.request
from pathlib import Path


def check_web() -> None:
    # /login/ is the one page that answers 200 without a session.
    port = os.environ.get("KWS_HEALTHCHECK_PORT", "8000")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as response:
        if response.status != 200:
            raise SystemExit(f"GET /login/ answered {response.status}")


def check_worker() -> None:
    # The worker answers a remote-control ping through the node's own broker.
    from kws_admin.celery import app

    name = f"celery@{socket.gethostname()}"
    replies = app.control.ping(destination=[name], timeout=5)
    if not any(name in reply for reply in replies):
        raise SystemExit(f"{name} did not answer a ping")


def _running(*words: str) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        args = [a.decode(errors="replace") for a in argv]
        if state not in ("Z", "X", "T") and all(any(w in a for a in args) for w in words):
            return True
    return False


def check_beat() -> None:
    # Beat answers nothing: the process must run and its broker must answer.
    if not _running("celery", "beat"):
        raise SystemExit("no running celery beat process")
    url = os.environ.get("KWS_BROKER_URL", "")
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).ping()


def check_sip() -> None:
    """The node's SIP registration process runs."""
    if not _running("manage.py", "kwssip"):
        raise SystemExit("no running kwssip process")


CHECKS = {"web": check_web, "worker": check_worker, "beat": check_beat, "sip": check_sip}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(CHECKS)}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        CHECKS[sys.argv[1]]()
    except SystemExit:
        raise
    except Exception as exc:  # any failure is "unhealthy", with the reason in the log
        raise SystemExit(f"{sys.argv[1]} unhealthy: {exc!r}") from None
