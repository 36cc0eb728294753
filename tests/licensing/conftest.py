import pytest

from tests.licensing.factories import TRUSTED, Vendor, node_setup


@pytest.fixture(scope="session")
def vendor() -> Vendor:
    """The vendor whose public key this node trusts (see ``trusted``)."""
    return Vendor()


@pytest.fixture
def trusted(settings, vendor: Vendor):
    settings.LICENSE_PUBLIC_KEY = vendor.public_text
    TRUSTED.append(vendor)
    yield vendor
    TRUSTED.remove(vendor)


@pytest.fixture
def node(db, trusted: Vendor) -> Vendor:
    """A single server with ARI OWN_ARI that trusts ``vendor``."""
    node_setup()
    return trusted
