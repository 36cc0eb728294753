"""The XML-RPC methods' signatures: defaults, types, the SDK's integer extensions."""

import xmlrpc.client

import pytest

from basestations import protocol
from messaging import rpc

MAC = "02:4B:57:01:00:01"


def test_defaults_are_filled_in_and_an_integer_extension_is_accepted():
    bound = rpc.METHODS["endpoint_sms"].bind((5, 2001, "100", "Hello"))
    assert bound == {"session": 5, "to": "2001", "callback": "100", "display": "Hello",
                     "alerting": 1}  # fmt: skip
    advanced = rpc.METHODS["endpoint_sms_advanced"].bind((5, 1, 3))
    assert (advanced["id"], advanced["repeat"], advanced["type"], advanced["to"]) == (
        0, 3, "all", "")  # fmt: skip


@pytest.mark.parametrize(
    "method, args, message",
    [
        ("endpoint_sms", (5, "2001", "100"), r"argument 4 \(display\) is missing"),
        ("endpoint_sms", ("5", "2001", "100", "x"), "argument session must be an int"),
        ("endpoint_sms", (5, [1], "100", "x"), "argument to must be a string"),
        ("endpoint_sms", (5, "2001", "100", "x", 1, 2), "at most 5 arguments"),
        ("session_receive", (5, True), "argument timeout must be an int"),
    ],
)
def test_a_bad_argument_is_named(method, args, message):
    with pytest.raises(rpc.ArgumentError, match=message):
        rpc.METHODS[method].bind(args)


def test_introspection_lists_every_method_with_help_and_signature():
    names = rpc.introspect("system.listMethods", ())
    assert {"session_login", "session_receive", "endpoint_sms", "system.methodHelp"} <= set(names)
    assert "72 characters" in rpc.introspect("system.methodHelp", ("endpoint_sms",))
    assert rpc.introspect("system.methodSignature", ("session_login",)) == [
        ["int", "string", "string"]
    ]
    with pytest.raises(xmlrpc.client.Fault):
        rpc.introspect("system.methodHelp", ("no_such",))


def test_a_body_that_is_no_call_is_a_fault():
    with pytest.raises(xmlrpc.client.Fault, match="not an XML-RPC call"):
        rpc.parse_call(b"<html>")
    name, args = rpc.parse_call(xmlrpc.client.dumps((1, "a"), "endpoint_sms").encode())
    assert (name, args) == ("endpoint_sms", (1, "a"))


def test_a_display_longer_than_72_characters_is_refused():
    with pytest.raises(rpc.ArgumentError, match="at most 72"):
        rpc.display_check("x" * 73)


@pytest.mark.parametrize(
    "events, message",
    [
        ([{"kind": "shout", "from": "2001"}], "kind must be one of"),
        ([{"kind": "delivered", "from": "2001"}], "id must be an integer"),
        ([{"kind": "sms", "from": "2001", "to": "100", "display": "x" * 73}], "at most 72"),
        (
            [{"kind": "answer", "from": "2001", "id": 1, "action": 0x81, "status": ["a"]}],
            "a status must be an integer",
        ),
        ([{"kind": "base_stations", "from": "x1", "rfp_map": []}], "from must be an extension"),
    ],
)
def test_a_bad_uplink_event_is_refused_whole(events, message):
    with pytest.raises(ValueError, match=message):
        protocol.uplink_parse({"mac": MAC, "events": [{"kind": "sms", "from": "2001",
                                                       "to": "1", "display": ""}, *events]}, MAC)  # fmt: skip


def test_an_uplink_for_another_mac_is_refused():
    with pytest.raises(ValueError, match="not the signer"):
        protocol.uplink_parse({"mac": "02:4B:57:01:00:09", "events": []}, MAC)
