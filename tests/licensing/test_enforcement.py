"""Node types need their redundancy license; the Redundancy page and kwsconfig say what to order."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.config import ConfigError
from core.selectors import config_read
from core.services import config_update
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY, USER_LICENSE
from licensing.services import license_install
from tests.licensing.factories import OWN_ARI, PAIRING_SECRET, node_setup

pytestmark = pytest.mark.django_db

PAIRED = {"redundancy.peer": "10.0.0.2", "redundancy.secret": PAIRING_SECRET}


@pytest.mark.parametrize(
    ("mode", "product"),
    [("master", "14075250 (master redundancy)"), ("slave", "14075260 (backup redundancy)")],
)
def test_a_node_type_without_any_redundancy_license_is_refused(trusted, mode, product):
    node_setup()
    license_install(text=trusted.issue(product=USER_LICENSE, users=100), actor="test")
    with pytest.raises(ConfigError) as info:
        config_update(changes={"redundancy.mode": mode, **PAIRED}, actor="test")
    assert (
        f"needs license {product} for this server's ARI {OWN_ARI}"
        in info.value.errors["redundancy.mode"]
    )
    assert config_read()["redundancy.mode"] == "single"


def test_with_its_license_the_node_type_is_saved_without_a_note(trusted):
    node_setup()
    license_install(text=trusted.issue(product=MASTER_REDUNDANCY), actor="test")
    change = config_update(changes={"redundancy.mode": "master", **PAIRED}, actor="test")
    assert change.changed["redundancy.mode"] == "master"
    assert not any("other role" in note for note in change.notes)


def test_a_repaired_master_may_rejoin_as_backup_with_a_note_saying_what_to_order(trusted):
    node_setup(mode="master")  # holds 14075250 only
    change = config_update(changes={"redundancy.mode": "slave"}, actor="test")
    assert config_read()["redundancy.mode"] == "slave"
    assert any("other role's redundancy license" in n and "14075260" in n for n in change.notes)


def test_kwsconfig_refuses_a_master_without_license_and_changes_nothing(trusted):
    node_setup()
    with pytest.raises(CommandError) as info:
        call_command("kwsconfig", "set", "redundancy.mode=master", "redundancy.peer=10.0.0.2",
                     f"redundancy.secret={PAIRING_SECRET}", stdout=io.StringIO())  # fmt: skip
    assert "redundancy.mode: node type Master needs license 14075250" in str(info.value)
    assert config_read()["redundancy.mode"] == "single"


def test_the_redundancy_page_says_which_product_to_order(admin_client, trusted):
    node_setup()
    response = admin_client.post(reverse("redundancy_settings"), {
        "mode": "slave", "peer": "10.0.0.1", "failover_time": "15", "secret": PAIRING_SECRET})  # fmt: skip
    assert response.status_code == 200
    assert "needs license 14075260 (backup redundancy)" in response.text
    assert config_read()["redundancy.mode"] == "single"


def test_a_backup_license_lets_a_single_server_become_backup(trusted):
    node_setup()
    license_install(text=trusted.issue(product=BACKUP_REDUNDANCY), actor="test")
    config_update(changes={"redundancy.mode": "slave", **PAIRED}, actor="test")
    assert config_read()["redundancy.mode"] == "slave"


@pytest.fixture
def five_users(node):
    """A single server licensed for 5 users, with 4 of them."""
    from users.services import dect_user_create

    license_install(text=node.issue(product=USER_LICENSE, users=5), actor="test")
    for n in range(4):
        dect_user_create(actor="test", extension=str(2000 + n))


def test_a_user_beyond_the_licensed_count_is_refused_and_nothing_is_written(five_users):
    from django.core.exceptions import ValidationError

    from core.models import ChangeLogEntry
    from users.models import DectUser
    from users.services import dect_user_create

    dect_user_create(actor="test", extension="2004")  # the 5th fits
    entries = ChangeLogEntry.objects.count()
    with pytest.raises(ValidationError) as info:
        dect_user_create(actor="test", extension="2005")
    assert "allow 5 users and this would make 6" in str(info.value)
    assert DectUser.objects.count() == 5 and ChangeLogEntry.objects.count() == entries


def test_the_add_user_page_says_the_licensed_count_is_reached(five_users, admin_client):
    from users.models import DectUser

    admin_client.post(reverse("user_create"), {"extension": "2004", "subscription": "none"})
    response = admin_client.post(reverse("user_create"),
                                 {"extension": "2005", "subscription": "none"})  # fmt: skip
    assert response.status_code == 200
    assert "the licenses of this server allow 5 users and this would make 6" in response.text
    assert "Licenses page" in response.text
    assert DectUser.objects.count() == 5


def test_an_import_beyond_the_licensed_count_imports_nothing(five_users, admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from users.models import DectUser

    text = "extension,display_name\n3000,A\n3001,B\n"
    response = admin_client.post(
        reverse("user_import"), {"file": SimpleUploadedFile("u.csv", text.encode())}
    )
    assert response.status_code == 200
    assert "Nothing was imported" in response.text
    assert "allow 5 users and this would make 6" in response.text
    assert DectUser.objects.count() == 4
