"""The configuration keys' rules, without a database."""

import pytest

from core import config
from users.config import registrar_address


def parse(name, text):
    return config.parse_values({name: text})[name]


def refusal(texts):
    with pytest.raises(config.ConfigError) as info:
        config.parse_values(texts)
    return info.value.errors


@pytest.mark.parametrize("text", ["single", "master", "slave", " MASTER "])
def test_mode_accepts_the_seed_values(text):
    assert parse("redundancy.mode", text) == text.strip().lower()


@pytest.mark.parametrize("text", ["backup", "", "primary"])
def test_mode_refuses_other_values_naming_the_allowed_ones(text):
    assert "use single, master or slave" in refusal({"redundancy.mode": text})["redundancy.mode"]


@pytest.mark.parametrize(
    "text",
    ["10.0.0.2", "10.0.0.2:8001", "kws-b.example.org", "kws-b:80", "::1", "[::1]:8001", ""],
)
def test_peer_accepts_hosts_and_addresses_with_optional_port(text):
    assert parse("redundancy.peer", text) == text


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("10.0.0.2:0", "port '0' is not a number from 1 to 65535"),
        ("10.0.0.2:70000", "port '70000' is not a number from 1 to 65535"),
        ("10.0.0.2:http", "port 'http' is not a number"),
        ("300.1.1.1", "is not a valid IPv4 address"),
        ("bad host", "is not a host name or IP address"),
        ("-kws.example", "is not a host name or IP address"),
        ("[::1", "is not a valid [IPv6]:port address"),
    ],
)
def test_peer_refuses_bad_hosts_and_ports_with_the_rule(text, rule):
    assert rule in refusal({"redundancy.peer": text})["redundancy.peer"]


def test_split_peer_defaults_to_port_80():
    assert config.split_peer("10.0.0.2") == ("10.0.0.2", 80)
    assert config.split_peer("[fd00::2]:8001") == ("fd00::2", 8001)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("15", 15), ("3600", 3600), (" 20 ", 20)])
def test_failover_time_accepts_whole_seconds_up_to_an_hour(text, value):
    assert parse("redundancy.failover_time", text) == value


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("-1", "-1 is negative; use 0 to 3600 seconds"),
        ("3601", "3601 s is more than 3600 s"),
        ("1.5", "is not a whole number of seconds"),
        ("soon", "is not a whole number of seconds"),
        ("", "is not a whole number of seconds"),
    ],
)
def test_failover_time_refuses_negative_absurd_and_non_integers(text, rule):
    assert rule in refusal({"redundancy.failover_time": text})["redundancy.failover_time"]


def test_database_uuid_is_a_uuid_or_empty():
    assert parse("redundancy.database_uuid", "") == ""
    value = "123E4567-E89B-12D3-A456-426614174000"
    assert parse("redundancy.database_uuid", value) == value.lower()
    assert (
        "is not a UUID" in refusal({"redundancy.database_uuid": "1234"})["redundancy.database_uuid"]
    )


def test_secret_must_be_long_enough():
    assert "at least 16 characters" in refusal({"redundancy.secret": "short"})["redundancy.secret"]


def test_unknown_keys_are_refused_and_every_bad_key_is_named():
    errors = refusal({"redundancy.nope": "1", "redundancy.failover_time": "-5"})
    assert set(errors) == {"redundancy.nope", "redundancy.failover_time"}
    assert "unknown configuration key" in errors["redundancy.nope"]


@pytest.mark.parametrize("mode", ["master", "slave"])
def test_master_or_backup_without_peer_or_secret_breaks_the_rules(mode):
    values = {**config.defaults(), "redundancy.mode": mode}
    errors = config.check_rules(values)
    assert (
        f"required when the node type is {'backup (slave)' if mode == 'slave' else 'master'}"
        in (errors["redundancy.peer"])
    )
    assert "redundancy.secret" in errors


def test_single_server_needs_neither_peer_nor_secret():
    assert config.check_rules(config.defaults()) == {}


