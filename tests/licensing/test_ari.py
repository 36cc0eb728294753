"""ARI codes: the accepted class and written form, generation, and the ARI swap rule."""

import pytest

from core import config
from licensing.ari import (
    AriError,
    ari_fields,
    ari_from_int,
    ari_generate,
    ari_parse,
    ari_setting_parse,
    system_ari_decide,
)


@pytest.mark.parametrize(
    "text", ["10A3F2C5", "10a3f2c5", " 10A3F2C5 ", "10A3 F2C5", "1-0A3F-2C-5", "1 0a3f 2c 5"]
)
def test_a_class_b_ari_is_read_in_any_case_with_spaces_or_dashes(text):
    assert ari_parse(text) == "10A3F2C5"


def test_the_fields_fall_on_whole_digits():
    fields = ari_fields("10A3F2C5")
    assert (fields.arc, fields.eic, fields.fpn, fields.fps) == (1, 0x0A3F, 0x2C, 5)
    assert fields.describe() == "class B, EIC 0A3F, FPN 2C, FPS 5"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "an ARI is required: 8 hexadecimal digits like 10A3F2C5"),
        ("10A3G2C5", "'G' is not a hexadecimal digit"),
        ("0x10A3F2C5", "'X' is not a hexadecimal digit"),
        ("10A3F2C", "it has 7 hexadecimal digits, a class B ARI has 8"),
        ("10A3F2C55", "it has 9 hexadecimal digits, a class B ARI has 8"),
        ("00A3F2C5", "starts with 0, and that is the access rights class of class A"),
        ("20A3F2C5", "class C (public systems)"),
        ("60A3F2C5", "that access rights class is reserved"),
        ("F0A3F2C5", "an ARI has 31 bits, so its first digit is at most 7"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text, message):
    with pytest.raises(AriError) as refused:
        ari_parse(text)
    assert message in str(refused.value)


def test_a_wrong_class_names_what_a_kws_needs():
    with pytest.raises(AriError) as refused:
        ari_parse("20A3F2C5")
    assert "a KWS 6000 is a private multiple-cell system with a class B ARI" in str(refused.value)


def test_the_setting_is_an_ari_or_empty_until_one_is_given():
    assert ari_setting_parse("  ") == ""
    assert config.parse_values({"system.ari": "10a3 f2c5"}) == {"system.ari": "10A3F2C5"}
    with pytest.raises(config.ConfigError) as refused:
        config.parse_values({"system.ari": "12345"})
    assert "system.ari" in refused.value.errors
    assert config.KEYS["system.ari"].local


def test_ari_bits_round_trip_and_other_classes_do_not_fit():
    assert ari_from_int(0x10A3F2C5) == "10A3F2C5"
    with pytest.raises(AriError):
        ari_from_int(0x20A3F2C5)


def test_a_generated_ari_is_class_b_and_avoids_the_given_ones():
    draws = iter([0x0A3F2C5, 0x0A3F2C5, 0x0B22C00])
    ari = ari_generate(avoid={"10A3F2C5"}, randbits=lambda bits: next(draws))
    assert ari == "10B22C00"
    for _ in range(50):
        assert ari_parse(ari_generate()).startswith("1")


# --- The ARI swap ---------------------------------------------------------------

MASTER = "1B22C001"
OWN = "10A3F2C5"


def decide(**overrides):
    facts = dict(own=OWN, subscribed="", mode="slave", swap_license=True, phase="normal",
                 peer_mode="master", peer_ari=MASTER)  # fmt: skip
    facts.update(overrides)
    return system_ari_decide(**facts)


@pytest.mark.parametrize(
    "overrides, system, reason",
    [
        ({}, MASTER, "ARI swap: this backup acts under the system ARI 1B22C001"),
        ({"subscribed": MASTER}, MASTER, "ARI swap: this backup acts under the system ARI"),
        ({"phase": "failover"}, MASTER, "ARI swap"),
        ({"phase": "peer_lost"}, MASTER, "ARI swap"),
        ({"mode": "master"}, OWN, "own ARI is the system ARI"),
        ({"mode": "single"}, OWN, "own ARI is the system ARI"),
        ({"swap_license": False}, OWN, "no backup redundancy license (14075260)"),
        ({"phase": "single"}, OWN, "the pair has not formed yet"),
        ({"phase": "rejected"}, OWN, "the pair has not formed yet"),
        ({"peer_ari": ""}, OWN, "the master has not told the system ARI yet"),
        ({"peer_ari": "garbage"}, OWN, "the master has not told the system ARI yet"),
        ({"peer_mode": "slave"}, OWN, "the peer is not a master"),
        ({"subscribed": OWN}, OWN, "own ARI is the system ARI: no ARI swap is needed"),
    ],
)
def test_the_backup_acts_under_the_system_ari_only_with_its_license_in_a_formed_pair(
    overrides, system, reason
):
    decided = decide(**overrides)
    assert (decided.own, decided.system) == (OWN, system)
    assert decided.swapped == (system == MASTER)
    assert reason in decided.reason


def test_after_a_replacement_the_backup_follows_the_system_ari_not_its_masters_own():
    # The promoted master (own ARI PROMOTED) acts under the original system ARI; the
    # replacement backup follows the replicated system ARI, not the master's own ARI.
    promoted = "12345670"
    decided = decide(subscribed=MASTER, peer_ari=promoted)
    assert (decided.system, decided.subscribed, decided.swapped) == (MASTER, MASTER, True)


def test_a_promoted_master_keeps_acting_under_the_system_ari_with_its_backup_license():
    decided = decide(mode="master", subscribed=MASTER, phase="failover", peer_ari="")
    assert (decided.system, decided.swapped, decided.problem) == (MASTER, True, "")
    assert "this master acts under the system ARI 1B22C001" in decided.reason


def test_a_master_without_the_swap_acts_under_its_own_ari_and_names_the_code_it_needs():
    decided = decide(mode="master", subscribed=MASTER, swap_license=False)
    assert (decided.system, decided.subscribed, decided.swapped) == (OWN, MASTER, False)
    assert "14075260 for ARI 10A3F2C5" in decided.problem
    assert "subscribed to the system ARI 1B22C001" in decided.problem


def test_a_backup_without_the_swap_names_the_code_for_its_own_ari():
    decided = decide(subscribed=MASTER, swap_license=False)
    assert (decided.system, decided.swapped) == (OWN, False)
    assert "14075260 for this server's ARI 10A3F2C5" in decided.problem
