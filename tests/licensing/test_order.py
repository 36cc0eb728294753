"""The order request: both ARIs, the right product for each, the upgrade warning."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import NodeState
from licensing.order import UPGRADE_WARNING, OrderRequest, order_check, order_servers, order_text
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY
from licensing.services import license_install
from tests.licensing.factories import OTHER_ARI, OWN_ARI, node_setup

TODAY = date(2025, 5, 6)


def text_of(request: OrderRequest, **known) -> str:
    return order_text(request, servers=order_servers(request, **known), today=TODAY)


def section(text: str, title: str) -> str:
    """The lines of one server's part of the order text."""
    part = text.split(f"\n{title}")[1]
    return part.split("\n\n")[0]


def test_the_order_names_each_ari_with_its_redundancy_product():
    text = text_of(OrderRequest(master_ari=OWN_ARI, backup_ari=OTHER_ARI))
    master, backup = section(text, "Master server"), section(text, "Backup server")
    assert f": ARI {OWN_ARI}" in master and "14075250  Software license for master" in master
    assert f": ARI {OTHER_ARI}" in backup and "14075260  Software license for backup" in backup
    assert "14075260" not in master and "14075250" not in backup
    assert "Date: 2025-05-06" in text
    assert UPGRADE_WARNING not in text


def test_an_upgrade_names_the_existing_and_the_new_server_and_warns():
    text = text_of(OrderRequest(master_ari=OWN_ARI, backup_ari=OTHER_ARI, upgrade=True,
                                reference="Site Nord"))  # fmt: skip
    assert f"Master server (the existing server): ARI {OWN_ARI}" in text
    assert f"Backup server (the NEW server): ARI {OTHER_ARI}" in text
    assert "Reference: Site Nord" in text
    assert f"Important: {UPGRADE_WARNING}" in text
    assert "all handsets must be subscribed again" in UPGRADE_WARNING


def test_both_servers_get_the_same_user_count_and_features():
    text = text_of(OrderRequest(master_ari=OWN_ARI, backup_ari=OTHER_ARI, users=500,
                                features=("messaging",)))  # fmt: skip
    for title in ("Master server", "Backup server"):
        lines = section(text, title)
        assert "14075200  Software license for KIRK Wireless Server 6000 users: 500 users" in lines
        assert (
            "14075210  Software license for KIRK Wireless Server 6000 features: messaging" in lines
        )


def test_what_a_server_already_has_is_listed_but_not_ordered():
    request = OrderRequest(master_ari=OWN_ARI, backup_ari=OTHER_ARI, upgrade=True, users=500)
    text = text_of(request, master_licensed={"users": 500}, backup_licensed={})
    master = section(text, "Master server")
    assert "500 users  (already installed, not ordered)" in master
    assert "master KIRK Wireless Server 6000 redundancy\n" in master + "\n"
    assert "not ordered" not in section(text, "Backup server")


def test_the_same_ari_for_both_servers_is_refused():
    errors = order_check(OrderRequest(master_ari=OWN_ARI, backup_ari=OWN_ARI))
    assert "the master and the backup both have ARI 10A3F2C5" in errors["backup_ari"]


# --- The page ---------------------------------------------------------------------

# node_setup issues the license a master or backup needs from the trusted vendor.
pytestmark = pytest.mark.usefixtures("trusted")

PARAMS = {"situation": "pair", "master_ari": OWN_ARI.lower(), "backup_ari": OTHER_ARI,
          "users": "500", "reference": "PO 4711"}  # fmt: skip


@pytest.mark.django_db
def test_the_page_fills_in_this_servers_ari_and_the_peers(admin_client):
    node_setup(mode="master")
    NodeState.objects.update_or_create(
        pk=1, defaults={"peer_status": {"claims": {"mode": "slave", "ari": OTHER_ARI}},
                        "peer_seen_at": timezone.now()},
    )  # fmt: skip
    page = admin_client.get(reverse("license_order")).text
    assert f'name="master_ari" value="{OWN_ARI}"' in page
    assert f'name="backup_ari" value="{OTHER_ARI}"' in page


