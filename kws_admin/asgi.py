"""The node's web server application: ASGI, served by uvicorn (one process per node).

Why ASGI and one process: an XML-RPC application waits in ``session_receive`` for up to
its timeout, and a base station waits on its downlink for the next message to one of its
handsets. Under gunicorn's threads every such wait held a worker thread (2 workers x 4
threads: eight waiting applications would have stopped the GUI). Here ``/RPC2`` and the
device downlink are served natively by asyncio, so a waiting application costs a
coroutine, not a thread, and the sessions and their event queues live in this one
process's memory. So are the device keep-alives that change nothing (nearly all of
them): ``basestations.attached`` answers them from memory. Every other path (and every
other keep-alive) is the Django application as before, run through a pool of
``settings.WEB_THREADS`` threads (a2wsgi), so the GUI, the peer API and the device
keep-alives keep their synchronous code and their concurrency.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kws_admin.settings")
django.setup()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from basestations import attached, protocol  # noqa: E402
from messaging import server  # noqa: E402

_django = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS)
ROUTES = {
    **server.ROUTES,
    protocol.KEEPALIVE_PATH: attached.endpoint(_django),
    protocol.PROBE_PATH: attached.probe,
}


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await server.lifespan(receive, send, also=(attached.watch,))
        return
    if scope["type"] == "http":
        handler = ROUTES.get(scope.get("path", ""))
        if handler is not None:
            await handler(scope, receive, send)
            return
    await _django(scope, receive, send)
