"""The first-login password change follows the one lock rule: on a joined backup it goes
through the master like every account change, so the initial password printed at
installation does not stay valid there."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import PasswordChangeRequired
from core.models import Phase
from tests.redundancy.test_replication_fakes import become_backup, become_master

pytestmark = pytest.mark.django_db


@pytest.fixture
def marked(client):
    user = get_user_model().objects.create_superuser("admin", password="initial-pw-1")
    PasswordChangeRequired.objects.create(user=user)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("setup", "phase"),
    [(become_master, Phase.NORMAL), (become_backup, Phase.NORMAL),
     (become_backup, Phase.PEER_LOST)],
)  # fmt: skip
def test_a_marked_account_is_sent_to_the_password_change_first(marked, setup, phase):
    setup() if setup is become_master else setup(phase=phase)
    response = marked.get(reverse("status"))
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change")


def test_during_a_failover_on_the_backup_the_mark_waits(marked):
    become_backup(phase=Phase.FAILOVER)  # nothing can be changed, not even a password
    assert marked.get(reverse("status")).status_code == 200
