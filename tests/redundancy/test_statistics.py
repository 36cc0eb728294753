"""Status > Statistics: each server's counters and its peer's (from the heartbeat), the
failovers the runner's takeover records, and the chart of the last 24 hours."""

import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.urls import reverse
from django.utils import timezone

from core.assignment import Assignment
from core.counters import count, counters_flush, counters_read, counters_reset
from core.models import Event, NodeState, Phase
from core.selectors import config_read
from core.services import config_update
from redundancy.heartbeat import MalformedStatus, parse_status, status_payload
from redundancy.models import FailoverRecord, StatisticsSample
from redundancy.statistics import (
    chart_build,
    failovers_registered_check,
    samples_parse,
    statistics_sample,
)
from redundancy.tasks import users_take_over_task
from tests.redundancy.test_replication_fakes import become_backup, become_master
from users.models import DectUser, SipRegistration
from users.services import dect_user_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


@pytest.fixture(autouse=True)
def fresh_counters():
    counters_reset()
    yield
    counters_reset()


def cells(page: str, node: str) -> dict[str, str]:
    """One server's column of the page, by data-field."""
    return dict(re.findall(rf'data-node="{re.escape(node)}" data-field="([^"]+)">([^<]*)<', page))


PEER_STATUS = {
    "claims": {"node": "kws-b", "mode": "slave", "firmware": "PCS06B", "database_uuid": "",
               "features": {}},
    "phase": "normal",
    "users_handled": 20,
    "users_registered": 18,
    "replication": {"position": 41, "master_head": 44, "lag_entries": 3, "lag_seconds": 0.4},
    "devices": {"rfp": [1, 2, 3], "media": [7]},
    "counters": {"sip.registrations": 120, "sip.registration_failures": 4, "failovers": 1,
                 "devices.refused.firmware": 2, "devices.refused.authentication": 1,
                 "devices.refused.unknown": 0, "messages.delivered": 9},
    "failovers": [
        {"at": "2026-12-01T10:00:00+00:00", "peer": "kws-a", "users": 20, "taken_over_s": 3.1,
         "registered_s": 4.25, "devices_s": None, "devices": 0},
        {"at": "2026-11-30T08:00:00+00:00", "peer": "kws-a", "users": 19, "taken_over_s": 3.0,
         "registered_s": 5.5, "devices_s": 6.0, "devices": 4},
    ],
}  # fmt: skip


@pytest.fixture
def paired_master(settings):
    settings.NODE_NAME = "kws-a"
    settings.DETECTION_WINDOW = 10.0
    become_master()
    config_update(changes={"sip.registrar": "127.0.0.1:5060"}, actor="test")
    users = [dect_user_create(actor="test", extension=str(2000 + n)) for n in range(4)]
    DectUser.objects.update(home="A")
    SipRegistration.objects.bulk_create(
        SipRegistration(user=u, state="registered", changed_at=timezone.now()) for u in users[:3]
    )
    NodeState.objects.filter(pk=1).update(
        phase=Phase.NORMAL,
        peer_seen_at=timezone.now() - timedelta(seconds=1),
        peer_status=PEER_STATUS,
    )
    return users


def test_each_server_is_shown_with_its_own_counters_and_the_peers_from_its_heartbeat(
    paired_master, admin_client
):
    count("sip.registrations", 7)
    count("sip.registration_failures", 2)
    count("devices.refused.firmware")
    counters_flush(force=True)
    page = admin_client.get(reverse("statistics")).text
    own, peer = cells(page, "kws-a"), cells(page, "kws-b")
    assert own["registered"] == "3 of 4 handled"
    assert (own["attempts"], own["failures"], own["refused"], own["refused-firmware"]) == (
        "9", "2", "1", "1",
    )  # fmt: skip
    assert (own["failovers"], own["failover"]) == ("0", "none")
    assert peer["registered"] == "18 of 20 handled"
    assert (peer["attempts"], peer["failures"], peer["failovers"]) == ("124", "4", "1")
    assert (peer["basestations"], peer["media"], peer["refused"]) == ("3", "1", "3")
    assert peer["delivered"] == "9"
    assert peer["replication"] == "applied #41 of #44: 3 behind, 0.4 s"
    assert peer["failover"] == (
        "20 users of kws-a: taken over 3.1 s after detection, registered 4.25 s, devices (none)"
    )
    assert own["replication"].startswith("change log at #")
    rows = re.findall(r'<tr data-failover="kws-b">(.*?)</tr>', page)
    assert len(rows) == 2
    assert re.findall(r"<td>([^<]*)</td>", rows[1]) == [
        "kws-b", "2026-11-30 08:00:00", "kws-a", "19", "3.0 s", "5.5 s", "4 after 6.0 s",
    ]  # fmt: skip