@pytest.mark.django_db
def test_the_page_never_proposes_the_ari_of_a_server_that_has_gone(admin_client):
    # The last peer (erased, replaced) said its ARI, but it has not answered for longer
    # than the detection window: its ARI is not proposed for an order.
    node_setup(mode="master")
    NodeState.objects.update_or_create(
        pk=1, defaults={"peer_status": {"claims": {"mode": "slave", "ari": OTHER_ARI}},
                        "peer_seen_at": timezone.now() - timedelta(minutes=5)},
    )  # fmt: skip
    page = admin_client.get(reverse("license_order")).text
    assert f'name="master_ari" value="{OWN_ARI}"' in page
    assert OTHER_ARI not in page


@pytest.mark.django_db
def test_on_a_backup_its_own_ari_is_the_backups(admin_client):
    node_setup(mode="slave")
    page = admin_client.get(reverse("license_order")).text
    assert f'name="backup_ari" value="{OWN_ARI}"' in page


@pytest.mark.django_db
def test_a_single_server_is_offered_the_upgrade(admin_client):
    node_setup()
    page = admin_client.get(reverse("license_order")).text
    assert 'value="upgrade" required id="id_situation_1" checked' in page


@pytest.mark.django_db
def test_the_page_builds_the_text_with_both_aris_and_products(admin_client):
    node_setup(mode="master")
    response = admin_client.get(reverse("license_order"), PARAMS)
    html = response.text
    assert 'id="order-text"' in html
    assert f"Master server: ARI {OWN_ARI}" in html and f"Backup server: ARI {OTHER_ARI}" in html
    assert f'data-role="master" data-product="{MASTER_REDUNDANCY}"' in html
    assert f'data-role="slave" data-product="{BACKUP_REDUNDANCY}"' in html
    assert 'id="download-order"' in html


@pytest.mark.django_db
def test_the_upgrade_warning_is_shown_with_the_built_text(admin_client):
    node_setup()
    html = admin_client.get(reverse("license_order"), {**PARAMS, "situation": "upgrade"}).text
    assert 'data-field="upgrade-warning"' in html
    assert "Backup server (the NEW server)" in html


@pytest.mark.django_db
def test_what_this_server_has_is_not_ordered_again(admin_client, node):
    license_install(text=node.issue(users=500), actor="test")
    html = admin_client.get(reverse("license_order"), PARAMS).text
    master = html.split("Master server: ARI")[1].split("Backup server: ARI")[0]
    assert master.count("(already installed, not ordered)") == 2


@pytest.mark.django_db
def test_bad_aris_are_shown_on_the_form(admin_client):
    node_setup()
    html = admin_client.get(
        reverse("license_order"), {**PARAMS, "master_ari": "12", "backup_ari": OTHER_ARI}
    ).text
    assert "it has 2 hexadecimal digits, a class B ARI has 8" in html
    assert 'id="order-text"' not in html


@pytest.mark.django_db
def test_the_download_is_a_text_attachment(admin_client):
    node_setup()
    response = admin_client.get(reverse("license_order_download"), PARAMS)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="kws-license-order-{OWN_ARI}-{OTHER_ARI}.txt"'
    )
    body = response.content.decode()
    assert f"Master server: ARI {OWN_ARI}\n  14075250" in body
    assert f"Backup server: ARI {OTHER_ARI}\n  14075260" in body
    assert "Reference: PO 4711" in body


@pytest.mark.django_db
def test_an_incomplete_download_says_what_is_missing(admin_client):
    node_setup()
    response = admin_client.get(
        reverse("license_order_download"), {**PARAMS, "backup_ari": OWN_ARI}
    )
    assert response.status_code == 400
    assert "Backup server ARI: the master and the backup both have ARI" in response.content.decode()
