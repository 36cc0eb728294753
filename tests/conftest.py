import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("alice", password="correct horse 42")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="session")
def license_vendor():
    from licensing.vendor import Vendor

    return Vendor.create()


@pytest.fixture
def licensed(db, settings, license_vendor):
    """This single server holds both redundancy licenses (14075250 and 14075260), so a
    test may make it a master or a backup as an administrator would after installing them."""
    from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY
    from licensing.services import ari_ensure, license_install

    settings.LICENSE_PUBLIC_KEY = license_vendor.public_key
    from core.selectors import config_read

    ari = ari_ensure(actor="test") or config_read()["system.ari"]
    for product in (MASTER_REDUNDANCY, BACKUP_REDUNDANCY):
        license_install(text=license_vendor.issue(ari=ari, product=product), actor="test")
    return license_vendor
