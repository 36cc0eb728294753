"""The XML-RPC API with real node processes, used as applications use it (Python's
xmlrpc.client), with simulated base stations and handsets answering."""

import http.client
import threading
import time
import xmlrpc.client

import pytest

from basestations.sim import Simulation
from tests.system.conftest import NEW_PASSWORD, logged_in, pair_cluster, wait_until
from tests.system.test_basestations import DEVICE_SECRET, provision

pytestmark = pytest.mark.system

RPC_ENV = {"KWS_RPC_PAGING_TIMEOUT": "4"}
LOGIN = "GW-DECT/admin"


def proxy(node) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{node.port}", allow_none=False)


def events_until(app, sid, check, timeout=10.0) -> list[dict]:
    """Receive until an event passes ``check``; every event received, in order."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = app.session_receive(sid, 1)
        assert isinstance(batch, list), batch
        seen += batch
        if any(check(e) for e in batch):
            return seen
    raise AssertionError(f"no matching event within {timeout} s; got {seen}")


def release_of(to):
    return lambda e: e["type"] == "endpoint_release" and e["from"] == to


def test_applications_reach_every_handset_through_the_master(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=10, master_env=RPC_ENV,
                      backup_env=RPC_ENV) as pair:  # fmt: skip
        pair.wait_paired()
        logged_in(pair.master)  # the first login's password change, replicated
        provision(pair, basestations=3, media=0)
        homes = dict(pair.master_db.rows("select extension, home from users_dectuser"))
        extensions = [str(2000 + n) for n in range(10)]  # every user has a handset
        on_m = next(e for e in extensions if homes[e] == "A")
        on_s = next(e for e in extensions if homes[e] == "B")
        master = f"127.0.0.1:{pair.master.port}"
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=3, media=0,
                        handsets=10, roam_seconds=(600, 900), seed=16) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 3}, timeout=30,
                       what="the base stations on the master")  # fmt: skip

            # Only the master accepts applications; the backup answers HTTP 503 naming it.
            with pytest.raises(xmlrpc.client.ProtocolError) as refused:
                proxy(pair.backup).session_login(LOGIN, NEW_PASSWORD)
            assert refused.value.errcode == 503
            conn = http.client.HTTPConnection("127.0.0.1", pair.backup.port, timeout=5)
            conn.request("POST", "/RPC2", body=b"<methodCall/>")
            assert f"connect to the master at 127.0.0.1:{pair.master.port}" in (
                conn.getresponse().read().decode())  # fmt: skip

            app = proxy(pair.master)
            assert app.session_login(LOGIN, "not the password") == -4
            assert app.session_receive(12345, 0) == -1
            sid = app.session_login(LOGIN, NEW_PASSWORD)
            assert sid > 0 and app.session_login("admin", NEW_PASSWORD) > 0

            # A message to a handset whose user is on M, and to one on S: both delivered.
            for to in (on_m, on_s):
                assert app.endpoint_sms(sid, int(to), "100", f"Hello {to}") == 0
                [release] = [e for e in events_until(app, sid, release_of(to))
                             if e["type"] == "endpoint_release"]  # fmt: skip
                assert release["reason"] == 0
                assert sim.handset(to).screen[-1] == f"Hello {to}"

            # A bad argument is a clear fault and sends nothing.
            with pytest.raises(xmlrpc.client.Fault, match="argument to must be a string"):
                app.endpoint_sms(sid, [2000], "100", "never sent")
            with pytest.raises(xmlrpc.client.Fault, match="at most 72"):
                app.endpoint_sms(sid, on_m, "100", "x" * 73)
            assert all("never sent" not in h.screen for h in sim.handsets)

            # Advanced messages get the handsets' answers, with the application's id.
            other = next(e for e in extensions if e not in (on_m, on_s))
            sim.behave(other, "reject")
            for to, answer, mid in ((on_m, 0x81, 41), (other, 0x83, 42)):
                assert app.endpoint_sms_advanced(sid, 0x02, 0x03, mid, 3, "endpoint", to,
                                                 0, 0, 0, 0, 0, 0, 0, 0, 0, "Alarm", "") == 0  # fmt: skip
                seen = events_until(app, sid, lambda e: e["type"] == "endpoint_sms_advanced")
                answered = [e for e in seen if e["type"] == "endpoint_sms_advanced"][-1]
                assert (answered["from"], answered["id"], answered["action"]) == (to, mid, answer)
                assert isinstance(answered["data"], xmlrpc.client.Binary)

            # A busy handset and one out of range: released with their reasons.
            sim.behave(other, "busy")
            app.endpoint_sms(sid, other, "100", "are you there")
            assert events_until(app, sid, release_of(other))[-1]["reason"] == 4
            sim.behave(other, "out_of_range")
            time.sleep(0.5)
            app.endpoint_sms(sid, other, "100", "are you there")
            assert events_until(app, sid, release_of(other), timeout=10)[-1]["reason"] == 3
            assert app.endpoint_sms(sid, "7777", "100", "nobody") == 0  # no such user
            assert events_until(app, sid, release_of("7777"))[-1]["reason"] == 5

            # At most 16 messages on their way per application.
            statuses = [app.endpoint_sms(sid, other, "100", f"queued {n}") for n in range(17)]
            assert statuses == [0] * 16 + [-2]

            # What handsets say by themselves: a message, the alarm button, the charger.
            sid2 = app.session_login(LOGIN, NEW_PASSWORD)
            sim.send_message(on_m, "100", "Need help in room 12")
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_sms")
            sms = [e for e in got if e["type"] == "endpoint_sms"][0]
            assert (sms["from"], sms["to"], sms["display"]) == (on_m, "100", "Need help in room 12")
            sim.press_alarm(on_s)
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_status")
            alarm = [e for e in got if e["type"] == "endpoint_status"][0]
            assert (alarm["from"], alarm["status"], alarm["data"].data[0]) == (on_s, 12, 0x01)
            sim.charger(on_m, into=True)
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_status"
                               and e["status"] == 11)  # fmt: skip
            assert got[-1]["data"].data == b"\x01"

            # Location: the base stations a handset hears, its own first.
            app.endpoint_base_stations(sid2, on_m)
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_base_stations")
            rfp_map = got[-1]["rfp_map"]
            assert 1 <= len(rfp_map) <= 5 and all(set(r) == {"rpn", "rssi"} for r in rfp_map)
            current = sim.handset(on_m).basestation
            assert rfp_map[0]["rpn"] == sim.basestations.index(current) + 1

            # A broadcast to all: its outcome, and every handset in range shows it.
            assert app.endpoint_broadcast(sid2, "Fire drill at 3") == 0
            assert events_until(app, sid2, lambda e: e["type"] == "endpoint_broadcast")
            wait_until(lambda: all(h.screen and h.screen[-1] == "Fire drill at 3"
                                   for h in sim.handsets if h.behaviour != "out_of_range"),
                       timeout=10, what="the broadcast on every handset")  # fmt: skip
            # A text call: the handset accepts, picks from a menu, answers a prompt.
            call = app.endpoint_call_setup(sid2, on_m, "100", "Nurse call: room 12")
            assert call > 0
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_call_accept")
            assert got[-1]["call"] == call
            sim.handset(on_m).menu_choice = 2
            assert app.endpoint_call_menu(sid2, call, ["I go", "Send someone else"]) == 0
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_call_menu")
            assert (got[-1]["call"], got[-1]["item"], got[-1]["errorcode"]) == (call, 2, 0)
            assert app.endpoint_call_prompt(sid2, call, "Who goes?") == 0
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_call_prompt")
            assert (got[-1]["call"], got[-1]["text"]) == (call, "OK")
            assert app.endpoint_call_release(sid2, call) == 0
            assert app.endpoint_call_display(sid2, call, "gone") == -5  # the call has ended
            wait_until(lambda: sim.handset(on_m).screen[-1] == "call ended", timeout=10,
                       what="the call ended on the handset")  # fmt: skip

            # A hardware element: asked and answered with both hardware and element.
            assert app.endpoint_hardware_extension(sid2, 3, 1, 3, "endpoint", on_s) == 0
            got = events_until(app, sid2, lambda e: e["type"] == "endpoint_hardware_extension")
            assert (got[-1]["from"], got[-1]["hardware"], got[-1]["element"]) == (on_s, 3, 3)
            assert got[-1]["data"].data == bytes([3, 42])

            assert app.session_logout(sid2) is True
            assert app.session_receive(sid2, 0) == -1

            # The GUI: the Status page lists the connected application; a user's page sends
            # a test message to its handset and shows whether it arrived.
            gui = logged_in(pair.master)
            listed = gui.get("/messaging/applications/").text
            assert 'data-field="applications"' in listed and "<td>admin</td>" in listed
            assert "does not accept applications" in logged_in(pair.backup).get(
                "/messaging/applications/").text  # fmt: skip
            pk = pair.master_db.value("select id from users_dectuser where extension = %s", on_s)
            page = gui.post(f"/messaging/users/{pk}/test/", {"display": "GUI test"})
            assert "Test message sent" in page.text

            def newest_row() -> str:
                page = gui.get(f"/messaging/users/{pk}/").text
                return page.split("<tbody>")[1].split("</tr>")[0]

            wait_until(lambda: "GUI test" in newest_row() and "delivered" in newest_row(),
                       timeout=10, what="the test message delivered")  # fmt: skip
            assert sim.handset(on_s).screen[-1] == "GUI test"
        assert sim.error is None


class RedundancyAwareApplication:
    """The SDK's redundancy logic: on a protocol or socket error, switch to the other
    server, log in again and go on receiving. Collects every event it receives."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.current = 0
        self.events: list[tuple[str, dict]] = []
        self.switches: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        sid = None
        while not self.stop.is_set():
            server = self.servers[self.current]
            app = xmlrpc.client.ServerProxy(f"http://{server}")
            try:
                if sid is None:
                    sid = app.session_login(LOGIN, NEW_PASSWORD)
                    if sid <= 0:
                        raise OSError(f"login refused: {sid}")
                    self.switches.append((time.time(), server))
                batch = app.session_receive(sid, 1)
                if batch == -1:
                    sid = None
                    continue
                self.events += [(server, e) for e in batch]
            except (xmlrpc.client.ProtocolError, OSError):
                sid = None
                self.current = (self.current + 1) % len(self.servers)
                time.sleep(0.2)

    def alarms(self, server: str) -> int:
        return sum(1 for s, e in self.events if s == server and e.get("type") == "endpoint_status"
                   and e.get("status") == 12)  # fmt: skip


