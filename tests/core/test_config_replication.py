"""Shared settings are the master's: written with a change-log entry, applied on the backup."""

import pytest

from core import replicated
from core.changelog import ApplyError
from core.locks import Locked
from core.models import ChangeLogEntry, ConfigValue
from core.selectors import config_read
from core.services import config_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]


def test_a_shared_setting_is_written_with_a_change_log_entry():
    config_update(changes={"sip.registrar": "10.0.0.9:5060", "sip.rate": "200"}, actor="test")
    entries = {e.key: e.data for e in ChangeLogEntry.objects.filter(entity="config")}
    assert entries == {"sip.registrar": {"value": "10.0.0.9:5060"}, "sip.rate": {"value": "200"}}


def test_node_local_settings_are_never_replicated():
    config_update(changes={"redundancy.failover_time": "20"}, actor="test")
    assert not ChangeLogEntry.objects.filter(entity="config").exists()


def test_a_backup_may_change_its_own_settings_but_not_shared_ones():
    config_update(changes={"redundancy.mode": "slave", "redundancy.peer": "10.0.0.1",
                           "redundancy.secret": "s" * 16}, actor="test")  # fmt: skip
    config_update(changes={"redundancy.failover_time": "9"}, actor="test")
    with pytest.raises(Locked, match="this server is the backup"):
        config_update(changes={"sip.registrar": "10.0.0.9"}, actor="test")
    assert config_read()["sip.registrar"] == ""


def test_apply_sets_the_value_and_refuses_bad_or_local_keys():
    replicated._apply("set", "sip.rate", {"value": "250"})
    assert config_read()["sip.rate"] == 250
    with pytest.raises(ApplyError, match="not a shared configuration key"):
        replicated._apply("set", "redundancy.mode", {"value": "master"})
    with pytest.raises(ApplyError, match="out of range"):
        replicated._apply("set", "sip.rate", {"value": "0"})


def test_a_snapshot_restores_exactly_the_shared_settings():
    config_update(
        changes={"sip.registrar": "10.0.0.9", "redundancy.failover_time": "20"}, actor="t"
    )
    rows = replicated._snapshot()
    assert rows == [{"key": "sip.registrar", "value": "10.0.0.9"}]
    ConfigValue.objects.filter(key="sip.registrar").delete()
    ConfigValue.objects.create(key="sip.domain", value="stale.example")
    replicated._restore(rows)
    values = config_read()
    assert values["sip.registrar"] == "10.0.0.9" and values["sip.domain"] == ""
    assert values["redundancy.failover_time"] == 20
