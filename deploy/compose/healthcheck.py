"""Container healthchecks of a KWS Admin node (python:3.11-slim has no curl or ps).

    python deploy/compose/healthcheck.py web|worker|beat|sip

Exit status 0 means healthy. Runs inside the node container, so it sees the
node's KWS_* environment. A process is healthy when it does its work, not only when it
runs: the worker answers a ping and stamps the tasks it runs, beat stamps its ticks and
the SIP process its steps (core.health); a stamp older than ``STALE`` fails the check.
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


# Seconds without work after which a process is unhealthy: several of the engine's beats.
STALE = float(os.environ.get("KWS_HEALTHCHECK_STALE", "15"))


def _stamp_fresh(role: str) -> None:
    """The process's liveness stamp in the node's database is recent (core.health)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")
    import django

    django.setup()
    from core.health import health_parts

    part = next(p for p in health_parts(window=STALE) if p.role == role)
    if part.age is None:
        raise SystemExit(f"{role} has never stamped its work")
    if not part.alive:
        raise SystemExit(f"{role} has done no work for {part.age:.0f} s")


def check_worker() -> None:
    # The worker answers a remote-control ping through the node's own broker, and runs
    # the engine's tasks (its stamp).
    from kws_admin.celery import app

    name = f"celery@{socket.gethostname()}"
    replies = app.control.ping(destination=[name], timeout=5)
    if not any(name in reply for reply in replies):
        raise SystemExit(f"{name} did not answer a ping")
    _stamp_fresh("worker")


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
    # Beat answers nothing: the process must run, its broker answer, and its ticks be
    # stamped.
    if not _running("celery", "beat"):
        raise SystemExit("no running celery beat process")
    url = os.environ.get("KWS_BROKER_URL", "")
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).ping()
    _stamp_fresh("beat")


def check_sip() -> None:
    """The node's SIP registration process runs and does its steps."""
    if not _running("manage.py", "kwssip"):
        raise SystemExit("no running kwssip process")
    _stamp_fresh("sip")


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
