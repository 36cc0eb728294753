"""The pure rules of the device protocol: firmware order, MACs, payloads, the witness share."""

import pytest

from basestations import protocol
from basestations.protocol import firmware_parse, firmware_refusal, mac_normalize


def test_firmware_versions_are_ordered_by_release_letter_and_build():
    ordered = ["PCS04Z", "PCS05A", "PCS05B", "PCS05Z", "PCS06A", "PCS06A_2", "PCS06A_10",
               "PCS06B", "PCS06Z", "PCS06AA", "PCS07A", "PCS10A"]  # fmt: skip
    parsed = [firmware_parse(v) for v in ordered]
    assert parsed == sorted(parsed)
    assert sorted(reversed(parsed)) == parsed


def test_firmware_is_read_case_insensitively_and_with_build_separators():
    assert firmware_parse("pcs06b") == firmware_parse("PCS06B")
    assert firmware_parse("PCS06A-3") == firmware_parse("PCS06A.3") == firmware_parse("PCS06A_3")
    assert str(firmware_parse(" pcs06a ")) == "PCS06A"


@pytest.mark.parametrize("text", ["", "6.1", "PCS6A", "PCS06", "XYZ06A", "PCS06ABC", "PCS06A_x"])
def test_malformed_firmware_versions_are_refused(text):
    with pytest.raises(ValueError, match="not a firmware version like PCS06A"):
        firmware_parse(text)


@pytest.mark.parametrize(
    ("version", "refusal"),
    [
        ("PCS05B", "firmware PCS05B is older than PCS06A"),
        ("PCS05Z_99", "firmware PCS05Z_99 is older than PCS06A"),
        ("PCS06A", ""),
        ("PCS06B", ""),
        ("PCS07A", ""),
        ("bogus", "unknown firmware version: 'bogus' is not a firmware version like PCS06A"),
    ],
)
def test_firmware_older_than_pcs06a_is_refused_with_a_reason(version, refusal):
    assert firmware_refusal(version) == refusal


def test_macs_are_normalized_to_upper_case_with_colons():
    for text in ("00:13:d1:0a:0b:0c", "00-13-D1-0A-0B-0C", "0013.d10a.0b0c", "0013D10A0B0C"):
        assert mac_normalize(text) == "00:13:D1:0A:0B:0C"
    for bad in ("", "00:13:D1:0A:0B", "00:13:D1:0A:0B:0G", "00:13:D1:0A:0B:0C:0D"):
        with pytest.raises(ValueError, match="is not a MAC address"):
            mac_normalize(bad)


def test_simulated_macs_are_locally_administered_and_distinct_per_kind():
    assert protocol.sim_mac("rfp", 1) == "02:4B:57:01:00:01"
    assert protocol.sim_mac("media", 258) == "02:4B:57:02:01:02"
    macs = {protocol.sim_mac(k, i) for k in protocol.KINDS for i in range(1, 1001)}
    assert len(macs) == 2000
    assert protocol.sim_name("rfp", 7) == "RFP 007" and protocol.sim_name("media", 2) == "Media 02"


def body(**fields):
    return {"mac": "00:13:d1:0a:0b:0c", "kind": "rfp", "firmware": "PCS06B", "state": "synced",
            "peer_reachable": None, **fields}  # fmt: skip


def test_a_keepalive_is_normalized():
    report = protocol.keepalive_parse(body(handsets=["2001", 2002]), "0013D10A0B0C")
    assert report == {
        "mac": "00:13:D1:0A:0B:0C", "kind": "rfp", "firmware": "PCS06B", "state": "synced",
        "peer_reachable": None, "handsets": ["2001", "2002"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "signer", "message"),
    [
        ({}, "00:13:D1:0A:0B:0D", "signed by 00:13:D1:0A:0B:0D but the keep-alive is for"),
        ({}, "me", "signed by 'me', which is not a MAC address"),
        ({"mac": "x"}, "00:13:D1:0A:0B:0C", "is not a MAC address"),
        ({"kind": "phone"}, "00:13:D1:0A:0B:0C", "kind must be rfp or media"),
        ({"firmware": ""}, "00:13:D1:0A:0B:0C", "firmware must be a non-empty string"),
        ({"peer_reachable": "yes"}, "00:13:D1:0A:0B:0C", "peer_reachable must be"),
        ({"handsets": "2001"}, "00:13:D1:0A:0B:0C", "handsets must be a list"),
        ({"channels_in_use": True}, "00:13:D1:0A:0B:0C", "channels_in_use must be"),
    ],
)
def test_malformed_keepalives_are_refused_naming_the_problem(fields, signer, message):
    with pytest.raises(ValueError, match=message):
        protocol.keepalive_parse(body(**fields), signer)


def test_a_keepalive_must_be_an_object():
    with pytest.raises(ValueError, match="JSON object"):
        protocol.keepalive_parse([1], "00:13:D1:0A:0B:0C")


@pytest.mark.parametrize(
    ("known", "needed"), [(0, 1), (1, 1), (2, 2), (3, 2), (5, 4), (10, 7), (100, 61), (1000, 601)]
)
def test_the_witness_needs_60_percent_plus_one_of_the_base_stations(known, needed):
    assert protocol.witness_needed(known) == needed


def test_a_device_counts_as_attached_for_its_missed_keepalives_plus_one_interval():
    assert protocol.fresh_window(1.0) == 3.0 and protocol.fresh_window(2.0, 3) == 8.0
