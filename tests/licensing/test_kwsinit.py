"""kwsinit gives a node its ARI and installs license codes before the first-boot settings."""

import io

import pytest
from django.core.management import CommandError, call_command

from core.models import ConfigValue
from core.selectors import config_read
from licensing.ari import ari_parse
from licensing.models import License
from licensing.products import MASTER_REDUNDANCY
from tests.licensing.factories import OTHER_ARI, OWN_ARI, PAIRING_SECRET

pytestmark = pytest.mark.django_db


def kwsinit(*args) -> str:
    out = io.StringIO()
    call_command("kwsinit", *args, stdout=out)
    return out.getvalue()


def test_a_new_node_gets_a_generated_ari_and_keeps_it(db):
    out = kwsinit()
    ari = config_read()["system.ari"]
    assert ari_parse(ari) == ari
    assert f"ARI generated: {ari}." in out
    assert "ARI generated" not in kwsinit()
    assert config_read()["system.ari"] == ari


def test_a_given_ari_is_used_and_the_license_installed_before_the_settings(trusted):
    code = trusted.issue(ari=OWN_ARI, product=MASTER_REDUNDANCY)
    out = kwsinit(f"--set=system.ari={OWN_ARI}", f"--license={code}",
                  "--set=redundancy.mode=master", "--set=redundancy.peer=10.0.0.2",
                  f"--set=redundancy.secret={PAIRING_SECRET}")  # fmt: skip
    assert "ARI generated" not in out
    assert "License installed: 14075250 (master redundancy)" in out
    values = config_read()
    assert (values["system.ari"], values["redundancy.mode"]) == (OWN_ARI, "master")
    assert License.objects.get().product == MASTER_REDUNDANCY
    again = kwsinit(f"--license={code}")
    assert "License skipped: this code is already installed" in again


def test_a_refused_license_leaves_the_node_as_it_was(trusted):
    code = trusted.issue(ari=OTHER_ARI)
    with pytest.raises(CommandError) as refused:
        kwsinit(
            f"--set=system.ari={OWN_ARI}", f"--license={code}", "--set=redundancy.failover_time=20"
        )
    assert str(refused.value).startswith(
        f"license refused, nothing changed: this code is for the server with ARI {OTHER_ARI}"
    )
    assert not ConfigValue.objects.exists()  # the corrected re-run is still a first boot
    assert not License.objects.exists()


def test_secrets_can_come_from_files_and_a_missing_file_changes_nothing(db, tmp_path):
    from django.contrib.auth import get_user_model

    secret, password = tmp_path / "pairing_secret", tmp_path / "admin_password"
    secret.write_text(PAIRING_SECRET + "\n")
    password.write_text("from-a-file-pw-77\n")
    with pytest.raises(CommandError, match="--set-file redundancy.secret: cannot read"):
        kwsinit(f"--set-file=redundancy.secret={tmp_path / 'missing'}")
    assert not ConfigValue.objects.filter(key="redundancy.secret").exists()

    kwsinit(f"--set-file=redundancy.secret={secret}", "--admin=admin",
            f"--admin-password-file={password}")  # fmt: skip
    assert config_read()["redundancy.secret"] == PAIRING_SECRET
    assert get_user_model().objects.get(username="admin").check_password("from-a-file-pw-77")
