"""Two real nodes (web + worker + beat each, PostgreSQL and Redis of their own)."""

import re

import pytest

from tests.system.conftest import logged_in, pair_cluster, wait_until

pytestmark = pytest.mark.system


def header_field(page: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]+)<', page)
    assert match, f"no {field} in the header"
    return match.group(1)


def test_two_nodes_each_show_their_own_mode_and_run_worker_and_beat(tmp_path, cluster_log):
    with pair_cluster(tmp_path, cluster_log, users=4) as pair:
        for node, mode in ((pair.master, "master"), (pair.backup, "backup (slave)")):
            browser = logged_in(node)
            header = browser.get("/partials/node-header/").text
            assert node.name in header
            assert header_field(header, "mode") == mode

            def ticked(browser=browser):
                match = re.search(r'data-field="last-tick">([^<]+)<', browser.get("/").text)
                return match and match.group(1).endswith("ago")

            wait_until(ticked, timeout=20, what=f"{node.name}'s worker and beat to tick")
    untagged = [
        line for line in cluster_log.lines if "[master/" not in line and "[backup/" not in line
    ]
    assert cluster_log.lines and not untagged
