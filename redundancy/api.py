"""Peer API endpoints of the redundancy engine."""

from redundancy.engine import heartbeat_answer
from redundancy.peer import peer_endpoint


@peer_endpoint
def heartbeat(request, payload):
    return heartbeat_answer(payload)


@peer_endpoint
def switchover(request, payload):
    from redundancy.scenarios import switchover_accept

    return switchover_accept(payload)
