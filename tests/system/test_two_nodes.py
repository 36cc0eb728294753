"""Two real nodes (web + worker + beat each, PostgreSQL and Redis of their own)."""

import re
import time

import pytest

from tests.system.conftest import logged_in, started_node

pytestmark = pytest.mark.system

SECRET = "system-test-pairing-secret"


def header_field(page: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]+)<', page)
    assert match, f"no {field} in the header"
    return match.group(1)


def wait_for_tick(browser, timeout=20.0) -> str:
    """The Status page reports the engine's last tick once worker and beat run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = browser.get("/").text
        match = re.search(r'data-field="last-tick">([^<]+)<', page)
        if match and match.group(1) != "never":
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError("worker and beat never ticked")


def test_two_nodes_each_show_their_own_mode_and_run_worker_and_beat(tmp_path, cluster_log):
    with (
        started_node(
            "alpha",
            log=cluster_log,
            tmp=tmp_path,
            init_args=["--set=redundancy.mode=master", "--set=redundancy.peer=127.0.0.1:9",
                       f"--set=redundancy.secret={SECRET}"],
        ) as master,
        started_node(
            "beta",
            log=cluster_log,
            tmp=tmp_path,
            init_args=["--set=redundancy.mode=slave", f"--set=redundancy.peer=127.0.0.1:{9}",
                       f"--set=redundancy.secret={SECRET}"],
        ) as backup,
    ):  # fmt: skip
        for node, mode in ((master, "master"), (backup, "slave")):
            browser = logged_in(node)
            header = browser.get("/partials/node-header/").text
            assert node.name in header
            assert header_field(header, "mode") == mode
            assert wait_for_tick(browser).endswith("ago")
    untagged = [
        line for line in cluster_log.lines if "[alpha/" not in line and "[beta/" not in line
    ]
    assert cluster_log.lines and not untagged
