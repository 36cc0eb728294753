"""The sessions and the messages on their way to handsets (messaging.hub), without I/O."""

import asyncio
import time

import pytest

from messaging import hub as h

MAC, OTHER_MAC = "02:4B:57:01:00:01", "02:4B:57:01:00:02"


def run(coro):
    return asyncio.run(coro)


def accepting_hub(**kwargs) -> h.Hub:
    hub = h.Hub(**kwargs)
    hub.accept(True)
    return hub


def sms(hub, session, to="2001", text="Hello"):
    return hub.send(session, kind="sms", to=to, fields={"display": text, "callback": ""})


async def poll(hub, mac=MAC, handsets=("2001",), wait=0.5):
    return await hub.downlink(mac, list(handsets), wait)


def test_a_message_goes_down_to_the_base_station_of_its_handset_and_its_delivery_comes_back():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="127.0.0.1")]
        waiting = asyncio.ensure_future(poll(hub, wait=5))
        await asyncio.sleep(0)
        assert sms(hub, session) == h.OK
        [message] = await waiting
        assert (message["to"], message["kind"], message["display"]) == ("2001", "sms", "Hello")
        hub.uplink(MAC, [{"kind": "delivered", "id": message["id"], "from": "2001"}])
        events = await hub.receive(session, 1)
        assert events == [{"type": "endpoint_release", "from": "2001", "reason": h.NORMAL}]
        assert not session.pending

    run(scenario())


def test_a_handset_no_base_station_names_is_reported_out_of_range_after_the_paging_time():
    async def scenario():
        hub = accepting_hub(paging_timeout=12)
        session = hub.sessions[hub.login(account="app", address="")]
        sms(hub, session, to="2009")
        hub.tick(time.monotonic() + 11)
        assert await hub.receive(session, 0) == []
        hub.tick(time.monotonic() + 13)
        assert await hub.receive(session, 0) == [h.release_event("2009", h.NOT_IN_RANGE)]

    run(scenario())


def test_a_paged_handset_gets_its_message_when_a_base_station_names_it():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        sms(hub, session, to="2002")
        [message] = await poll(hub, handsets=["2002"], wait=1)
        assert message["to"] == "2002"

    run(scenario())


def test_beyond_the_pending_limit_a_send_is_refused_busy():
    hub = accepting_hub(max_pending=16)
    session = hub.sessions[hub.login(account="app", address="")]
    assert [sms(hub, session, to="2009") for _ in range(16)] == [h.OK] * 16
    assert sms(hub, session, to="2009") == h.BUSY


def test_a_second_receive_while_one_waits_gets_receive_active():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        first = asyncio.ensure_future(hub.receive(session, 2))
        await asyncio.sleep(0.01)
        assert await hub.receive(session, 1) == h.RECEIVE_ACTIVE
        first.cancel()

    run(scenario())


def test_when_the_server_stops_accepting_every_session_ends_and_a_waiting_receive_says_so():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        waiting = asyncio.ensure_future(hub.receive(session, 30))
        await asyncio.sleep(0.01)
        hub.accept(False, "the master is back")
        assert await asyncio.wait_for(waiting, 1) is h.ENDED
        assert hub.sessions == {} and hub.refusal == "the master is back"

    run(scenario())


def test_an_advanced_message_gets_the_handsets_answer_with_the_applications_id():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        hub.send(session, kind="sms_advanced", to="2001", app_id=77, wants_answer=True,
                 fields={"display": "Alarm", "action": 2, "response": 3})  # fmt: skip
        [message] = await poll(hub)
        hub.uplink(MAC, [{"kind": "delivered", "id": message["id"], "from": "2001"}])
        assert session.pending  # delivered, its answer still to come
        hub.uplink(MAC, [{"kind": "answer", "id": message["id"], "from": "2001",
                          "action": 0x81, "status": [1]}])  # fmt: skip
        [event] = await hub.receive(session, 1)
        assert (event["type"], event["id"], event["action"], event["from"]) == (
            "endpoint_sms_advanced", 77, 0x81, "2001")  # fmt: skip
        assert not session.pending

    run(scenario())