def test_a_peer_without_statistics_in_its_heartbeat_is_shown_unknown(paired_master, admin_client):
    old = {k: v for k, v in PEER_STATUS.items() if k not in ("counters", "failovers")}
    NodeState.objects.filter(pk=1).update(peer_status=old)
    page = admin_client.get(reverse("statistics")).text
    assert "kws-b has not sent its statistics (an older version" in page
    peer = cells(page, "kws-b")
    assert (peer["attempts"], peer["registered"]) == ("?", "18 of 20 handled")


def test_the_page_polls_a_fragment_and_draws_the_chart_without_inline_style(
    paired_master, admin_client
):
    now = timezone.now()
    StatisticsSample.objects.bulk_create(
        StatisticsSample(at=now - timedelta(hours=h), users_handled=4, users_registered=r,
                         basestations=b, media_resources=1)
        for h, r, b in ((30, 1, 1), (20, 2, 2), (10, 3, 3), (1, 4, 2))
    )  # fmt: skip
    page = admin_client.get(reverse("statistics")).text
    assert 'hx-get="/statistics/" hx-trigger="every 5s"' in page
    lines = dict(re.findall(r'<polyline data-series="([^"]+)" points="([^"]+)"', page))
    assert set(lines) == {"Users registered", "Users handled", "Base stations attached",
                          "Media resources attached"}  # fmt: skip
    assert all(len(points.split()) == 3 for points in lines.values())  # 30 h ago is left out
    assert "style=" not in page and "<script" not in page.split("</header>")[-1]
    fragment = admin_client.get(reverse("statistics"), headers={"HX-Request": "true"}).text
    assert fragment.startswith('<div id="statistics"') and "<svg" not in fragment


def test_the_chart_scales_its_lines_over_the_last_24_hours():
    now = timezone.now()
    samples = [
        StatisticsSample(at=now - timedelta(hours=24), users_registered=0, users_handled=40),
        StatisticsSample(at=now - timedelta(hours=12), users_registered=20, users_handled=40),
        StatisticsSample(at=now, users_registered=40, users_handled=40),
    ]
    users, devices = chart_build(samples, now=now, width=640, height=160)
    registered = users.series[0]
    assert registered.top == 50 and registered.last == 40
    points = [tuple(map(float, p.split(","))) for p in registered.points.split()]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert xs == [44.0, 338.0, 632.0]  # left edge, middle, right edge of the plot
    assert ys[0] == 8 + 132 and ys[0] > ys[1] > ys[2]  # 0 at the bottom, growing upwards
    assert devices.series[0].top == 1 and not devices.empty
    assert chart_build([], now=now)[0].empty


def test_a_sample_records_what_this_server_serves_and_old_samples_are_dropped(paired_master):
    NodeState.objects.filter(pk=1).update(registering="A", last_tick=timezone.now())
    StatisticsSample.objects.create(at=timezone.now() - timedelta(days=3))
    kept = StatisticsSample.objects.create(at=timezone.now() - timedelta(hours=30))
    sample = statistics_sample()
    assert (sample.users_registered, sample.users_handled) == (3, 4)
    assert set(StatisticsSample.objects.values_list("pk", flat=True)) == {kept.pk, sample.pk}


