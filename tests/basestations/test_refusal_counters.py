"""Each refused keep-alive moves the statistics counter of its cause (core.counters); an
accepted one moves none."""

import pytest

from core.counters import counters_flush, counters_read, counters_reset
from tests.basestations.conftest import report

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_counters():
    counters_reset()
    yield
    counters_reset()


def refused() -> dict[str, int]:
    counters_flush(force=True)
    return {
        name.removeprefix("devices.refused."): value
        for name, value in counters_read().items()
        if name.startswith("devices.refused.")
    }


def test_every_refused_keep_alive_is_counted_by_its_cause(keepalive, device_secret, rfp):
    assert keepalive().status_code == 200
    assert refused() == {"firmware": 0, "authentication": 0, "unknown": 0}

    for _ in range(3):  # logged once, counted every time
        assert keepalive(report(firmware="PCS05B")).status_code == 403
    assert keepalive(secret="not-the-device-secret").status_code == 401
    assert keepalive(sign=False).status_code == 401
    assert keepalive(report(mac="00:13:D1:00:00:99")).status_code == 403
    assert refused() == {"firmware": 3, "authentication": 2, "unknown": 1}


def test_a_replayed_keep_alive_counts_as_an_authentication_refusal(keepalive, device_secret, rfp):
    import time

    now = time.time()
    assert keepalive(now=now).status_code == 200
    assert keepalive(now=now - 1).status_code == 401
    assert refused()["authentication"] == 1
