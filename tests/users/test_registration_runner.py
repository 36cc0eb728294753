"""The node's SIP process (users/registration.py) with a real Kamailio and the database:
it registers the users this server handles, and un-registers a user that is deleted or
handed to the other server. Kamailio's own location table is the judge."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from core.assignment import BOTH
from core.models import NodeState
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_master
from users.models import DectUser, PbxLink, SipRegistration
from users.registration import RegistrationRunner
from users.services import dect_user_create, dect_user_delete


def _states() -> dict[str, str]:
    return dict(SipRegistration.objects.values_list("user__extension", "state"))


def _changed_at() -> dict[str, object]:
    return dict(SipRegistration.objects.values_list("user__extension", "changed_at"))


async def _until(what: str, check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.django_db(transaction=True)  # the runner reads the database from its threads
def test_deleted_and_handed_over_users_are_unregistered(kamailio, settings):
    become_master()  # each user on its home: A on this master, B on its backup
    settings.DETECTION_WINDOW = 600  # no engine ticks here: its last decision holds
    config_update(changes={"sip.registrar": f"{kamailio.host}:{kamailio.port}",
                           "sip.domain": kamailio.host, "sip.rate": "1000"},
                  actor="test")  # fmt: skip
    users = [dect_user_create(actor="test", extension=str(2000 + n), sip_username=f"u{n}",
                              sip_password=f"pw-{n}") for n in range(5)]  # fmt: skip
    kamailio.add_subscribers((u.sip_username, kamailio.host, u.sip_password) for u in users)
    DectUser.objects.update(home="A")
    deleted, handed = users[0], users[1]

    # One worker thread for the runner's database work, so its connection can be closed.
    executor = ThreadPoolExecutor(max_workers=1)

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        runner, stop = RegistrationRunner(poll=0.1, flush=0.05), asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            await _until("all five in Kamailio", lambda: len(kamailio.location()) == 5)
            await _until("all five recorded", lambda: set(_states().values()) == {"registered"})

            await asyncio.to_thread(dect_user_delete, user=deleted, actor="test")
            # This user's home is the backup's now: not ours any more.
            await asyncio.to_thread(lambda: DectUser.objects.filter(pk=handed.pk).update(home="B"))
            await _until("both gone from Kamailio",
                         lambda: set(kamailio.location()) == {"u2", "u3", "u4"})  # fmt: skip
            await _until("the handed-over user recorded as not registered",
                         lambda: _states().get(handed.extension) == "unregistered")  # fmt: skip
        finally:
            stop.set()
            await running
            await asyncio.to_thread(connections.close_all)

    asyncio.run(scenario())
    assert deleted.extension not in _states()  # its row went with it
    assert {e: s for e, s in _states().items() if e != handed.extension} == {
        "2002": "registered", "2003": "registered", "2004": "registered",
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the runner reads the database from its threads
def test_a_change_of_registrar_moves_every_user_to_the_new_pbx_and_of_rate_none(kamailio_factory):
    old, new = kamailio_factory(), kamailio_factory()
    users = [dect_user_create(actor="test", extension=str(2000 + n), sip_username=f"u{n}",
                              sip_password=f"pw-{n}") for n in range(4)]  # fmt: skip
    for pbx in (old, new):
        pbx.add_subscribers((u.sip_username, pbx.host, u.sip_password) for u in users)
    config_update(changes={"sip.registrar": f"{old.host}:{old.port}", "sip.domain": old.host},
                  actor="test")  # fmt: skip
    executor = ThreadPoolExecutor(max_workers=1)

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        runner, stop = RegistrationRunner(poll=0.1, flush=0.05), asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            await _until("all four with the first PBX", lambda: len(old.location()) == 4)
            await _until("all four recorded", lambda: set(_states().values()) == {"registered"})
            # The default adaptive rate rose with the PBX's prompt answers, and says so.
            raised = (
                "raising: the PBX answers promptly",
                "at the ceiling: the PBX answers promptly",
            )
            await _until("the rate recorded", lambda: PbxLink.load().rate_reason in raised)
            assert (await asyncio.to_thread(PbxLink.load)).rate > 100
            # Another rate or expiry keeps the registrations: no state is reset.
            client, before = runner.client, await asyncio.to_thread(_changed_at)
            await asyncio.to_thread(
                config_update, changes={"sip.rate": "7", "sip.expires": "120"}, actor="test"
            )
            await _until("the new rate applied", lambda: runner.pbx.rate == 7)
            assert runner.client is client and (client.rate, client.expires) == (7, 120)
            await _until("the fixed rate recorded",
                         lambda: PbxLink.load().rate_reason == "fixed (sip.rate)")  # fmt: skip
            assert (await asyncio.to_thread(PbxLink.load)).rate == 7
            assert await asyncio.to_thread(_changed_at) == before
            await asyncio.to_thread(
                config_update, changes={"sip.registrar": f"{new.host}:{new.port}"}, actor="test"
            )
            await _until("all four with the new PBX", lambda: len(new.location()) == 4)
            await _until("none left with the old one", lambda: not old.location())
            await _until("all four recorded again",
                         lambda: set(_states().values()) == {"registered"})  # fmt: skip
        finally:
            stop.set()
            await running
            await asyncio.to_thread(connections.close_all)

    asyncio.run(scenario())
    link = PbxLink.load()
    assert (link.registrar, link.previous) == (f"{new.host}:{new.port}", f"{old.host}:{old.port}")


@pytest.mark.django_db(transaction=True)  # the runner reads the database from its threads
def test_a_takeover_reaches_the_pbx_without_waiting_for_the_next_full_step(kamailio, settings):
    become_master()
    settings.DETECTION_WINDOW = 600  # no engine ticks here: its last decision holds
    config_update(changes={"sip.registrar": f"{kamailio.host}:{kamailio.port}",
                           "sip.domain": kamailio.host}, actor="test")  # fmt: skip
    users = [dect_user_create(actor="test", extension=str(2000 + n), sip_username=f"u{n}",
                              sip_password=f"pw-{n}") for n in range(4)]  # fmt: skip
    kamailio.add_subscribers((u.sip_username, kamailio.host, u.sip_password) for u in users)
    DectUser.objects.filter(pk__in=[users[0].pk, users[1].pk]).update(home="A")
    DectUser.objects.filter(pk__in=[users[2].pk, users[3].pk]).update(home="B")
    executor = ThreadPoolExecutor(max_workers=1)

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        # A full step only once a minute: the takeover must come through the quick check.
        runner, stop = RegistrationRunner(poll=60, flush=0.05), asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            await _until(
                "this master's two users", lambda: set(kamailio.location()) == {"u0", "u1"}
            )
            await asyncio.to_thread(lambda: NodeState.objects.update(registering=BOTH))
            await _until("every user after the takeover",
                         lambda: len(kamailio.location()) == 4, timeout=10)  # fmt: skip
        finally:
            stop.set()
            await running
            await asyncio.to_thread(connections.close_all)

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)  # the writer closes stale connections, as in its thread
def test_status_changes_are_written_in_one_upsert_and_a_deleted_user_is_left_out():
    from users.registration import registrations_record
    from users.sip.client import RegistrationStatus, RegState

    kept, changed, deleted = (dect_user_create(actor="test", extension=e, display_name=e,
                                               sip_username=e, sip_password="pw-" + e)
                              for e in ("2101", "2102", "2103"))  # fmt: skip
    t0 = time.time()
    registrations_record({changed.pk: RegistrationStatus(RegState.PENDING, "", t0)})
    gone = deleted.pk
    dect_user_delete(actor="test", user=deleted)
    written = registrations_record({
        kept.pk: RegistrationStatus(RegState.REGISTERED, "", t0 + 1, t0 + 3600),
        changed.pk: RegistrationStatus(RegState.FAILED, "403 Forbidden " + "x" * 300, t0 + 2),
        gone: RegistrationStatus(RegState.UNREGISTERED, "un-REGISTER", t0 + 3),
    })  # fmt: skip
    assert written == 2
    rows = {r.user_id: r for r in SipRegistration.objects.all()}
    assert set(rows) == {kept.pk, changed.pk}
    assert rows[kept.pk].state == "registered" and rows[kept.pk].expires_at is not None
    assert abs(rows[kept.pk].expires_at.timestamp() - (t0 + 3600)) < 0.001
    assert rows[changed.pk].state == "failed" and len(rows[changed.pk].reason) == 200
    assert abs(rows[changed.pk].changed_at.timestamp() - (t0 + 2)) < 0.001
    assert rows[changed.pk].expires_at is None
