"""Fixtures of the system tests; the cluster machinery is in tests/system/infra.py."""

from collections.abc import Iterator

import pytest

from kws_admin.cluster import Node
from tests.system.http import Browser
from tests.system.infra import (  # noqa: F401 (re-exported for the tests)
    ADMIN_PASSWORD,
    FAST,
    NEW_PASSWORD,
    SECRET,
    LineLog,
    NodeDB,
    node_stack,
    pair_cluster,
    started_node,
    wait_until,
)


@pytest.fixture
def cluster_log(request) -> Iterator[LineLog]:
    log = LineLog()
    yield log
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(log.dump())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def logged_in(node: Node) -> Browser:
    """An HTTP session logged in as admin, past the first-login password change."""
    browser = Browser(node.url)
    browser.login("admin", ADMIN_PASSWORD, new_password=NEW_PASSWORD)
    return browser
