"""The messages the hub delivers to handsets are counted for the statistics, by the web
server's watcher (the hub itself does no I/O)."""

import asyncio

import pytest

from core.counters import counters_flush, counters_read, counters_reset, pending
from messaging import hub as h
from messaging.server import delivered_count

MAC = "02:4B:57:01:00:01"

pytestmark = pytest.mark.django_db


def test_a_message_delivered_to_its_handset_is_counted_once():
    counters_reset()
    hub = h.Hub()
    hub.accept(True)

    async def deliver() -> None:
        session = hub.sessions[hub.login(account="app", address="127.0.0.1")]
        waiting = asyncio.ensure_future(hub.downlink(MAC, ["2001"], 5))
        await asyncio.sleep(0)
        hub.send(session, kind="sms", to="2001", fields={"display": "Hello", "callback": ""})
        [message] = await waiting
        hub.uplink(MAC, [{"kind": "delivered", "id": message["id"], "from": "2001"}])

    mark = delivered_count(hub, hub.delivered)
    asyncio.run(deliver())
    mark = delivered_count(hub, mark)
    assert delivered_count(hub, mark) == mark == 1  # counted once, not at every look
    assert pending() == {"messages.delivered": 1}
    counters_flush(force=True)
    assert counters_read()["messages.delivered"] == 1
    counters_reset()