def test_a_redundancy_aware_application_follows_the_master_to_the_backup_and_back(
    tmp_path, cluster_log
):
    with pair_cluster(tmp_path, cluster_log, users=10, failover_time=0, master_env=RPC_ENV,
                      backup_env=RPC_ENV) as pair:  # fmt: skip
        pair.wait_paired()
        logged_in(pair.master)
        provision(pair, basestations=2, media=0)
        master = f"127.0.0.1:{pair.master.port}"
        backup = f"127.0.0.1:{pair.backup.port}"
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=2, media=0,
                        handsets=2, roam_seconds=(600, 900), seed=17) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 2}, timeout=30,
                       what="the base stations on the master")  # fmt: skip
            app = RedundancyAwareApplication([master, backup])
            app.thread.start()
            try:
                wait_until(lambda: app.switches, timeout=10, what="the application logged in")
                sim.press_alarm("2000")
                wait_until(lambda: app.alarms(master) == 1, timeout=10, what="alarm via M")

                killed = time.time()
                pair.master.kill()
                sim.press_alarm("2001")  # raised while the application finds the backup
                wait_until(lambda: app.alarms(backup) == 1, timeout=30, what="alarm via S")
                reconnected = next(t for t, s in app.switches if s == backup)
                print(
                    f"the application received events from the backup "
                    f"{reconnected - killed:.2f} s after kill -9 of the master"
                )
                sim.press_alarm("2000")
                wait_until(lambda: app.alarms(backup) == 2, timeout=10, what="second via S")

                pair.master.start()
                pair.master.wait_ready()
                wait_until(lambda: pair.master_db.phase() == "normal"
                           and pair.backup_db.phase() == "normal", timeout=40,
                           what="the pair formed again")  # fmt: skip
                wait_until(lambda: app.switches[-1][1] == master, timeout=20,
                           what="the application back on the master")  # fmt: skip
                wait_until(lambda: sim.attached_counts() == {master: 2}, timeout=30,
                           what="the base stations back on the master")  # fmt: skip
                sim.press_alarm("2001")
                wait_until(lambda: app.alarms(master) == 2, timeout=15, what="alarm via M again")
            finally:
                app.stop.set()
                app.thread.join(5)
            # Every alarm arrived once: none lost, none twice.
            assert app.alarms(master) + app.alarms(backup) == 4
        assert sim.error is None
