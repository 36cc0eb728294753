"""Every sort of the Users list gives each user one place: users with equal values (the same
name, NODE or subscription) follow their id, so paging shows each of them exactly once."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.redundancy.test_replication_fakes import become_master
from users.models import DectUser, PeerRegistration, SipRegistration

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

PER_PAGE = 50  # users.views.PER_PAGE


def extensions_of(page: str) -> list[str]:
    return re.findall(r'<a href="/users/\d+/[^"]*">(\d+)</a>', page)


def every_page(client, params: dict[str, str], pages: int) -> list[str]:
    shown = []
    for number in range(1, pages + 1):
        page = client.get(reverse("user_list"), {**params, "page": str(number)})
        shown += extensions_of(page.text)
    return shown


def test_two_users_with_the_same_name_appear_once_each_across_the_pages(admin_client):
    # 49 users with names of their own, then two "Zoe Lind": the pair straddles pages 1 and 2.
    DectUser.objects.bulk_create(
        DectUser(extension=str(4000 + n), display_name=f"Anna {n:02d}") for n in range(49)
    )
    twins = [DectUser.objects.create(extension=ext, display_name="Zoe Lind") for ext in "12"]
    for sort in ("display_name", "-display_name"):
        shown = every_page(admin_client, {"sort": sort}, pages=2)
        assert len(shown) == 51
        for twin in twins:
            assert shown.count(twin.extension) == 1, (sort, twin)


@pytest.fixture
def users_with_ties(db):
    """120 users of a master, in blocks that share a name, a NODE, a subscription and an
    access code, created in an order that is neither their extension's nor their name's."""
    become_master()
    names = ["Bo Holm", "Anna Berg", "Carla Jensen"]
    DectUser.objects.bulk_create(
        DectUser(extension=str(3000 + (n * 7) % 120), display_name=names[n % 3],
                 access_code="1234", subscription="subscribed" if n % 4 else "none",
                 home="A" if n % 2 else "B")
        for n in range(120)
    )  # fmt: skip
    now = timezone.now()
    for n, user in enumerate(DectUser.objects.order_by("pk")):
        row = {"user": user, "state": "failed" if n % 5 == 0 else "registered", "changed_at": now}
        if user.home == "A":
            SipRegistration.objects.create(**row)
        else:
            PeerRegistration.objects.create(**row)


SORTS = ["display_name", "-display_name", "node", "-node", "subscription", "access_code",
         "-access_code", "registration", "-registration", "sip_username", "ipei", "-extension"]  # fmt: skip


@pytest.mark.parametrize("sort", SORTS)
def test_each_sort_shows_every_user_exactly_once_across_the_pages(
    admin_client, users_with_ties, sort
):
    shown = every_page(admin_client, {"sort": sort}, pages=3)
    assert sorted(shown) == sorted(DectUser.objects.values_list("extension", flat=True))


@pytest.mark.parametrize("sort", ["display_name", "-display_name"])
def test_users_with_the_same_name_follow_their_id(admin_client, users_with_ties, sort):
    descending = sort.startswith("-")
    expected = [
        extension
        for _, _, extension in sorted(
            DectUser.objects.values_list("display_name", "pk", "extension"), reverse=descending
        )
    ]
    assert every_page(admin_client, {"sort": sort}, pages=3) == expected


def test_a_filtered_and_sorted_list_pages_through_its_matches_once(admin_client, users_with_ties):
    params = {"registration": "registered", "sort": "-display_name"}
    matching = (
        DectUser.objects.filter(registration__state="registered")
        | DectUser.objects.filter(peer_registration__state="registered")
    ).distinct()
    assert matching.count() > PER_PAGE
    shown = every_page(admin_client, params, pages=2)
    assert sorted(shown) == sorted(matching.values_list("extension", flat=True))
