"""The Users list's cost does not grow with the users: at most 6 queries whatever the page,
sort, filter or search, and the search still finds by name and extension, in any case."""

import pytest
from django.urls import reverse
from django.utils import timezone

from basestations.models import BaseStation, HandsetSighting
from core.models import NodeState
from tests.redundancy.test_replication_fakes import become_master
from users.models import DectUser, PeerRegistration, SipRegistration
from users.selectors import user_list_node

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

# Session, account, node state with the users' total, the matches' count (searched or
# filtered only), the page (its ids picked in a sub-select), its handsets' sightings.
MAX_QUERIES = 6

REQUESTS = {
    "first page": {},
    "middle page": {"page": "2"},
    "last page": {"page": "3"},
    "search by name": {"q": "berg"},
    "search by extension": {"q": "300"},
    "NODE filter": {"node": "S"},
    "subscription filter": {"subscription": "subscribed"},
    "registration filter": {"registration": "failed"},
    "unregistered filter": {"registration": "unregistered"},
    "sort by extension": {"sort": "-extension", "page": "2"},
    "sort by name": {"sort": "-display_name", "page": "2"},
    "sort by IPEI": {"sort": "ipei"},
    "sort by subscription": {"sort": "subscription"},
    "sort by registration": {"sort": "registration", "page": "2"},
    "sort by registration, descending": {"sort": "-registration"},
    "sort by NODE": {"sort": "node"},
    "search, filter and sort at once": {"q": "holm", "node": "M", "sort": "-registration"},
}


@pytest.fixture
def users_120(db):
    """A master serving its half of 120 users (NODE M: home A, its own registrations;
    NODE S: home B, the peer's), some failed, a third of the handsets seen somewhere."""
    become_master()
    names = ["Anna Berg", "Bo Holm", "Carla Jensen"]
    DectUser.objects.bulk_create(
        DectUser(extension=str(3000 + n), display_name=f"{names[n % 3]} {n}",
                 sip_username=f"u{n}", subscription="subscribed" if n % 4 else "none",
                 home="A" if n % 2 else "B")
        for n in range(120)
    )  # fmt: skip
    now = timezone.now()
    station = BaseStation.objects.create(name="RFP Ward 3", mac="02:4B:57:01:00:09")
    for n, user in enumerate(DectUser.objects.order_by("extension")):
        if n % 3 == 0:
            HandsetSighting.objects.create(extension=user.extension, basestation=station,
                                           seen_at=now)  # fmt: skip
        if n % 7 == 3:
            continue  # no registration known: "not registered"
        state = "failed" if n % 10 == 0 else "registered"
        row = {"user": user, "state": state, "changed_at": now}
        if user.home == "A":
            SipRegistration.objects.create(**row)
        else:
            PeerRegistration.objects.create(**row)


@pytest.mark.parametrize("params", REQUESTS.values(), ids=REQUESTS.keys())
def test_a_request_of_the_list_costs_at_most_6_queries(
    admin_client, users_120, django_assert_max_num_queries, params
):
    # The fragment, as the page's htmx asks for it; the first request of a session also
    # stamps its activity (a session write), which the later ones skip for a minute.
    url = reverse("user_list")
    assert admin_client.get(url, params, HTTP_HX_REQUEST="true").status_code == 200
    with django_assert_max_num_queries(MAX_QUERIES):
        response = admin_client.get(url, params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "of 120 users" in response.text


def test_the_list_still_shows_every_fact_of_a_row(admin_client, users_120):
    page = admin_client.get(reverse("user_list"), HTTP_HX_REQUEST="true").text
    assert "page 1 of 3" in page and "120 of 120 users" in page
    assert page.count('<td class="node">M</td>') == 25
    assert page.count('<td class="node">S</td>') == 25
    assert "by the other server" in page and "not registered" in page
    assert page.count("RFP Ward 3") == 17  # users 3000, 3003, ... 3048
    filtered = admin_client.get(reverse("user_list"), {"registration": "failed"}).text
    assert "10 of 120 users" in filtered  # 3000, 3020, ... but 3010 and 3080 (none known)


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("BERG", {"3000", "3099"}),  # by name, whatever the case
        ("nna berg 9", {"3009", "3099"}),
        ("3099", {"3099"}),  # by extension
        ("U99", {"3099"}),  # by SIP user
    ],
)
def test_search_finds_by_name_and_extension_in_any_case(admin_client, users_120, term, found):
    page = admin_client.get(reverse("user_list"), {"q": term}).text
    for extension in found:
        assert f">{extension}</a>" in page
    assert ">3001</a>" not in page  # Bo Holm 1


def test_search_matches_a_name_anywhere_but_an_extension_only_from_its_start(
    admin_client, users_120
):
    assert ">3022</a>" in admin_client.get(reverse("user_list"), {"q": "olm 22"}).text
    assert "0 of 120 users" in admin_client.get(reverse("user_list"), {"q": "099"}).text


def test_a_request_of_the_whole_list_costs_5_queries(
    admin_client, users_120, django_assert_num_queries
):
    url = reverse("user_list")
    admin_client.get(url, HTTP_HX_REQUEST="true")
    with django_assert_num_queries(MAX_QUERIES - 1):  # the total is the matches' count
        response = admin_client.get(url, {"sort": "-display_name"}, HTTP_HX_REQUEST="true")
    assert "120 of 120 users" in response.text


def test_the_total_is_read_before_the_node_has_a_state(users_120):
    NodeState.objects.all().delete()
    node = user_list_node()
    assert node.users == 120 and NodeState.objects.filter(pk=1).exists()