def test_what_a_handset_says_by_itself_reaches_every_session():
    async def scenario():
        hub = accepting_hub()
        one = hub.sessions[hub.login(account="a", address="")]
        two = hub.sessions[hub.login(account="b", address="")]
        hub.uplink(MAC, [{"kind": "sms", "from": "2001", "to": "100", "display": "Help"},
                         {"kind": "status", "from": "2001", "status": 12, "data": "AQ=="}])  # fmt: skip
        for session in (one, two):
            sms_event, status = await hub.receive(session, 0)
            assert sms_event == {"type": "endpoint_sms", "from": "2001", "to": "100",
                                 "display": "Help"}  # fmt: skip
            assert (status["type"], status["status"], status["data"].data) == (
                "endpoint_status", 12, b"\x01")  # fmt: skip

    run(scenario())


def test_an_answer_from_another_handset_than_the_addressee_is_ignored():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        sms(hub, session)
        [message] = await poll(hub)
        hub.uplink(MAC, [{"kind": "delivered", "id": message["id"], "from": "2002"}])
        assert await hub.receive(session, 0) == [] and session.pending

    run(scenario())


def test_a_newer_poll_of_the_base_station_takes_the_messages_of_the_one_it_replaces():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        old = asyncio.ensure_future(poll(hub, handsets=["2001"], wait=5))
        await asyncio.sleep(0)
        new = asyncio.ensure_future(poll(hub, handsets=["2001", "2002"], wait=5))
        await asyncio.sleep(0)
        sms(hub, session, to="2002")
        assert await old == []
        [message] = await new
        assert message["to"] == "2002"

    run(scenario())


def test_an_idle_session_ends_but_not_one_that_waits_in_receive():
    async def scenario():
        hub = accepting_hub(idle_timeout=60)
        idle = hub.login(account="idle", address="")
        busy = hub.sessions[hub.login(account="busy", address="")]
        waiting = asyncio.ensure_future(hub.receive(busy, 5))
        await asyncio.sleep(0.01)
        hub.tick(time.monotonic() + 61)
        assert idle not in hub.sessions and busy.id in hub.sessions
        waiting.cancel()

    run(scenario())


@pytest.mark.parametrize("reason", [h.USER_BUSY, h.UNKNOWN_REASON])
def test_a_handset_that_refuses_a_message_releases_it_with_its_reason(reason):
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        sms(hub, session)
        [message] = await poll(hub)
        hub.uplink(MAC, [{"kind": "release", "id": message["id"], "from": "2001",
                          "reason": reason}])  # fmt: skip
        assert await hub.receive(session, 0) == [h.release_event("2001", reason)]

    run(scenario())


def test_what_a_handset_says_while_no_application_is_connected_waits_for_the_next_session():
    async def scenario():
        hub = accepting_hub()
        hub.uplink(MAC, [{"kind": "status", "from": "2001", "status": 12, "data": "AQ=="}])
        session = hub.sessions[hub.login(account="app", address="")]
        [event] = await hub.receive(session, 0)
        assert (event["type"], event["status"]) == ("endpoint_status", 12)
        later = hub.sessions[hub.login(account="other", address="")]
        assert await hub.receive(later, 0) == []  # claimed once, by the first

    run(scenario())


def test_a_text_call_goes_through_setup_menu_and_release():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        call = hub.call_setup(session, to="2001", display="Nurse call", callback="")
        [setup] = await poll(hub)
        assert (setup["kind"], setup["call"], setup["display"]) == ("call_setup", call,
                                                                     "Nurse call")  # fmt: skip
        hub.uplink(MAC, [{"kind": "delivered", "id": setup["id"], "from": "2001"},
                         {"kind": "call_accept", "call": call, "from": "2001"}])  # fmt: skip
        assert await hub.receive(session, 0) == [{"type": "endpoint_call_accept", "call": call}]
        assert hub.call_send(session, call, "call_menu", {"items": ["Yes", "No"]}) == h.OK
        [menu] = await poll(hub)
        assert menu["items"] == ["Yes", "No"]
        hub.uplink(MAC, [{"kind": "call_menu", "call": call, "from": "2001", "item": 2,
                          "errorcode": 0}])  # fmt: skip
        assert await hub.receive(session, 0) == [
            {"type": "endpoint_call_menu", "call": call, "item": 2, "errorcode": 0}
        ]
        assert hub.call_send(session, call, "call_release", {"reason": 0}) == h.OK
        assert hub.call_send(session, call, "call_display", {"display": "x"}) == h.UNKNOWN_CALL

    run(scenario())


