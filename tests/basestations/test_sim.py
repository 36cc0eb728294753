"""The simulators: a device's state machine, and devices against real HTTP servers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from basestations import protocol, udp
from basestations.sim import Answer, SimDevice, Simulation, Unreachable, keepalive_once
from basestations.sim.client import AsyncClient
from basestations.sim.device import REFUSED_RETRY, SWITCH_AT_ONCE
from core import signing

SECRET = "device-secret-for-tests"
A, B = "10.0.0.1:8000", "10.0.0.2:8001"


def device(**kw) -> SimDevice:
    changes = kw.pop("changes", None)
    return SimDevice(kind="rfp", mac=protocol.sim_mac("rfp", 1), name="RFP 001", home=A,
                     secret=SECRET, on_change=changes.append if changes is not None else None,
                     **kw)  # fmt: skip


def accepted(peer=B, interval=1.0) -> Answer:
    return Answer(200, {"server": "master", "peer": peer, "interval": interval, "missed": 2}, True)


def redirect(server) -> Answer:
    return Answer(409, {"error": "this server is the backup", "server": server}, True)


def test_an_accepted_device_is_attached_and_learns_the_peer_and_interval():
    d = device()
    delay = d.on_answer(A, accepted(interval=2.0))
    assert (d.state, d.server, d.peer, d.interval) == ("attached", A, B, 2.0)
    assert 1.6 <= delay <= 2.4
    assert d.report()["peer_reachable"] is None  # it has not probed the peer yet
    d.reachable[B] = True
    assert d.report()["peer_reachable"] is True


def test_a_refused_connection_moves_the_device_to_the_peer_at_once():
    changes = []
    d = device(changes=changes)
    d.on_answer(A, accepted())
    delay = d.on_unreachable(Unreachable(A, "connection refused", refused=True))
    assert (d.state, d.target, d.server) == ("searching", B, "")
    assert delay <= SWITCH_AT_ONCE  # not a retry interval later
    assert d.report()["peer_reachable"] is False  # seen from B, A is the other server
    # B refuses too: searching, it waits the retry interval before A again.
    assert d.on_unreachable(Unreachable(B, "connection refused", refused=True)) >= 0.4 * d.interval
    assert d.target == A
    assert [c.state for c in changes] == ["attached", "searching"]
    assert "connection refused" in changes[-1].line()


def test_a_device_waits_for_the_missed_keepalives_before_it_moves():
    d = device()
    d.on_answer(A, accepted())
    d.on_unreachable(Unreachable(A, "no answer within 1 s", refused=False))
    assert (d.state, d.target) == ("attached", A)
    d.on_unreachable(Unreachable(A, "no answer within 1 s", refused=False))
    assert (d.state, d.target) == ("searching", B)


def test_a_redirect_to_a_master_it_just_lost_keeps_it_at_the_backup():
    d = device()
    d.on_answer(A, accepted())
    d.on_unreachable(Unreachable(A, "connection refused", refused=True))
    delay = d.on_answer(B, redirect(A))
    assert (d.state, d.target) == ("searching", B) and delay > 0
    assert d.on_answer(B, accepted(peer=A)) > 0
    assert (d.state, d.server, d.peer) == ("attached", B, A)


def test_a_redirect_to_a_reachable_master_moves_the_device_back_at_once():
    changes = []
    d = device(changes=changes)
    d.on_answer(A, accepted())
    d.on_unreachable(Unreachable(A, "connection refused", refused=True))
    d.on_answer(B, accepted(peer=A))
    d.reachable[A] = True  # its probe sees the master again
    assert d.on_answer(B, redirect(A)) == 0.0
    assert (d.state, d.target) == ("redirected", A)
    d.on_answer(A, accepted())
    assert [(c.state, c.server) for c in changes][-3:] == [
        ("attached", B), ("redirected", A), ("attached", A),
    ]  # fmt: skip


def test_a_device_configured_with_the_backup_is_sent_to_the_master():
    d = device()
    d.home = d.target = B
    d.on_answer(B, redirect(A))
    assert (d.target, d.peer) == (A, A)
    d.on_answer(A, accepted(peer=B))
    assert (d.state, d.server, d.other()) == ("attached", A, B)


def test_unsigned_accepts_or_redirects_are_not_trusted():
    d = device()
    d.on_answer(A, Answer(200, {"server": "evil", "peer": "6.6.6.6:80"}, verified=False))
    assert d.state == "searching" and d.peer == ""


def test_a_refused_device_retries_slowly_at_its_configured_server():
    changes = []
    d = device(changes=changes)
    assert d.on_answer(A, Answer(403, {"error": "firmware PCS05B is older"}, True)) == REFUSED_RETRY
    assert (d.state, d.target) == ("refused", A)
    d.on_answer(A, Answer(403, {"error": "firmware PCS05B is older"}, True))
    assert len(changes) == 1 and "PCS05B" in changes[0].detail


def test_alternating_between_two_silent_servers_is_reported_once():
    changes = []
    d = device(changes=changes)
    d.on_answer(A, accepted())
    for address in (A, B, A, B):
        d.on_unreachable(Unreachable(address, "connection refused", refused=True))
    assert [c.state for c in changes] == ["attached", "searching"]


def test_a_base_station_reports_its_handsets():
    d = device()
    d.handsets.update({"2002", "2001"})
    assert d.report()["handsets"] == ["2001", "2002"]


# --- Devices against real HTTP servers ----------------------------------------------


class FakeServer:
    """A node's device API as a script: ``mode`` is accept, redirect or refuse; ``peer``
    and ``master`` are what it answers. It signs its answers like a node."""

    def __init__(self, name: str) -> None:
        self.name, self.mode, self.peer, self.master = name, "accept", "", ""
        self.invite = False  # its accepts invite keep-alive datagrams (FakeDatagrams)
        self.keepalives: list[dict] = []
        self.refused_macs: set[str] = set()  # refused whatever the mode
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"server": fake.name}, "", "")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.keepalives.append(body)
                nonce, mac = self.headers[signing.HEADER_NONCE], body.get("mac", "")
                if body.get("mac") in fake.refused_macs:
                    self._send(403, {"error": "refused"}, nonce, mac)
                elif fake.mode == "accept":
                    answer = {"server": fake.name, "peer": fake.peer, "interval": 0.2, "missed": 2}
                    if fake.invite:
                        answer[udp.ADVERT] = True
                    self._send(200, answer, nonce, mac)
                elif fake.mode == "redirect":
                    answer = {"error": "backup", "server": fake.master}
                    self._send(409, answer, nonce, mac)
                else:
                    self._send(403, {"error": "refused"}, nonce, mac)

            def _send(self, status, answer, nonce, mac):
                data = json.dumps(answer).encode()
                self.send_response(status)
                if nonce:
                    headers, data = signing.sign_response(
                        secret=signing.device_key(SECRET, mac), node=fake.name, status=status,
                        request_nonce=nonce, body=data, requester=mac,
                    )  # fmt: skip
                    for k, v in headers.items():
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeDatagrams:
    """A node's keep-alive datagrams on the UDP port of ``http``'s number, as a script:
    ``mode`` is answer (200, signed, inviting more), silent, or use-http."""

    def __init__(self, http: FakeServer) -> None:
        self.http, self.mode, self.received = http, "answer", []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", int(http.address.rsplit(":", 1)[1])))
        self.sock.settimeout(0.05)
        self.open = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.open:
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            _, headers, body = udp.request_parse(data)
            report = json.loads(body)
            self.received.append(report)
            if self.mode == "silent":
                continue
            if self.mode == "use-http":
                self.sock.sendto(udp.response_bytes(udp.USE_HTTP, {}, b""), addr)
                continue
            answer = json.dumps(
                {
                    "server": self.http.name,
                    "peer": self.http.peer,
                    "interval": 0.2,
                    "missed": 2,
                    udp.ADVERT: True,
                }
            ).encode()
            signed, data = signing.sign_response(
                secret=signing.device_key(SECRET, report["mac"]), node=self.http.name,
                status=200, request_nonce=headers[signing.HEADER_NONCE.lower().encode()],
                body=answer, requester=report["mac"],
            )  # fmt: skip
            self.sock.sendto(udp.response_bytes(200, signed, data), addr)

    def close(self) -> None:
        self.open = False
        self.thread.join()
        self.sock.close()


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


@pytest.fixture
def pair():
    master, backup = FakeServer("master"), FakeServer("backup")
    master.peer, backup.master, backup.mode = backup.address, master.address, "redirect"
    yield master, backup
    for server in (master, backup):
        try:
            server.close()
        except OSError:
            pass


def test_devices_attach_to_the_master_move_to_the_backup_and_come_back(pair):
    master, backup = pair
    with Simulation(server=master.address, secret=SECRET, basestations=5, media=1,
                    handsets=4, seed=1) as sim:  # fmt: skip
        wait_for(lambda: sim.attached_counts() == {master.address: 6})
        assert sim.peers() == {backup.address: 6}
        wait_for(lambda: any(k.get("handsets") for k in master.keepalives))
        master.close()  # the master dies: connections are refused
        wait_for(lambda: sim.states().get("searching") == 6)
        backup.mode, backup.peer = "accept", master.address  # the backup's failover starts
        wait_for(lambda: sim.attached_counts() == {backup.address: 6})
        late = [k for k in backup.keepalives[-6:]]
        assert all(k["peer_reachable"] is False for k in late)  # they cannot reach the master
        restarted = FakeServer("master")
        try:
            # The master returns on another port here, so tell the devices through a
            # redirect, as the backup does once the pair has re-formed.
            restarted.peer = backup.address
            backup.mode, backup.master = "redirect", restarted.address
            wait_for(lambda: sim.attached_counts() == {restarted.address: 6})
        finally:
            restarted.close()
    assert sim.error is None


RFP1 = protocol.sim_mac("rfp", 1)
REPORT = {"mac": RFP1, "kind": "rfp", "firmware": "PCS06B", "state": "synced",
          "peer_reachable": None}  # fmt: skip


@pytest.fixture
def inviting():
    server = FakeServer("master")
    server.invite = True
    datagrams = FakeDatagrams(server)
    yield server, datagrams
    for part in (datagrams, server):
        try:
            part.close()
        except OSError:
            pass


def keepalives(address: str, *steps) -> list:
    """Keep-alives of one device's client to ``address``: before each, ``step()`` (if not
    None); each answer, or the Unreachable it raised."""
    client = AsyncClient(secret=SECRET, mac=RFP1, timeout=0.5)

    async def run() -> list:
        results = []
        for step in steps:
            if step is not None:
                step()
            try:
                results.append(await client.keepalive(address, dict(REPORT)))
            except Unreachable as exc:
                results.append(exc)
        client.close()
        return results

    return asyncio.run(run())


def test_a_device_keeps_alive_in_datagrams_once_its_server_invites_them(inviting):
    server, datagrams = inviting
    answers = keepalives(server.address, None, None, None)
    assert all(a.status == 200 and a.verified for a in answers)
    assert len(server.keepalives) == 1 and len(datagrams.received) == 2  # then datagrams
    server.invite = False
    plain = FakeServer("other")
    try:
        assert [a.status for a in keepalives(plain.address, None, None)] == [200, 200]
        assert len(plain.keepalives) == 2  # not invited: HTTP only
    finally:
        plain.close()


def test_a_refused_datagram_goes_over_http_at_once(inviting):
    server, datagrams = inviting
    answers = keepalives(server.address, None, None, datagrams.close, None)
    assert all(a.status == 200 and a.verified for a in answers)
    # The third went over HTTP when its datagram was refused, and the fourth too (the
    # invitation declined for a while): every keep-alive answered, none missed.
    assert len(server.keepalives) == 3 and len(datagrams.received) == 1


def test_an_unanswered_datagram_is_a_missed_keepalive_and_the_next_goes_over_http(inviting):
    server, datagrams = inviting

    def silent() -> None:
        datagrams.mode = "silent"

    def answering() -> None:
        datagrams.mode = "answer"

    first, second, missed, fourth, fifth = keepalives(server.address, None, None, silent, None,
                                                      answering)  # fmt: skip
    assert first.status == second.status == 200
    assert isinstance(missed, Unreachable) and not missed.refused  # as a timeout over HTTP
    assert fourth.status == fifth.status == 200 and fourth.verified and fifth.verified
    # After the unanswered one, HTTP only (for DATAGRAM_PAUSE): a firewall that drops them
    # costs one missed keep-alive, not every other one.
    assert len(server.keepalives) == 3 and len(datagrams.received) == 2


def test_a_datagram_sent_to_http_is_sent_over_http_at_once(inviting):
    server, datagrams = inviting

    def use_http() -> None:
        datagrams.mode = "use-http"

    answers = keepalives(server.address, None, use_http, None)
    assert [a.status for a in answers] == [200, 200, 200]
    assert len(server.keepalives) == 3 and len(datagrams.received) == 2


def test_a_dead_server_is_noticed_at_once_on_datagrams_too(inviting):
    server, datagrams = inviting

    def die() -> None:
        datagrams.close()
        server.close()

    first, dead = keepalives(server.address, None, die)
    assert first.status == 200
    assert isinstance(dead, Unreachable) and dead.refused


def test_devices_on_datagrams_move_to_the_backup_when_the_master_dies(pair):
    master, backup = pair
    master.invite = True
    datagrams = FakeDatagrams(master)
    with Simulation(server=master.address, secret=SECRET, basestations=5, seed=1) as sim:
        wait_for(lambda: sim.attached_counts() == {master.address: 5})
        wait_for(lambda: len(datagrams.received) >= 10)
        datagrams.close()
        master.close()
        wait_for(lambda: sim.states().get("searching") == 5)
        backup.mode, backup.peer = "accept", master.address
        wait_for(lambda: sim.attached_counts() == {backup.address: 5})
    assert sim.error is None


def test_a_refused_device_stays_refused(pair):
    master, _ = pair
    master.mode = "refuse"
    with Simulation(server=master.address, secret=SECRET, basestations=2) as sim:
        wait_for(lambda: sim.states() == {"refused": 2})
        assert sim.attached_counts() == {}


def test_a_simulation_stops_cleanly_when_nothing_answers():
    sim = Simulation(server="127.0.0.1:9", secret=SECRET, basestations=3).start()
    time.sleep(0.3)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3 and not sim._thread.is_alive()


def test_keepalive_once_reports_an_unreachable_server():
    report = {"mac": protocol.sim_mac("rfp", 1), "kind": "rfp", "firmware": "PCS06B",
              "state": "synced", "peer_reachable": None}  # fmt: skip
    with pytest.raises(Unreachable) as info:
        keepalive_once(server="127.0.0.1:9", secret=SECRET, report=report)
    assert info.value.refused


# --- The real device API, served by Django -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simulated_devices_attach_to_a_real_node_and_report_their_handsets(live_server, licensed):
    from basestations.models import BaseStationLink
    from basestations.selectors import handset_last_seen, witness_report
    from core.services import config_update

    config_update(changes={"system.device_secret": SECRET}, actor="test")
    call_command("kwssim", "--provision", "--seconds", "0", "--basestations", "3", "--media", "1")
    address = live_server.url.removeprefix("http://")
    with Simulation(server=address, secret=SECRET, basestations=3, media=1, handsets=5) as sim:
        wait_for(lambda: sim.attached_counts() == {address: 4})
        wait_for(lambda: handset_last_seen("2004") is not None)
    assert BaseStationLink.objects.filter(last_keepalive_at__isnull=False).count() == 3
    assert witness_report()["attached"] == 3
    assert sim.peers() == {}  # a single server has no peer


@pytest.mark.django_db(transaction=True)
def test_kwssim_runs_devices_and_prints_their_state_changes(live_server, licensed, capsys):
    from core.services import config_update

    config_update(changes={"system.device_secret": SECRET}, actor="test")
    call_command("kwssim", "--provision", "--seconds", "0", "--basestations", "2", "--media", "0")
    address = live_server.url.removeprefix("http://")
    call_command("kwssim", "--server", address, "--basestations", "2", "--media", "0",
                 "--seconds", "2")  # fmt: skip
    out = capsys.readouterr().out
    assert f"RFP 001: attached {address} (peer none)" in out
    assert "kwssim stopped: attached {'" + address + "': 2}" in out


def test_handsets_roam_to_a_neighbouring_base_station_and_are_on_one_at_a_time(pair):
    master, _ = pair
    with Simulation(server=master.address, secret=SECRET, basestations=8, handsets=4, seed=3,
                    roam_seconds=(0.0, 0.0)) as sim:  # fmt: skip
        wait_for(lambda: sim.attached_counts() == {master.address: 8})
        wait_for(lambda: all(h.roams >= 4 for h in sim.handsets), timeout=20)
        names = [d.name for d in sim.basestations]
        for handset in sim.handsets:
            steps = list(zip(handset.history, handset.history[1:], strict=False))
            assert steps and all(a != b for a, b in steps)  # it really moved
            # A walking user reaches a base station near the last one (by number); the
            # first move may come before every base station is in service.
            assert all(abs(names.index(a) - names.index(b)) <= 2 for a, b in steps[1:]), steps
            holders = [d for d in sim.basestations if handset.extension in d.handsets]
            assert holders == [handset.basestation]
        assert sum(c.state == "roamed" for c in sim.changes) >= 8
    # What the base stations told the server: each handset on one of them per keep-alive round.
    reported = [k for k in master.keepalives if k.get("handsets")]
    assert {e for k in reported for e in k["handsets"]} == {"2000", "2001", "2002", "2003"}
    assert sim.error is None


def test_a_handset_leaves_a_base_station_that_went_out_of_service_at_once(pair):
    master, _ = pair
    with Simulation(server=master.address, secret=SECRET, basestations=3, handsets=6, seed=5,
                    roam_seconds=(600.0, 600.0)) as sim:  # fmt: skip
        wait_for(lambda: sim.attached_counts() == {master.address: 3})
        broken = sim.basestations[0]
        master.refused_macs.add(broken.mac)  # out of service: no server takes it now
        wait_for(lambda: broken.state == "refused")
        wait_for(lambda: not broken.handsets and all(h.basestation is not broken
                                                     for h in sim.handsets), timeout=8)  # fmt: skip


def test_a_device_remembers_every_server_it_attached_to_and_finds_a_promoted_one_again():
    """Configured with the master A, attached to the backup B during a failover (told
    that its peer is A): when B restarts and A is gone for good, it must not search A
    for ever but come back to B."""
    dev = SimDevice(kind="rfp", mac="00:13:D1:0A:0B:01", name="RFP 1", home="a:80",
                    secret=SECRET)  # fmt: skip
    dev.on_unreachable(Unreachable("a:80", "connection refused", refused=True))
    dev.on_answer("b:80", Answer(200, {"server": "kws-b", "peer": "a:80", "interval": 1.0,
                                       "missed": 2}, True))  # fmt: skip
    assert dev.state == "attached" and dev.known == ["a:80", "b:80"]
    assert dev.report()["servers"] == ["a:80", "b:80"]
    dev.on_unreachable(Unreachable("b:80", "connection refused", refused=True))  # B restarts
    assert dev.target == "a:80"
    dev.on_unreachable(Unreachable("a:80", "connection refused", refused=True))  # A is gone
    assert dev.target == "b:80"  # back to the promoted server, not stuck at A


def test_kwssim_shows_a_handset_of_a_running_simulation_and_queues_its_commands(tmp_path, capsys):
    from basestations.sim import SimHandset

    sim = Simulation(server="127.0.0.1:9", secret="s", handsets=0, control_dir=tmp_path)
    handset = SimHandset("2001", behaviour="reject")
    handset.show("Code blue, room 12")
    sim.handsets = [handset]
    (tmp_path / "handsets.json").write_text(json.dumps(sim.handsets_state()))
    call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2001")
    shown = capsys.readouterr().out
    assert "answers: reject" in shown and "| Code blue, room 12" in shown
    call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2001", "--alarm")
    [queued] = tmp_path.glob("*.command.json")
    assert json.loads(queued.read_text()) == {"handset": "2001", "action": "alarm"}
    with pytest.raises(Exception, match="no handset 2009"):
        call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2009")
