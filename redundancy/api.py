"""Peer API endpoints of the redundancy engine."""

from redundancy.peer import peer_endpoint


@peer_endpoint
def heartbeat(request, payload):
    return 200, {}
