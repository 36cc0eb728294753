"""A handset's phonebook lookup: the uplink kind, the server's answer from the real
directory down the handset's downlink, the simulated handset and ``kwssim --lookup``."""

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from basestations import protocol
from basestations.sim import SimHandset, Simulation
from messaging import hub as h
from messaging import server
from tests.phonebook.conftest import ldap_settings, store

MAC = "02:4B:57:01:00:01"


def test_a_lookup_uplink_carries_its_text_and_ref():
    [event] = protocol.uplink_parse({"mac": MAC, "events": [
        {"kind": "lookup", "from": "2001", "text": " alice ", "ref": 7}]}, MAC)  # fmt: skip
    assert event == {"kind": "lookup", "from": "2001", "text": "alice", "ref": 7}
    for bad, message in (({"text": ""}, "text must be 1 to 32 characters"),
                         ({"text": "x" * 33}, "text must be 1 to 32 characters"),
                         ({"ref": 0}, "ref must be an integer")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            protocol.uplink_parse({"mac": MAC, "events": [
                {"kind": "lookup", "from": "2001", "text": "a", "ref": 1, **bad}]}, MAC)  # fmt: skip


def test_the_answer_goes_down_to_the_base_station_of_the_handset_and_ends_when_delivered():
    async def scenario():
        hub = h.Hub()
        hub.accept(True)
        waiting = asyncio.ensure_future(hub.downlink(MAC, ["2001"], 5))
        await asyncio.sleep(0)
        hub.lookup_answer(to="2001", ref=9, text="ali",
                          entries=[{"name": "Alice Andersen", "number": "4711"}])  # fmt: skip
        [message] = await waiting
        assert message["kind"] == "lookup_result" and message["ref"] == 9
        assert message["entries"] == [{"name": "Alice Andersen", "number": "4711"}]
        hub.uplink(MAC, [{"kind": "delivered", "id": message["id"], "from": "2001"}])
        assert not hub.messages

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)  # the server reads the phonebook in a thread
def test_the_server_answers_a_lookup_from_the_directory(directory_server, monkeypatch):
    store(ldap_settings(directory_server))
    hub = h.Hub()
    hub.accept(True)
    monkeypatch.setattr(server, "HUB", hub)

    async def scenario(text):
        # One worker thread, whose database connection is closed at the end (the test
        # database is dropped afterwards).
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        waiting = asyncio.ensure_future(hub.downlink(MAC, ["2001"], 10))
        await asyncio.sleep(0)
        await server._lookup({"kind": "lookup", "from": "2001", "text": text, "ref": 3})
        [message] = await waiting
        await loop.run_in_executor(None, connections.close_all)
        return message

    found = asyncio.run(scenario("4712"))
    assert (found["entries"], found["error"]) == ([{"name": "Bob Berg", "number": "4712"}], "")
    store({"phonebook.bind_password": "wrong"})
    refused = asyncio.run(scenario("bob"))
    assert refused["entries"] == []
    assert (
        refused["error"] == "the LDAP server refused the bind DN or password (invalid credentials)"
    )


def test_a_simulated_handset_shows_and_keeps_the_answer():
    handset = SimHandset("2001")
    events = handset.receive({"id": 5, "to": "2001", "kind": "lookup_result", "ref": 4,
                              "text": "47", "entries": [{"name": "Alice Andersen", "number": "4711"},
                                                        {"name": "Bob Berg", "number": "4712"}],
                              "error": ""}, [])  # fmt: skip
    assert events == [{"kind": "delivered", "id": 5, "from": "2001"}]
    assert handset.screen[-1] == "Alice Andersen 4711 (+1)"
    assert handset.lookups[-1]["ref"] == 4 and len(handset.lookups[-1]["entries"]) == 2
    handset.receive({"id": 6, "to": "2001", "kind": "lookup_result", "ref": 5, "text": "x",
                     "entries": [], "error": "no corporate phonebook is configured"}, [])  # fmt: skip
    assert handset.screen[-1] == "Phonebook: no corporate phonebook is configured"


def answer_commands(folder, sim, entries, error="", timeout=10.0):
    """Stand in for the running simulation: take the lookup command, write its answer."""

    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for command_file in folder.glob("*.command.json"):
                command = json.loads(command_file.read_text())
                command_file.unlink()
                assert command["action"] == "lookup"
                sim.handsets[0].lookups.append({"ref": command["ref"], "text": command["text"],
                                                "entries": entries, "error": error})  # fmt: skip
                (folder / "handsets.json").write_text(json.dumps(sim.handsets_state()))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kwssim_lookup_prints_the_entries_or_the_error(tmp_path, capsys):
    sim = Simulation(server="127.0.0.1:9", secret="s", handsets=0, control_dir=tmp_path)
    sim.handsets = [SimHandset("2001")]
    (tmp_path / "handsets.json").write_text(json.dumps(sim.handsets_state()))
    answering = answer_commands(tmp_path, sim, [{"name": "Alice Andersen", "number": "4711"}])
    call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2001", "--lookup=alice")
    answering.join()
    out = capsys.readouterr().out
    assert "handset 2001: 1 entry for 'alice'" in out and "  Alice Andersen  4711" in out
    answering = answer_commands(tmp_path, sim, [], "the LDAP server ... did not answer in time")
    with pytest.raises(CommandError, match="phonebook lookup of 'bob' failed: the LDAP server"):
        call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2001", "--lookup=bob")
    answering.join()
    with pytest.raises(CommandError, match="no answer to the lookup of 'carla' within 0.5 s"):
        call_command("kwssim", f"--control-dir={tmp_path}", "--handset=2001", "--lookup=carla",
                     "--wait=0.5")  # fmt: skip