def test_a_takeover_by_the_runner_is_recorded_with_its_durations(paired_master, settings):
    users = paired_master
    DectUser.objects.filter(pk__in=[users[2].pk, users[3].pk]).update(home="B")
    NodeState.objects.filter(pk=1).update(
        phase=Phase.FAILOVER, registering="AB", last_tick=timezone.now(),
        assignment=Assignment(2, False, "A").as_dict(),
    )  # fmt: skip
    lost_at = time.time() - 5
    started_at = lost_at + 2
    # The moved users registered from here after the peer was found lost.
    SipRegistration.objects.filter(user__in=users[2:]).delete()
    SipRegistration.objects.bulk_create(
        SipRegistration(user=u, state="registered", changed_at=timezone.now()) for u in users[2:]
    )
    users_take_over_task(started_at=started_at, lost_at=lost_at)

    record = FailoverRecord.objects.get()
    assert record.users_moved == 2 and record.peer == "kws-b"
    assert counters_read()["failovers"] == 1
    [summary] = status_payload(values=config_read(), peer_claims=None)["failovers"]
    assert summary["taken_over_s"] == 2.0  # the engine's decision, 2 s after the detection
    assert 5 <= summary["registered_s"] < 60  # the last moved user's registration
    assert summary["devices_s"] is None  # no device of the peer came (none configured)


def test_a_takeover_queued_by_an_older_node_is_timed_from_its_start(paired_master):
    NodeState.objects.filter(pk=1).update(registering="AB", last_tick=timezone.now())
    config_update(changes={"sip.registrar": ""}, actor="test")
    users_take_over_task(started_at=time.time() - 1)
    [summary] = status_payload(values=config_read(), peer_claims=None)["failovers"]
    assert summary["taken_over_s"] == 0.0 and summary["registered_s"] is None


def test_the_heartbeat_carries_the_counters_and_an_old_peers_heartbeat_still_parses(
    paired_master,
):
    count("messages.delivered", 5)
    counters_flush(force=True)
    payload = status_payload(values=config_read(), peer_claims=None)
    assert payload["counters"]["messages.delivered"] == 5
    assert payload["failovers"] == []
    assert len(str({"counters": payload["counters"]})) < 400  # the heartbeat stays small
    parse_status(payload)
    parse_status({k: v for k, v in payload.items() if k not in ("counters", "failovers")})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("counters", [1, 2]),
        ("counters", {"sip.registrations": "many"}),
        ("counters", {"sip.registrations": True}),
        ("counters", {f"c{n}": 1 for n in range(100)}),
        ("failovers", "yesterday"),
        ("failovers", [{"taken_over_s": -1}]),
        ("failovers", [{"registered_s": "soon"}]),
        ("failovers", [{"users": "all"}]),
        ("failovers", [{}] * 11),
    ],
)
def test_malformed_statistics_in_a_heartbeat_are_refused(paired_master, field, value):
    payload = status_payload(values=config_read(), peer_claims=None)
    payload[field] = value
    with pytest.raises(MalformedStatus, match=field):
        parse_status(payload)


def test_the_page_is_readable_on_a_backup_in_failover(admin_client, settings):
    settings.NODE_NAME = "kws-b"
    become_backup(phase=Phase.FAILOVER)
    NodeState.objects.filter(pk=1).update(locked=True, lock_reason="failover")
    response = admin_client.get(reverse("statistics"))
    assert response.status_code == 200
    assert cells(response.text, "kws-b")["failovers"] == "0"


def test_a_reset_starts_this_servers_counters_from_zero_and_is_logged(paired_master, admin_client):
    count("sip.registrations", 3)
    counters_flush(force=True)
    assert admin_client.get(reverse("statistics_reset")).status_code == 405
    assert counters_read()["sip.registrations"] == 3
    response = admin_client.post(reverse("statistics_reset"), follow=True)
    assert "The counters of kws-a start from 0 again." in response.text
    assert counters_read()["sip.registrations"] == 0
    assert cells(response.text, "kws-b")["attempts"] == "124"  # the peer keeps its own
    assert Event.objects.filter(kind="statistics", actor="alice").exists()


