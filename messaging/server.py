"""The asyncio side of the web process: the routes ``kws_admin.asgi`` serves without
Django's thread pool, and the start and stop of their background tasks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[dict, Callable, Callable], Awaitable[None]]
ROUTES: dict[str, Handler] = {}


async def lifespan(receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable) -> None:
    """ASGI lifespan: start the background tasks at start-up, stop them at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
