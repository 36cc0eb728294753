"""The corporate phonebook on a real pair with a real slapd: configured on the master's
page, replicated to the backup (read-only there), and looked up by simulated handsets
through the server that serves them, the master and, after a failover, the backup."""

import re

import pytest

from basestations.sim import Simulation
from phonebook import ldapserver
from phonebook.ldapserver import Slapd
from tests.system.conftest import logged_in, pair_cluster, wait_until
from tests.system.test_basestations import DEVICE_SECRET, address, provision

pytestmark = pytest.mark.system

PAGE = "/configuration/phonebook/"


def looked_up(sim, extension, text, timeout=15.0) -> dict:
    ref = sim.lookup(extension, text)
    return wait_until(
        lambda: next((a for a in sim.handset(extension).lookups if a["ref"] == ref), None),
        timeout=timeout, what=f"handset {extension}'s lookup of {text!r} answered",
    )  # fmt: skip


def test_ldap_set_on_the_master_replicates_and_handsets_of_both_servers_look_names_up(
    tmp_path, cluster_log
):
    with Slapd() as ldap, pair_cluster(tmp_path, cluster_log, users=6, failover_time=0) as pair:
        pair.wait_paired()
        master_page = logged_in(pair.master)
        form = {"source": "ldap", "ldap_url": ldap.url, "base_dn": ldapserver.BASE_DN,
                "bind_dn": ldapserver.BIND_DN, "bind_password": ldapserver.PHONEBOOK_PASSWORD,
                "filter": "(objectClass=inetOrgPerson)", "name_attribute": "cn",
                "number_attribute": "telephoneNumber"}  # fmt: skip
        tested = master_page.post(PAGE + "test/", form)
        assert "4 entries found" in tested.text, tested.text
        saved = master_page.post(PAGE, form)
        assert "Corporate phonebook settings saved." in saved.text, saved.text

        # Replicated to the backup, whose page is read-only and refuses a change with 423.
        wait_until(lambda: pair.backup_db.config("phonebook.ldap_url") == ldap.url, timeout=15,
                   what="the backup has the master's LDAP settings")  # fmt: skip
        assert pair.backup_db.config("phonebook.bind_password") == ldapserver.PHONEBOOK_PASSWORD
        backup_page = logged_in(pair.backup)
        page = backup_page.get(PAGE).text
        assert 'data-field="read-only">Read-only here:' in page
        assert '<fieldset class="plain" disabled>' in page
        assert 'data-field="password-state">set' in page
        assert ldapserver.PHONEBOOK_PASSWORD not in page
        refused = backup_page.post(PAGE, {**form, "filter": "(cn=*)"})
        assert refused.status == 423, refused.text
        assert pair.master_db.config("phonebook.filter") == "(objectClass=inetOrgPerson)"
        # The backup searches the directory with the replicated settings itself.
        found = backup_page.get(PAGE + "search/?q=4712").text
        assert "<td>Bob Berg</td><td>4712</td>" in found, found
        # A CSV phonebook is refused on the master with the seed's words.
        csv = master_page.post(PAGE, {**form, "source": "csv"})
        assert "a CSV phonebook is not compatible with redundancy: use LDAP" in csv.text

        # Handsets whose users are on M and on S look names up through their server.
        provision(pair, basestations=2, media=0)
        homes = dict(pair.master_db.rows("select extension, home from users_dectuser"))
        on_m = next(e for e, home in sorted(homes.items()) if home == "A")
        on_s = next(e for e, home in sorted(homes.items()) if home == "B")
        master, backup = address(pair.master), address(pair.backup)
        control = tmp_path / "handsets"
        with Simulation(server=master, secret=DEVICE_SECRET, basestations=2, media=0,
                        handsets=6, roam_seconds=(600, 900), seed=17,
                        control_dir=control) as sim:  # fmt: skip
            wait_until(lambda: sim.attached_counts() == {master: 2}, timeout=30,
                       what="the base stations on the master")  # fmt: skip
            for extension in (on_m, on_s):
                answer = looked_up(sim, extension, "alice")
                assert answer["error"] == ""
                assert answer["entries"] == [{"name": "Alice Andersen", "number": "4711"}]
                assert sim.handset(extension).screen[-1] == "Alice Andersen 4711"
            printed = pair.master.manage("kwssim", f"--control-dir={control}",
                                         f"--handset={on_s}", "--lookup=4712").stdout  # fmt: skip
            assert f"handset {on_s}: 1 entry for '4712'" in printed and "Bob Berg  4712" in printed

            # The master fails: the backup serves the handsets and answers their lookups.
            pair.master.kill()
            wait_until(lambda: sim.attached_counts() == {backup: 2}, timeout=30,
                       what="the base stations on the backup")  # fmt: skip
            for extension in (on_m, on_s):
                answer = looked_up(sim, extension, "7012", timeout=20)
                assert answer["entries"] == [{"name": "Carla Christensen",
                                              "number": "+45 7012 3003"}], answer  # fmt: skip
            # The directory stops: the handset is told so, it is not left waiting.
            ldap.stop()
            answer = looked_up(sim, on_m, "dan", timeout=20)
            assert answer["entries"] == []
            assert re.match(r"cannot reach the LDAP server .*connection refused", answer["error"])
        assert sim.error is None
