"""Registration states flow both ways with the heartbeat, so either Users list shows all."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from core.models import NodeState, Phase
from tests.redundancy.test_peer_api import backup_status, master, post  # noqa: F401 (fixture)
from tests.redundancy.test_replication_fakes import HOME
from users.models import DectUser, PeerRegistration, SipRegistration
from users.registration import peer_registration_rows_parse, peer_registrations_record
from users.selectors import peer_registrations_cursor, registrations_changed_since
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def users(count: int, *, node: str = "M") -> list[DectUser]:
    first = 2000 + DectUser.objects.count()
    made = [dect_user_create(actor="test", extension=str(first + n)) for n in range(count)]
    DectUser.objects.filter(pk__in=[u.pk for u in made]).update(home=HOME[node])
    return made


def registered(user: DectUser, at: datetime, state: str = "registered", reason: str = ""):
    SipRegistration.objects.update_or_create(
        user=user, defaults={"state": state, "reason": reason, "changed_at": at}
    )


def row(user: DectUser, at: datetime, state: str = "registered", reason: str = "") -> list:
    return [user.pk, state, reason, at.isoformat()]


def test_the_rows_after_a_cursor_come_oldest_first_with_ties_ordered_by_user():
    a, b, c = users(3)
    registered(a, T0)
    registered(b, T0)  # the same moment as a
    registered(c, T0 + timedelta(seconds=1))
    assert [r[0] for r in registrations_changed_since(None)] == [a.pk, b.pk, c.pk]
    assert [r[0] for r in registrations_changed_since([T0.isoformat(), a.pk])] == [b.pk, c.pk]
    assert registrations_changed_since([(T0 + timedelta(seconds=1)).isoformat(), c.pk]) == []
    assert [r[0] for r in registrations_changed_since(None, limit=2)] == [a.pk, b.pk]


def test_a_heartbeat_stores_the_peers_states_and_the_answer_carries_ours(master):  # noqa: F811
    a, b = users(2, node="S")
    mine = users(1, node="M")[0]
    registered(mine, T0, state="failed", reason="403 Forbidden")
    sent = [row(a, T0), row(b, T0 + timedelta(seconds=1), "failed", "408 Request Timeout")]

    answer = post({**backup_status(), "registrations": sent, "registrations_seen": None})[0]
    assert answer.status_code == 200
    stored = {r.user_id: (r.state, r.reason) for r in PeerRegistration.objects.all()}
    assert stored == {a.pk: ("registered", ""), b.pk: ("failed", "408 Request Timeout")}
    body = answer.json()
    assert body["registrations"] == [row(mine, T0, "failed", "403 Forbidden")]
    assert body["registrations_seen"] == [(T0 + timedelta(seconds=1)).isoformat(), b.pk]
    assert "registrations" not in NodeState.load().peer_status  # kept in their own table

    # The peer says it has our row: the next answer sends nothing again.
    again = post({**backup_status(), "registrations": [],
                  "registrations_seen": body["registrations"][0][3:] + [mine.pk]})[0]  # fmt: skip
    assert again.json()["registrations"] == []


def test_a_state_of_a_user_not_replicated_yet_waits_for_the_next_beat():
    a, b = users(2)
    missing_id = b.pk + 100
    rows = peer_registration_rows_parse(
        [
            row(a, T0),
            [missing_id, "registered", "", (T0 + timedelta(seconds=1)).isoformat()],
            row(b, T0 + timedelta(seconds=2)),
        ]  # fmt: skip
    )
    assert peer_registrations_record(rows, now=T0 + timedelta(seconds=5)) == 1
    # The cursor stops before the missing user, so the peer sends it (and b) again.
    assert peer_registrations_cursor() == [T0.isoformat(), a.pk]


def test_an_old_state_of_a_user_this_server_never_had_is_left_out():
    a, b = users(2)
    rows = peer_registration_rows_parse(
        [row(a, T0), [b.pk + 100, "registered", "", T0.isoformat()], row(b, T0)]
    )
    assert peer_registrations_record(rows, now=T0 + timedelta(minutes=5)) == 2
    assert peer_registrations_cursor() == [T0.isoformat(), b.pk]


@pytest.mark.parametrize(
    ("registrations", "error"),
    [
        ({"1": "registered"}, "registrations must be a list"),
        ([[1, "registered", ""]], "registrations[0] must be [user id, state, reason, changed at]"),
        ([["1", "registered", "", "2026-12-01T08:00:00+00:00"]], "'1' is not a user id"),
        ([[1, "dancing", "", "2026-12-01T08:00:00+00:00"]], "'dancing' is not a registration state"),
        ([[1, "registered", "", "yesterday"]], "'yesterday' is not a time"),
        ([[1, "registered", "", "2026-12-01T08:00:00"]], "has no time zone"),
    ],
)  # fmt: skip
def test_malformed_registration_states_are_refused_and_change_nothing(
    master,  # noqa: F811
    registrations,
    error,
):
    users(1)
    response = post({**backup_status(), "registrations": registrations})[0]
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert NodeState.load().peer_seen_at is None
    assert not PeerRegistration.objects.exists()


def test_a_malformed_cursor_is_refused(master):  # noqa: F811
    response = post({**backup_status(), "registrations_seen": ["soon", 1]})[0]
    assert response.status_code == 400
    assert "'soon' is not a time" in response.json()["error"]


def test_the_masters_list_shows_and_filters_the_states_the_backup_reported(
    master,  # noqa: F811
    admin_client,
):
    NodeState.objects.update_or_create(pk=1, defaults={"phase": Phase.NORMAL})
    here, there = users(2)
    DectUser.objects.filter(pk=there.pk).update(home=HOME["S"])
    registered(here, T0, state="failed", reason="403 Forbidden")
    # A stale row of this server for the backup's user is not what the list shows.
    registered(there, T0, state="failed", reason="stale-own-row")
    peer_registrations_record(peer_registration_rows_parse([row(there, T0)]), now=T0)

    page = admin_client.get(reverse("user_list")).text
    assert "403 Forbidden" in page and "by the other server" in page and "stale-own-row" not in page
    found = admin_client.get(reverse("user_list"), {"registration": "registered"}).text
    assert "2001" in found and "2000" not in found
    failed = admin_client.get(reverse("user_list"), {"registration": "failed"}).text
    assert "2000" in failed and "2001" not in failed
    ordered = admin_client.get(reverse("user_list"), {"sort": "registration"}).text
    assert ordered.index("403 Forbidden") < ordered.index("by the other server")
