"""The Licenses page: the ARIs, the installed licenses, entering a code (plain POST and htmx)."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import NodeState, Phase
from licensing.models import License
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY
from licensing.services import license_install
from tests.licensing.factories import OTHER_ARI, OWN_ARI, node_setup

pytestmark = pytest.mark.django_db

URL = "/licenses/"


def test_the_page_is_the_license_list(admin_client, node):
    assert reverse("license_list") == URL
    html = admin_client.get(URL).text
    assert f'<code class="ari" id="own-ari">{OWN_ARI}</code>' in html
    assert "class B, EIC 0A3F, FPN 2C, FPS 5" in html
    assert f'<code class="ari" id="system-ari">{OWN_ARI}</code>' in html
    assert "No license installed." in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_installed_licenses_show_product_users_features_and_state(admin_client, node):
    license_install(text=node.issue(product=MASTER_REDUNDANCY, users=500, features=("alarm",)),
                    actor="test")  # fmt: skip
    html = admin_client.get(URL).text
    row = html.split(f'data-product="{MASTER_REDUNDANCY}"')[1].split("</tr>")[0]
    assert "Software license for master KIRK Wireless Server 6000 redundancy" in row
    assert "<td>500</td>" in row and "<td>alarm</td>" in row
    assert '<span class="license-state">waiting</span>' in row
    assert "takes effect when this server&#x27;s node type is master" in row


def test_a_posted_code_is_installed_and_listed(admin_client, node):
    response = admin_client.post(reverse("license_install"), {"code": node.issue()}, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "License 14075250 (master redundancy) installed" in response.text
    assert f'data-product="{MASTER_REDUNDANCY}"' in response.text


def test_a_wrong_ari_code_shows_the_error_and_installs_nothing(admin_client, node):
    response = admin_client.post(reverse("license_install"), {"code": node.issue(ari=OTHER_ARI)})
    assert response.status_code == 200
    assert (
        '<p class="error" data-error-for="code" role="alert">Refused, nothing changed: this code '
        f"is for the server with ARI {OTHER_ARI}, not for this server (ARI {OWN_ARI})"
    ) in response.text
    assert not License.objects.exists()


def test_htmx_gets_the_fragment_with_the_note(admin_client, node):
    response = admin_client.post(
        reverse("license_install"), {"code": node.issue()}, headers={"HX-Request": "true"}
    )
    assert response.text.startswith('<div id="licenses">')
    assert "License 14075250 (master redundancy) installed" in response.text
    assert "<html" not in response.text


def test_htmx_gets_the_refusal_in_the_fragment(admin_client, node):
    response = admin_client.post(
        reverse("license_install"), {"code": "nonsense"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Refused, nothing changed: this is not a license code" in response.text


def test_a_post_without_the_csrf_token_is_refused(admin_user, node):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(reverse("license_install"), {"code": node.issue()}).status_code == 403
    assert not License.objects.exists()


def test_a_failover_lock_is_shown_on_the_form(admin_client, node):
    node_setup(mode="slave", licensed=False)  # a backup that has taken over
    NodeState.objects.update_or_create(pk=1, defaults={"phase": Phase.FAILOVER})
    response = admin_client.post(reverse("license_install"), {"code": node.issue()})
    assert "configuration locked: failover: the master is lost" in response.text


def test_the_page_says_which_product_a_master_without_license_needs(admin_client, db, trusted):
    node_setup(mode="master", licensed=False)
    html = admin_client.get(URL).text
    assert "needs license 14075250 (master redundancy) for this server&#x27;s ARI" in html


def test_the_page_says_when_no_vendor_key_is_configured(admin_client, node, settings):
    settings.LICENSE_PUBLIC_KEY = ""
    html = admin_client.get(URL).text
    assert "No vendor public key is configured" in html


def test_a_swapped_backup_shows_both_aris(admin_client, db, trusted):
    node_setup(mode="slave")
    license_install(text=trusted.issue(product=BACKUP_REDUNDANCY), actor="test")
    claims = {"mode": "master", "ari": OTHER_ARI}
    NodeState.objects.update_or_create(
        pk=1, defaults={"phase": Phase.NORMAL, "peer_status": {"claims": claims}}
    )
    html = admin_client.get(URL).text
    assert f'<code class="ari" id="own-ari">{OWN_ARI}</code>' in html
    assert f'<code class="ari" id="system-ari">{OTHER_ARI}</code>' in html
    assert f'<code class="ari" id="acting-ari">{OTHER_ARI}</code>' in html
    assert f"ARI swap: this backup acts under the system ARI {OTHER_ARI}" in html
    row = html.split(f'data-product="{BACKUP_REDUNDANCY}"')[1].split("</tr>")[0]
    assert '<span class="license-state">active</span>' in row


def test_the_pages_need_a_login(client, node):
    assert client.get(URL).status_code == 302
    assert client.post(reverse("license_install"), {"code": "x"}).status_code == 302
    assert client.get(reverse("license_order")).status_code == 302
