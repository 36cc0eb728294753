"""One system ARI for the life of the system: recorded once, kept by a promotion, changed
only by the explicit action (with its warning), and acted under with the ARI swap."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from core import config
from core.models import ConfigValue, Event, NodeState, Phase
from core.selectors import config_read
from core.services import config_import, config_update
from licensing.config import SYSTEM_ARI_KEY
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY
from licensing.selectors import licenses_overview, system_ari_status
from licensing.services import license_install, system_ari_adopt, system_ari_change
from redundancy import scenarios
from tests.licensing.factories import OTHER_ARI, OWN_ARI, node_setup

pytestmark = pytest.mark.django_db

NEW_ARI = "1C0FFEE0"
PASSWORD = "correct horse 42"  # the admin_user fixture's


def test_a_single_server_records_its_own_ari_as_the_system_ari_once(node):
    assert config_read()[SYSTEM_ARI_KEY] == ""
    assert system_ari_adopt(actor="kwsinit") == OWN_ARI
    assert config_read()[SYSTEM_ARI_KEY] == OWN_ARI
    assert system_ari_adopt(actor="kwsinit") == ""  # recorded already: nothing changes


def test_kwsinit_records_the_system_ari_of_a_new_server(db, trusted):
    call_command("kwsinit", f"--set=system.ari={OWN_ARI}", verbosity=0)
    assert config_read()[SYSTEM_ARI_KEY] == OWN_ARI


def test_a_backup_never_records_one_itself(db, trusted):
    node_setup(mode="slave")
    assert system_ari_adopt(actor="test") == ""
    assert config_read()[SYSTEM_ARI_KEY] == ""


@pytest.mark.parametrize("how", ["update", "import"])
def test_the_system_ari_cannot_change_as_a_side_effect(node, how):
    system_ari_adopt(actor="test")
    with pytest.raises(config.ConfigError, match="every handset is subscribed") as refused:
        if how == "update":
            config_update(changes={SYSTEM_ARI_KEY: NEW_ARI}, actor="test")
        else:
            config_import(text=f"{SYSTEM_ARI_KEY}={NEW_ARI}\nsip.expires=1234\n", actor="test")
    assert "Change the system ARI" in str(refused.value)
    assert config_read()[SYSTEM_ARI_KEY] == OWN_ARI
    assert config_read()["sip.expires"] != 1234  # nothing of the import was applied


def test_the_explicit_change_warns_that_every_handset_must_be_re_subscribed(node):
    system_ari_adopt(actor="test")
    assert system_ari_change(ari=NEW_ARI.lower(), actor="alice") == NEW_ARI
    event = Event.objects.get(kind="license", severity="warning")
    assert f"from {OWN_ARI} to {NEW_ARI}" in event.message
    assert "must be re-subscribed" in event.message and event.actor == "alice"


def test_the_explicit_change_is_refused_on_a_backup(db, trusted):
    node_setup(mode="slave")
    with pytest.raises(config.ConfigError, match="change it on the master"):
        system_ari_change(ari=NEW_ARI, actor="alice")
    assert not ConfigValue.objects.filter(key=SYSTEM_ARI_KEY).exists()


def test_a_promoted_backup_keeps_the_system_ari_and_acts_under_it(db, trusted, settings):
    # A backup that joined: the system ARI is the master's (replicated), it holds the
    # backup license with the ARI swap. The master is gone for good.
    node_setup(mode="slave")
    license_install(text=trusted.issue(product=BACKUP_REDUNDANCY), actor="test")
    ConfigValue.objects.create(key=SYSTEM_ARI_KEY, value=OTHER_ARI)  # as replication writes it
    claims = {"mode": "master", "ari": OTHER_ARI}
    NodeState.objects.update_or_create(pk=1, defaults={
        "phase": Phase.FAILOVER, "peer_status": {"claims": claims},
        "peer_seen_at": timezone.now() - timedelta(minutes=2)})  # fmt: skip
    assert system_ari_status().system == OTHER_ARI
    scenarios.backup_promote(actor="alice", master_off=True)
    status = system_ari_status()
    assert config_read()["redundancy.mode"] == "master"
    assert (status.subscribed, status.system, status.swapped) == (OTHER_ARI, OTHER_ARI, True)
    # The Licenses page says what the promoted master needs: its master license for its
    # own ARI; its backup license stays active for the ARI swap.
    overview = licenses_overview()
    assert f"{MASTER_REDUNDANCY} (master redundancy) for this server's ARI {OWN_ARI}" in (
        overview.missing
    )
    row = next(row for row in overview.rows if row.product == BACKUP_REDUNDANCY)
    assert row.state == "active" and f"system ARI {OTHER_ARI}" in row.note


def test_a_promoted_backup_without_a_recorded_system_ari_takes_the_masters(db, trusted):
    node_setup(mode="slave")
    license_install(text=trusted.issue(product=BACKUP_REDUNDANCY), actor="test")
    NodeState.objects.update_or_create(pk=1, defaults={
        "phase": Phase.FAILOVER, "peer_status": {"claims": {"mode": "master", "ari": OTHER_ARI}},
        "peer_seen_at": timezone.now() - timedelta(minutes=2)})  # fmt: skip
    scenarios.backup_promote(actor="alice", master_off=True)
    assert config_read()[SYSTEM_ARI_KEY] == OTHER_ARI
    assert system_ari_status().system == OTHER_ARI


def test_a_master_without_the_swap_says_which_code_for_which_ari(db, trusted, admin_client):
    node_setup(mode="master")
    ConfigValue.objects.create(key=SYSTEM_ARI_KEY, value=OTHER_ARI)
    html = admin_client.get(reverse("license_list")).text
    assert f'<code class="ari" id="system-ari">{OTHER_ARI}</code>' in html
    assert f'<code class="ari" id="acting-ari">{OWN_ARI}</code>' in html
    problem = html.split('data-field="ari-problem">')[1].split("</div>")[0]
    assert f"14075260 for ARI {OWN_ARI}" in problem


def test_the_change_form_needs_the_tick_and_the_password(node, admin_client):
    system_ari_adopt(actor="test")
    url = reverse("system_ari_change")
    no_tick = admin_client.post(url, {"ari": NEW_ARI, "password": PASSWORD})
    assert no_tick.status_code == 400 and "every handset must be re-subscribed" in no_tick.text
    bad_ari = admin_client.post(url, {"ari": "0123", "resubscribe": "on", "password": PASSWORD})
    assert bad_ari.status_code == 400 and "is not an ARI" in bad_ari.text
    wrong = admin_client.post(url, {"ari": NEW_ARI, "resubscribe": "on", "password": "nope"},
                              follow=True)  # fmt: skip
    assert "Your password was not right" in wrong.text
    assert config_read()[SYSTEM_ARI_KEY] == OWN_ARI
    done = admin_client.post(url, {"ari": NEW_ARI, "resubscribe": "on", "password": PASSWORD},
                             follow=True)  # fmt: skip
    assert f"The system ARI is now {NEW_ARI}: re-subscribe every handset" in done.text
    assert config_read()[SYSTEM_ARI_KEY] == NEW_ARI


def test_a_backup_shows_no_change_form(db, trusted, admin_client):
    node_setup(mode="slave")
    html = admin_client.get(reverse("license_list")).text
    assert "change it on the master" in html
    assert reverse("system_ari_change") not in html


def test_after_the_explicit_change_every_handset_must_subscribe_again(node):
    from users.models import DectUser
    from users.services import dect_user_create

    system_ari_adopt(actor="test")
    subscribed = dect_user_create(actor="t", extension="3001", subscription="subscribed")
    waiting = dect_user_create(actor="t", extension="3002", subscription="none")
    system_ari_change(ari=NEW_ARI, actor="alice")
    subscribed.refresh_from_db()
    waiting.refresh_from_db()
    assert subscribed.subscription == DectUser.Subscription.ENABLED
    assert waiting.subscription == DectUser.Subscription.NONE
    assert Event.objects.filter(kind="user", message__contains="must subscribe again").exists()