def test_a_reset_needs_the_csrf_token(paired_master, admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    count("failovers")
    counters_flush(force=True)
    assert client.post(reverse("statistics_reset")).status_code == 403
    assert counters_read()["failovers"] == 1


def test_the_command_line_prints_both_servers_and_resets_this_ones(paired_master):
    import json

    from django.core.management import call_command

    count("sip.registrations", 2)
    counters_flush(force=True)
    out = StringIO()
    call_command("kwsstats", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["self"]["counters"]["sip.registrations"] == 2
    assert figures["peer"]["name"] == "kws-b" and figures["peer"]["counters"]["failovers"] == 1
    out = StringIO()
    call_command("kwsstats", "--reset", stdout=out)
    assert json.loads(out.getvalue())["self"]["counters"]["sip.registrations"] == 0


def test_the_peer_api_gives_this_servers_samples_of_the_last_day_to_its_peer(paired_master):
    from tests.peer import peer_send
    from tests.redundancy.test_replication_fakes import SECRET

    now = timezone.now()
    StatisticsSample.objects.bulk_create(
        StatisticsSample(at=now - timedelta(hours=h), users_handled=4, users_registered=3,
                         basestations=2, media_resources=1)
        for h in (30, 2, 1)
    )  # fmt: skip
    response, *_ = peer_send("/api/peer/statistics", method="GET", secret=SECRET)
    assert response.status_code == 200 and response.verified
    answer = response.json()
    assert answer["node"] == "kws-a" and [row[1:] for row in answer["samples"]] == [
        [4, 3, 2, 1], [4, 3, 2, 1],
    ]  # fmt: skip
    samples = samples_parse(answer)
    assert abs((samples[-1].at - (now - timedelta(hours=1))).total_seconds()) < 0.1
    assert peer_send("/api/peer/statistics", secret=SECRET)[0].status_code == 405


@pytest.mark.parametrize(
    "answer",
    [[], {"samples": "many"}, {"samples": [[1.0, 2, 3, 4]]}, {"samples": [[1.0, 2, -3, 4, 5]]},
     {"samples": [[1.0, 2, 3, 4, True]]}, {"samples": [[1e20, 2, 3, 4, 5]]}],
)  # fmt: skip
def test_a_malformed_answer_of_the_peer_gives_no_chart(answer):
    with pytest.raises(ValueError, match="samples"):
        samples_parse(answer)


def test_the_peers_chart_says_why_it_is_missing(paired_master, admin_client):
    # The paired master's peer is 127.0.0.1:9, where nothing answers.
    fragment = admin_client.get(reverse("statistics_peer_chart")).text
    assert "The peer's samples are not available:" in fragment and "<svg" not in fragment
    page = admin_client.get(reverse("statistics")).text
    assert 'hx-get="/statistics/peer-chart/" hx-trigger="load"' in page


def test_users_registered_after_the_takeover_are_timed_by_a_later_beat(paired_master):
    users = paired_master
    DectUser.objects.filter(pk__in=[users[2].pk, users[3].pk]).update(home="B")
    SipRegistration.objects.filter(user__in=users[2:]).delete()
    NodeState.objects.filter(pk=1).update(registering="AB", last_tick=timezone.now())
    lost_at = time.time() - 3
    users_take_over_task(started_at=lost_at + 1, lost_at=lost_at)
    assert FailoverRecord.objects.get().registered_at is None  # not registered yet

    registered_at = timezone.now()
    SipRegistration.objects.bulk_create(
        SipRegistration(user=u, state="registered", changed_at=registered_at) for u in users[2:3]
    )
    assert failovers_registered_check() == 0  # one of the two is still to come
    SipRegistration.objects.create(user=users[3], state="registered", changed_at=registered_at)
    assert failovers_registered_check() == 1
    assert FailoverRecord.objects.get().registered_at == registered_at
    assert failovers_registered_check() == 0  # done: nothing waits any more


def test_a_failover_waits_for_its_registrations_only_for_a_while(paired_master):
    users = paired_master
    DectUser.objects.filter(pk=users[3].pk).update(home="B")
    ago = timezone.now() - timedelta(minutes=10)
    old = FailoverRecord.objects.create(started_at=ago, taken_over_at=ago)
    SipRegistration.objects.create(user=users[3], state="registered", changed_at=timezone.now())
    assert failovers_registered_check() == 0  # registered, but too long after its takeover
    now = timezone.now() - timedelta(seconds=1)
    recent = FailoverRecord.objects.create(started_at=now, taken_over_at=now)
    assert failovers_registered_check() == 1
    assert FailoverRecord.objects.get(pk=old.pk).registered_at is None
    assert FailoverRecord.objects.get(pk=recent.pk).registered_at is not None
