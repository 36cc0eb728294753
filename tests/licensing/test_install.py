"""Installing a license code on this server: what is accepted, and every refusal."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core import config
from core.locks import Locked
from core.models import Event, NodeState, Phase
from core.selectors import config_read
from core.services import config_update
from licensing.codes import LicenseRefused
from licensing.models import License
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY, USER_LICENSE
from licensing.selectors import licensed_features
from licensing.services import license_install
from tests.licensing.factories import OTHER_ARI, OWN_ARI, Vendor, node_setup

pytestmark = pytest.mark.django_db


def refused(text: str) -> LicenseRefused:
    """Install must refuse and leave licenses and the event log as they were."""
    licenses, events = License.objects.count(), Event.objects.count()
    with pytest.raises(LicenseRefused) as refusal:
        license_install(text=text, actor="alice")
    assert (License.objects.count(), Event.objects.count()) == (licenses, events)
    return refusal.value


@pytest.mark.django_db(transaction=True)
def test_a_valid_code_installs_and_is_still_there_after_a_restart(node):
    text = node.issue(product=MASTER_REDUNDANCY, users=500, features=("messaging",))
    installed = license_install(text=text, actor="alice")
    assert installed.product == MASTER_REDUNDANCY
    # Committed, and read back over a new connection, as after a restart of the server.
    connection.close()
    stored = License.objects.get()
    assert (stored.code, stored.ari, stored.users, stored.features) == (
        text, OWN_ARI, 500, ["messaging"]
    )  # fmt: skip
    assert stored.installed_by == "alice"
    assert licensed_features() == {"redundancy": True, "users": 500, "messaging": True}
    event = Event.objects.get(kind="license")
    assert event.message.startswith("License installed: 14075250 (master redundancy), serial ")
    assert event.actor == "alice"


def test_a_code_for_another_ari_is_refused_naming_both(node):
    refusal = refused(node.issue(ari=OTHER_ARI))
    assert refusal.cause == "other_ari"
    assert str(refusal) == (
        f"this code is for the server with ARI {OTHER_ARI}, not for this server (ARI {OWN_ARI}): "
        f"install it on the server with ARI {OTHER_ARI}, or order a code for ARI {OWN_ARI}"
    )


def test_an_altered_code_is_refused(node):
    text = node.issue()
    altered = text[:30] + ("Q" if text[30] != "Q" else "R") + text[31:]
    refusal = refused(altered)
    assert refusal.cause == "forged"
    assert "this code is not genuine" in str(refusal)


def test_a_code_signed_by_another_key_is_refused(node):
    assert refused(Vendor().issue()).cause == "forged"


def test_garbage_is_refused(node):
    refusal = refused("please send me a license")
    assert refusal.cause == "garbage"
    assert "this is not a license code: a KWS license code starts with KWSL-" in str(refusal)


def test_the_same_code_twice_is_refused_as_already_installed(node):
    text = node.issue(product=USER_LICENSE, users=100, serial=0xABC)
    license_install(text=text, actor="alice")
    refusal = refused(text.lower())
    assert refusal.cause == "installed"
    assert (
        str(refusal) == "this code is already installed (license 14075200 (users), serial 00000ABC)"
    )


def test_another_code_with_an_installed_serial_is_refused_too(node):
    license_install(text=node.issue(product=USER_LICENSE, users=100, serial=77), actor="alice")
    assert refused(node.issue(product=USER_LICENSE, users=200, serial=77)).cause == "installed"


def test_a_backup_license_is_refused_on_a_master(db, trusted):
    node_setup(mode="master")
    refusal = refused(trusted.issue(product=BACKUP_REDUNDANCY))
    assert refusal.cause == "role"
    assert str(refusal) == (
        "license 14075260 (backup redundancy) is for a backup (slave) server, and this server is "
        "configured as master: install it on the backup (slave); this server needs 14075250 "
        "(master redundancy)"
    )


def test_a_master_license_is_refused_on_a_backup(db, trusted):
    node_setup(mode="slave")
    refusal = refused(trusted.issue(product=MASTER_REDUNDANCY))
    assert refusal.cause == "role"
    assert "license 14075250 (master redundancy) is for a master server" in str(refusal)
    assert "this server needs 14075260 (backup redundancy)" in str(refusal)


@pytest.mark.parametrize("product", [MASTER_REDUNDANCY, BACKUP_REDUNDANCY])
def test_a_single_server_takes_either_redundancy_license_before_it_is_paired(node, product):
    # The seed's upgrade: the license is installed first, then the node type is set.
    license_install(text=node.issue(product=product), actor="alice")
    assert License.objects.get().product == product


def test_a_backup_installs_its_own_license_although_its_configuration_is_locked(db, trusted):
    node_setup(mode="slave")  # installs the backup license, then locks configuration
    license_install(text=trusted.issue(product=USER_LICENSE, users=100), actor="alice")
    assert License.objects.count() == 2


def test_nothing_is_installed_during_a_failover(node):
    node_setup(mode="slave", licensed=False)  # a backup that has taken over
    NodeState.objects.update_or_create(pk=1, defaults={"phase": Phase.FAILOVER})
    with pytest.raises(Locked):
        license_install(text=node.issue(), actor="alice")
    assert not License.objects.exists()


def test_a_server_without_an_ari_cannot_bind_a_code(db, trusted):
    refusal = refused(trusted.issue())
    assert refusal.cause == "no_ari"
    assert "this server has no ARI yet" in str(refusal)


def test_without_the_vendor_public_key_no_code_is_checked(node, settings):
    settings.LICENSE_PUBLIC_KEY = ""
    refusal = refused(node.issue())
    assert refusal.cause == "no_key"
    assert "KWS_LICENSE_PUBLIC_KEY" in str(refusal)


# --- The ARI is fixed once a code is bound to it ---------------------------------


def kwsconfig(*args):
    out = io.StringIO()
    call_command("kwsconfig", *args, stdout=out)
    return out.getvalue()


def test_the_ari_can_be_set_before_any_license_is_installed(node):
    assert "system.ari = 1B22C001" in kwsconfig("set", "system.ari", "1b22 c001")
    assert config_read()["system.ari"] == OTHER_ARI


def test_a_bad_ari_is_refused_by_kwsconfig(node):
    with pytest.raises(CommandError) as refusal:
        kwsconfig("set", "system.ari", "20A3F2C5")
    assert "system.ari: '20A3F2C5' is not a class B ARI" in str(refusal.value)


def test_the_ari_cannot_change_once_a_license_is_installed(node):
    license_install(text=node.issue(), actor="alice")
    with pytest.raises(CommandError) as refusal:
        kwsconfig("set", "system.ari", OTHER_ARI)
    assert str(refusal.value) == (
        "refused, nothing changed:\n  system.ari: cannot be changed: 1 installed license code is "
        f"bound to this server's ARI {OWN_ARI}, and codes for another ARI are refused"
    )
    assert config_read()["system.ari"] == OWN_ARI


def test_setting_the_same_ari_again_is_no_change(node):
    license_install(text=node.issue(), actor="alice")
    assert "nothing changed" in kwsconfig("set", "system.ari", OWN_ARI.lower())


def test_an_import_cannot_change_the_ari_either(node):
    license_install(text=node.issue(), actor="alice")
    with pytest.raises(config.ConfigError) as refusal:
        config_update(changes={"system.ari": OTHER_ARI, "redundancy.failover_time": "30"},
                      actor="import")  # fmt: skip
    assert "cannot be changed" in refusal.value.errors["system.ari"]
    assert config_read()["redundancy.failover_time"] == 15