def test_a_server_that_becomes_backup_has_its_uuid_reset():
    old = {**config.defaults(), "redundancy.database_uuid": "123e4567-e89b-12d3-a456-426614174000"}
    new = {**old, "redundancy.mode": "slave"}
    notes = config.normalize(old, new, {"redundancy.mode"})
    assert new["redundancy.database_uuid"] == ""
    assert "fetches the master's UUID" in notes[0]


def test_a_backup_moved_to_another_master_has_its_uuid_reset():
    backup = {**config.defaults(), "redundancy.mode": "slave", "redundancy.peer": "10.0.0.1",
              "redundancy.database_uuid": "123e4567-e89b-12d3-a456-426614174000"}  # fmt: skip
    new = {**backup, "redundancy.peer": "10.9.9.9"}
    notes = config.normalize(backup, new, {"redundancy.peer"})
    assert new["redundancy.database_uuid"] == ""
    assert "follows another master and fetches the master's UUID" in notes[0]

    # Saving the same peer again (the form sends every field) keeps the UUID.
    same = {**backup}
    assert config.normalize(backup, same, {"redundancy.peer", "redundancy.mode"}) == []
    assert same["redundancy.database_uuid"] == backup["redundancy.database_uuid"]


def test_a_backup_given_a_uuid_in_the_same_change_keeps_it():
    old = {**config.defaults(), "redundancy.database_uuid": "123e4567-e89b-12d3-a456-426614174000"}
    new = {**old, "redundancy.mode": "slave", "redundancy.database_uuid": "2" * 32}
    config.normalize(old, new, {"redundancy.mode", "redundancy.database_uuid"})
    assert new["redundancy.database_uuid"] == "2" * 32


def test_a_master_without_uuid_gets_one_generated():
    old = config.defaults()
    new = {**old, "redundancy.mode": "master"}
    config.normalize(old, new, {"redundancy.mode"})
    assert parse("redundancy.database_uuid", new["redundancy.database_uuid"])


def test_export_text_round_trips_and_leaves_secrets_out_by_default():
    values = {
        **config.defaults(),
        "redundancy.mode": "master",
        "redundancy.peer": "10.0.0.2:8001",
        "redundancy.secret": "s" * 20,
        "redundancy.database_uuid": "123e4567-e89b-12d3-a456-426614174000",
    }
    text = config.export_text(values)
    assert "s" * 20 not in text
    parsed = config.parse_values(config.parse_export_text(text))
    assert parsed == {k: v for k, v in values.items() if not config.KEYS[k].secret}
    with_secret = config.parse_export_text(config.export_text(values, include_secrets=True))
    assert with_secret["redundancy.secret"] == "s" * 20


def test_export_text_refuses_malformed_and_repeated_lines():
    with pytest.raises(config.ConfigError) as info:
        config.parse_export_text("redundancy.mode = master\njunk\nredundancy.mode = single\n")
    assert info.value.errors == {
        "line 2": "'junk' is not a 'key = value' line",
        "line 3": "redundancy.mode is given twice",
    }


@pytest.mark.parametrize(
    ("text", "address"),
    [("10.0.0.9", ("10.0.0.9", 5060)), ("pbx.example:5080", ("pbx.example", 5080)),
     ("[::1]:5070", ("::1", 5070))],
)  # fmt: skip
def test_the_sip_registrar_defaults_to_port_5060(text, address):
    assert parse("sip.registrar", text) == text
    assert registrar_address(text) == address


@pytest.mark.parametrize(
    ("key", "text", "rule"),
    [
        ("sip.registrar", "pbx example", "is not a host name"),
        ("sip.transport", "tls", "use udp or tcp"),
        ("sip.rate", "0", "use 1 to 10000 registrations per second"),
        ("sip.expires", "30", "use 60 to 86400 seconds"),
        ("sip.domain", "-bad-", "is not a host name"),
    ],
)
def test_sip_settings_are_validated(key, text, rule):
    assert rule in refusal({key: text})[key]