def test_a_call_to_a_handset_out_of_range_is_released_with_not_in_range():
    async def scenario():
        hub = accepting_hub(paging_timeout=12)
        session = hub.sessions[hub.login(account="app", address="")]
        call = hub.call_setup(session, to="2009", display="x", callback="")
        hub.tick(time.monotonic() + 13)
        assert await hub.receive(session, 0) == [
            {"type": "endpoint_call_release", "call": call, "reason": h.NOT_IN_RANGE}
        ]
        assert hub.calls == {}

    run(scenario())


def test_a_call_of_another_session_is_an_unknown_call():
    hub = accepting_hub()
    mine = hub.sessions[hub.login(account="a", address="")]
    other = hub.sessions[hub.login(account="b", address="")]
    call = hub.call_setup(mine, to="2001", display="x", callback="")
    assert hub.call_send(other, call, "call_display", {"display": "y"}) == h.UNKNOWN_CALL


def test_a_hardware_element_answer_carries_hardware_and_element():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        hub.send(session, kind="hardware", to="2001", wants_answer=True,
                 fields={"hardware": 3, "action": 1, "data": b"\x01"})  # fmt: skip
        [message] = await poll(hub)
        assert (message["hardware"], message["data"]) == (3, "AQ==")
        hub.uplink(MAC, [{"kind": "hardware", "id": message["id"], "from": "2001",
                          "hardware": 3, "reason": 0, "data": "Ayo="}])  # fmt: skip
        [event] = await hub.receive(session, 0)
        assert (event["hardware"], event["element"], event["data"].data) == (3, 3, b"\x03*")
        assert not session.pending

    run(scenario())


def test_a_session_that_leaves_its_events_unfetched_is_refused_busy_before_any_is_lost():
    async def scenario():
        hub = accepting_hub(max_pending=16, queue_max=1000)
        session = hub.sessions[hub.login(account="app", address="")]
        for n in range(hub.events_max):
            hub.release_now(session, to=str(3000 + n), reason=h.UNKNOWN_USER)
        assert sms(hub, session) == h.BUSY
        assert len(await hub.receive(session, 0)) == hub.events_max  # none dropped
        assert sms(hub, session) == h.OK

    run(scenario())


def test_a_receive_waiting_when_its_application_logs_out_gets_unknown_session():
    async def scenario():
        hub = accepting_hub()
        sid = hub.login(account="app", address="")
        waiting = asyncio.ensure_future(hub.receive(hub.sessions[sid], 30))
        await asyncio.sleep(0.01)
        assert hub.logout(sid) is True
        assert await asyncio.wait_for(waiting, 1) == h.UNKNOWN_SESSION

    run(scenario())


def test_a_message_that_reaches_a_base_station_after_its_handset_left_is_paged_again():
    async def scenario():
        hub = accepting_hub()
        session = hub.sessions[hub.login(account="app", address="")]
        sms(hub, session, to="2001")
        [message] = await poll(hub, mac=MAC, handsets=["2001"], wait=1)
        hub.uplink(MAC, [{"kind": "not_here", "id": message["id"], "from": "2001"}])
        # The handset is on another base station now: the message goes there.
        [again] = await poll(hub, mac=OTHER_MAC, handsets=["2001"], wait=1)
        assert again["id"] == message["id"]
        hub.uplink(OTHER_MAC, [{"kind": "delivered", "id": message["id"], "from": "2001"}])
        assert await hub.receive(session, 0) == [h.release_event("2001", h.NORMAL)]

    run(scenario())


def test_the_sessions_of_a_disabled_or_deleted_account_end():
    async def scenario():
        hub = accepting_hub()
        kept = hub.login(account="nurse-app", address="127.0.0.1")
        gone = hub.sessions[hub.login(account="old-app", address="127.0.0.2")]
        waiting = asyncio.ensure_future(hub.receive(gone, 5))
        await asyncio.sleep(0)
        assert hub.accounts_keep(frozenset({"nurse-app", "admin"})) == 1
        assert await waiting is h.ENDED
        assert set(hub.sessions) == {kept}

    run(scenario())
