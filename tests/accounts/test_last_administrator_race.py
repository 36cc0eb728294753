"""Two administrators making each other operators at the same moment: one of them stays
an administrator (PostgreSQL: the rows are locked; SQLite writes one at a time)."""

import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from accounts.services import AccountError, admin_account_role_set
from core.changelog import changelog_head
from core.locks import write_check
from core.rules import Scope

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
def test_two_concurrent_demotions_leave_one_administrator():
    User = get_user_model()
    User.objects.create_superuser("ann", password="ann pw 12345678")
    User.objects.create_superuser("ben", password="ben pw 12345678")
    # The node's state row exists before the race (its first creation would serialize
    # the two writes by itself).
    write_check(Scope.ACCOUNT)
    changelog_head()
    outcome = []

    def demote_ben():
        try:
            admin_account_role_set(username="ben", role="operator", actor="ann")
            outcome.append("demoted")
        except AccountError as exc:
            outcome.append(exc.message)
        finally:
            connection.close()

    other = threading.Thread(target=demote_ben)
    with transaction.atomic():
        admin_account_role_set(username="ann", role="operator", actor="ben")
        other.start()
        time.sleep(0.5)  # the other write reaches the lock while this one holds it
    other.join(timeout=30)
    assert outcome and "ben is the last enabled administrator" in outcome[0]
    assert list(User.objects.filter(is_superuser=True).values_list("username", flat=True)) == [
        "ben"
    ]
