"""The statistics counters (core.counters): counted in memory, one UPDATE per counter and
flush, kept in the node's database across restarts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import counters
from core.counters import count, counters_flush, counters_read, counters_reset, pending
from core.models import Counter

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_tally():
    counters_reset()
    yield
    counters_reset()


def test_counting_touches_no_database_and_a_flush_writes_one_statement_per_counter():
    with CaptureQueriesContext(connection) as counting:
        for _ in range(5000):
            count("sip.registrations")
        count("sip.registration_failures", 3)
    assert counting.captured_queries == []
    assert pending() == {"sip.registrations": 5000, "sip.registration_failures": 3}

    counters_flush(force=True)  # the first flush creates the rows
    count("sip.registrations", 7)
    count("sip.registration_failures")
    with CaptureQueriesContext(connection) as flushing:
        assert counters_flush(force=True) == 2
    updates = [q["sql"] for q in flushing.captured_queries]
    assert len(updates) == 2 and all(sql.startswith("UPDATE") for sql in updates), updates
    assert pending() == {}
    assert counters_read()["sip.registrations"] == 5007


def test_a_flush_waits_its_interval_unless_forced():
    count("failovers")
    counters_flush(force=True)
    count("failovers")
    assert counters_flush() == 0  # written a moment ago: this one waits
    assert pending() == {"failovers": 1}
    assert counters_flush(force=True) == 1


def test_counters_survive_a_restart_of_the_process():
    count("devices.refused.firmware", 4)
    counters_flush(force=True)
    # A new process starts with an empty tally and reads what was written.
    counters._pending.clear()
    assert counters_read()["devices.refused.firmware"] == 4
    assert Counter.objects.get(name="devices.refused.firmware").value == 4


def test_every_counter_is_read_even_before_it_moved():
    assert counters_read() == dict.fromkeys(counters.NAMES, 0)


def test_a_tally_that_cannot_be_written_waits_for_the_next_flush(monkeypatch):
    count("messages.delivered", 2)

    def database_gone(name, n):
        from django.db import OperationalError

        raise OperationalError("the database is away")

    monkeypatch.setattr(counters, "_add", database_gone)
    assert counters_flush(force=True) == 0
    assert pending() == {"messages.delivered": 2}
    monkeypatch.undo()
    count("messages.delivered")
    counters_flush(force=True)
    assert counters_read()["messages.delivered"] == 3


def test_a_reset_starts_every_counter_from_zero():
    count("failovers", 2)
    counters_flush(force=True)
    count("failovers")
    counters_reset()
    assert counters_read()["failovers"] == 0 and pending() == {}
