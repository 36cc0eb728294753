"""What the redundancy engine and the Users list read: features, user count, needs, the ARIs."""

import pytest

from core.models import NodeState, Phase
from licensing.products import BACKUP_REDUNDANCY, FEATURE_LICENSE, MASTER_REDUNDANCY, USER_LICENSE
from licensing.selectors import (
    licensed_features,
    licensed_user_count,
    own_ari,
    redundancy_license_missing,
    system_ari,
    system_ari_status,
    user_limit_message,
)
from licensing.services import license_install
from tests.licensing.factories import OTHER_ARI, OWN_ARI, node_setup

pytestmark = pytest.mark.django_db


def install(vendor, **kwargs):
    return license_install(text=vendor.issue(**kwargs), actor="test")


def test_a_server_without_licenses_has_no_features_and_no_user_limit(node):
    assert licensed_features() == {}
    assert licensed_user_count() is None
    assert user_limit_message(users_after=10_000) == ""


def test_licensed_features_are_one_query(node, django_assert_num_queries):
    install(node, product=MASTER_REDUNDANCY, users=500)
    install(node, product=FEATURE_LICENSE, features=("messaging", "location"))
    with django_assert_num_queries(1):
        features = licensed_features()
    assert features == {"redundancy": True, "users": 500, "messaging": True, "location": True}


def test_a_master_and_a_backup_with_matching_codes_claim_the_same_features(db, trusted):
    node_setup(mode="master")
    install(trusted, product=MASTER_REDUNDANCY, users=500)
    on_master = licensed_features()
    from licensing.models import License

    License.objects.all().delete()
    node_setup(mode="slave", licensed=False)
    install(trusted, product=BACKUP_REDUNDANCY, users=500)
    assert licensed_features() == on_master == {"redundancy": True, "users": 500}


def test_the_largest_user_count_is_the_licensed_one(node):
    install(node, product=USER_LICENSE, users=100)
    install(node, product=USER_LICENSE, users=500)
    assert licensed_user_count() == 500
    assert user_limit_message(users_after=500) == ""
    assert user_limit_message(users_after=501) == (
        "the licenses of this server allow 500 users and this would make 501: order a user "
        "license (14075200) for more users on the Licenses page"
    )


def test_a_single_server_needs_no_redundancy_license(node):
    assert redundancy_license_missing("single") == ""


def test_a_master_needs_14075250_and_is_told_what_to_order(node):
    assert redundancy_license_missing("master") == (
        "node type Master needs license 14075250 (master redundancy) for this server's ARI "
        f"{OWN_ARI}: order it (Licenses page, order request) and install the code on this server"
    )
    install(node, product=MASTER_REDUNDANCY)
    assert redundancy_license_missing("master") == ""


def test_a_backup_needs_14075260(node):
    message = redundancy_license_missing("slave")
    assert message.startswith("node type Backup (slave) needs license 14075260 (backup redundancy)")
    install(node, product=MASTER_REDUNDANCY)
    assert "14075260" in redundancy_license_missing("slave")
    install(node, product=BACKUP_REDUNDANCY)
    assert redundancy_license_missing("slave") == ""


# --- The ARI swap ---------------------------------------------------------------


def pair_formed(*, phase=Phase.NORMAL, master_ari=OTHER_ARI):
    claims = {"node": "kws-a", "mode": "master", "firmware": "PCS06B", "database_uuid": "",
              "features": {}, "ari": master_ari}  # fmt: skip
    NodeState.objects.update_or_create(
        pk=1, defaults={"phase": phase, "peer_status": {"claims": claims}}
    )


def test_a_backup_with_its_license_in_a_formed_pair_acts_under_the_masters_ari(db, trusted):
    node_setup(mode="slave")
    install(trusted, product=BACKUP_REDUNDANCY)
    pair_formed()
    assert (own_ari(), system_ari()) == (OWN_ARI, OTHER_ARI)
    assert system_ari_status().swapped


def test_the_swap_holds_during_a_failover(db, trusted):
    node_setup(mode="slave")
    install(trusted, product=BACKUP_REDUNDANCY)
    pair_formed(phase=Phase.FAILOVER)
    assert system_ari() == OTHER_ARI


def test_a_backup_without_its_license_keeps_its_own_ari(db, trusted):
    node_setup(mode="slave", licensed=False)
    pair_formed()
    assert system_ari() == OWN_ARI
    assert "no backup redundancy license (14075260)" in system_ari_status().reason


def test_a_rejected_backup_keeps_its_own_ari(db, trusted):
    node_setup(mode="slave")
    install(trusted, product=BACKUP_REDUNDANCY)
    pair_formed(phase=Phase.REJECTED)
    assert system_ari() == OWN_ARI


def test_a_master_always_acts_under_its_own_ari(db, trusted):
    node_setup(mode="master")
    install(trusted, product=MASTER_REDUNDANCY)
    pair_formed()
    assert system_ari() == OWN_ARI
