"""manage.py kwsconfig get|set|export|import against the database."""

import io

import pytest
from django.core.management import CommandError, call_command

from core.models import ConfigValue, Event
from core.selectors import config_read

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

SECRET = "a-pairing-secret-of-some-length"


def kwsconfig(*args, stdin=None):
    out = io.StringIO()
    if stdin is not None:
        import sys

        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            call_command("kwsconfig", *args, stdout=out)
        finally:
            sys.stdin = old
    else:
        call_command("kwsconfig", *args, stdout=out)
    return out.getvalue()


def stored():
    return dict(ConfigValue.objects.values_list("key", "value"))


def test_get_prints_every_key_with_defaults_and_hides_the_secret():
    kwsconfig("set", "redundancy.secret", SECRET)
    out = kwsconfig("get")
    assert "redundancy.mode = single" in out
    assert "redundancy.failover_time = 15" in out
    assert "redundancy.secret = (set)" in out
    assert SECRET not in out


def test_set_stores_a_value_and_records_an_event():
    kwsconfig("set", "redundancy.failover_time", "20")
    assert config_read()["redundancy.failover_time"] == 20
    assert Event.objects.filter(
        kind="config", message__contains="redundancy.failover_time=20"
    ).exists()


def test_set_several_keys_at_once_pairs_a_master():
    kwsconfig(
        "set", "redundancy.mode=master", "redundancy.peer=10.0.0.2", f"redundancy.secret={SECRET}"
    )
    values = config_read()
    assert (values["redundancy.mode"], values["redundancy.peer"]) == ("master", "10.0.0.2")
    assert values["redundancy.database_uuid"]


def test_the_event_never_contains_the_secret():
    kwsconfig("set", "redundancy.secret", SECRET)
    assert not Event.objects.filter(message__contains=SECRET).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "redundancy.failover_time", "-1"), "redundancy.failover_time: -1 is negative"),
        (("set", "redundancy.peer", "10.0.0.2:99999"), "redundancy.peer: port '99999'"),
        (
            ("set", "redundancy.mode", "master"),
            "redundancy.peer: required when the node type is master",
        ),
        (("set", "redundancy.colour", "blue"), "redundancy.colour: unknown configuration key"),
        (("get", "nope"), "nope: unknown configuration key"),
    ],
)
def test_a_refused_value_names_the_key_and_changes_nothing(args, message):
    before = stored()
    with pytest.raises(CommandError) as info:
        kwsconfig(*args)
    assert message in str(info.value)
    assert "nothing changed" in str(info.value)
    assert stored() == before


def test_one_bad_key_in_a_multi_set_changes_nothing():
    before = stored()
    with pytest.raises(CommandError):
        kwsconfig("set", "redundancy.failover_time=30", "redundancy.peer=bad host")
    assert stored() == before


def test_export_then_import_gives_identical_settings(tmp_path):
    kwsconfig(
        "set",
        "redundancy.mode=master",
        "redundancy.peer=kws-b:8001",
        f"redundancy.secret={SECRET}",
        "redundancy.failover_time=42",
    )
    exported = tmp_path / "settings.conf"
    kwsconfig("export", str(exported), "--include-secrets")
    original = config_read()

    kwsconfig("set", "redundancy.mode=single", "redundancy.failover_time=5", "redundancy.peer=")
    assert config_read() != original
    kwsconfig("import", str(exported))
    assert config_read() == original


def test_export_is_readable_and_leaves_the_secret_out(tmp_path):
    kwsconfig("set", "redundancy.secret", SECRET)
    text = kwsconfig("export")
    assert "redundancy.mode = single" in text
    assert "# Failover time:" in text
    assert SECRET not in text


def test_a_bad_import_changes_nothing(tmp_path):
    kwsconfig("set", "redundancy.failover_time", "30")
    before = stored()
    bad = tmp_path / "bad.conf"
    bad.write_text("redundancy.failover_time = 10\nredundancy.peer = not a host\n")
    with pytest.raises(CommandError) as info:
        kwsconfig("import", str(bad))
    assert "redundancy.peer" in str(info.value)
    assert stored() == before


def test_import_reads_standard_input():
    kwsconfig("import", "-", stdin="redundancy.failover_time = 7\n")
    assert config_read()["redundancy.failover_time"] == 7


def test_import_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        kwsconfig("import", str(tmp_path / "missing.conf"))


def test_an_export_file_is_readable_by_its_owner_only(tmp_path):
    kwsconfig("set", "redundancy.secret", SECRET)
    exported = tmp_path / "settings.conf"
    exported.write_text("old")
    exported.chmod(0o644)
    kwsconfig("export", str(exported), "--include-secrets")
    assert exported.stat().st_mode & 0o777 == 0o600
    assert SECRET in exported.read_text()


def test_a_key_given_twice_is_refused_and_changes_nothing():
    before = stored()
    with pytest.raises(CommandError, match="redundancy.failover_time is given twice"):
        kwsconfig("set", "redundancy.failover_time=30", "redundancy.failover_time=40")
    assert stored() == before
