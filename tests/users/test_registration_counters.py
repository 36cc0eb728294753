"""The SIP process counts every REGISTER that a real Kamailio answers, and the failures,
for the statistics; the counters are in the database once the process stops."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from core.counters import counters_read, counters_reset
from core.services import config_update
from tests.redundancy.test_replication_fakes import become_master
from users.models import DectUser, SipRegistration
from users.registration import RegistrationRunner
from users.services import dect_user_create


def _states() -> dict[str, str]:
    return dict(SipRegistration.objects.values_list("user__sip_username", "state"))


async def _until(what: str, check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.django_db(transaction=True)  # the runner reads the database from its threads
def test_registrations_and_failures_against_kamailio_are_counted(kamailio, settings):
    counters_reset()
    become_master()
    settings.DETECTION_WINDOW = 600  # no engine ticks here: its last decision holds
    config_update(changes={"sip.registrar": f"{kamailio.host}:{kamailio.port}",
                           "sip.domain": kamailio.host, "sip.rate": "1000"},
                  actor="test")  # fmt: skip
    users = [dect_user_create(actor="test", extension=str(2000 + n), sip_username=f"u{n}",
                              sip_password=f"pw-{n}") for n in range(4)]  # fmt: skip
    # The PBX knows u3 with another password: its REGISTER is refused (403).
    kamailio.add_subscribers(
        (u.sip_username, kamailio.host, "not-its-password" if n == 3 else u.sip_password)
        for n, u in enumerate(users)
    )
    DectUser.objects.update(home="A")
    executor = ThreadPoolExecutor(max_workers=1)

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        runner, stop = RegistrationRunner(poll=0.1, flush=0.05), asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            await _until("three in Kamailio", lambda: len(kamailio.location()) == 3)
            await _until("u3 recorded as failed", lambda: _states().get("u3") == "failed")
            await _until("the others recorded", lambda: list(_states().values()).count(
                "registered") == 3)  # fmt: skip
        finally:
            stop.set()
            await running
            await asyncio.to_thread(connections.close_all)

    asyncio.run(scenario())
    figures = counters_read()
    assert figures["sip.registrations"] == 3
    assert figures["sip.registration_failures"] >= 1
    counters_reset()
