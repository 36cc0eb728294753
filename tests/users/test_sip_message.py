"""The SIP message parser and builder (users/sip/message.py): no network, no Django."""

import pytest

from users.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    UnsupportedChallenge,
    build_response,
    choose_challenge,
    contact_expires,
    parse_cseq,
    parse_digest_challenge,
    parse_expires,
    parse_message,
    parse_name_addr,
    split_list,
    uri_key,
)

KAMAILIO_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKabc;rport=40000\r\n"
    b"From: <sip:1001@127.0.0.1>;tag=a1\r\n"
    b"To: <sip:1001@127.0.0.1>;tag=b2\r\n"
    b"Call-ID: c0ffee@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="127.0.0.1", nonce="Z0x1Y2", qop="auth"\r\n'
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_a_response_is_parsed_with_status_reason_and_headers():
    message = parse_message(KAMAILIO_401)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (401, "Unauthorized")
    assert message.get("call-id") == "c0ffee@127.0.0.1"
    assert parse_cseq(message.get("CSeq")) == (1, "REGISTER")
    assert message.body == b""


def test_a_request_is_parsed_with_method_and_uri():
    message = parse_message(b"OPTIONS sip:1001@10.0.0.1:5060 SIP/2.0\r\nCSeq: 7 OPTIONS\r\n\r\n")
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri) == ("OPTIONS", "sip:1001@10.0.0.1:5060")


def test_compact_header_names_are_expanded():
    data = (
        b"SIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:a@h>\r\ni: xyz\r\nCSeq: 2 REGISTER\r\n"
        b"m: <sip:a@10.0.0.1>;expires=60\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert [name for name, _ in message.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length",
    ]  # fmt: skip
    assert message.get("Call-ID") == "xyz"
    assert message.get("contact") == "<sip:a@10.0.0.1>;expires=60"


def test_header_names_are_case_insensitive_and_canonical():
    message = parse_message(
        b"SIP/2.0 200 OK\r\ncall-id: 1\r\nCSEQ: 1 REGISTER\r\nwww-authenticate: x\r\n\r\n"
    )
    assert [name for name, _ in message.headers] == ["Call-ID", "CSeq", "WWW-Authenticate"]


def test_folded_header_lines_are_joined():
    data = (
        b"SIP/2.0 200 OK\r\nSubject: I know you're there,\r\n   pick up the phone\r\n\tnow\r\n\r\n"
    )
    assert parse_message(data).get("Subject") == "I know you're there, pick up the phone now"


def test_several_values_in_one_line_and_repeated_lines_are_all_returned():
    data = (
        b"SIP/2.0 200 OK\r\n"
        b'Contact: <sip:a@1.1.1.1>;expires=30, "Bob, Jr." <sip:b@2.2.2.2>;expires=60\r\n'
        b"Contact: sip:c@3.3.3.3;expires=90\r\n"
        b'WWW-Authenticate: Digest realm="a,b", nonce="1"\r\n\r\n'
    )
    message = parse_message(data)
    assert message.get_all("Contact") == [
        "<sip:a@1.1.1.1>;expires=30",
        '"Bob, Jr." <sip:b@2.2.2.2>;expires=60',
        "sip:c@3.3.3.3;expires=90",
    ]
    # Not a list header: the comma inside the challenge is not a separator.
    assert message.get_all("WWW-Authenticate") == ['Digest realm="a,b", nonce="1"']


def test_body_is_cut_at_content_length_and_bare_lf_is_tolerated():
    assert parse_message(b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").body == b"abc"
    assert parse_message(b"SIP/2.0 200 OK\nl: 2\n\nxyz").body == b"xy"
    assert parse_message(b"SIP/2.0 200 OK\r\n\r\nrest").body == b"rest"
    assert parse_message(b"\r\n\r\nSIP/2.0 200 OK\r\n\r\n").status == 200


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty message"),
        (b"SIP/2.0 200 OK\r\nVia: x\r\n", "no empty line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "malformed status line"),
        (b"SIP/2.0 099 Low\r\n\r\n", "out of range"),
        (b"SIP/3.0 200 OK\r\n\r\n", "unsupported SIP version"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "malformed method 'HTTP/1.1'"),
        (b"REGISTER sip:x SIP/1.0\r\n\r\n", "version"),
        (b"REG@STER sip:x SIP/2.0\r\n\r\n", "malformed method"),
        (b"REGISTER nouri SIP/2.0\r\n\r\n", "Request-URI"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n", "malformed header line"),
        (b"SIP/2.0 200 OK\r\nContent-Length: ten\r\n\r\n", "malformed Content-Length"),
        (b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"),
        (b"SIP/2.0 200 OK\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"),
        (b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", "body has 3 bytes"),
        (b"SIP/2.0 200 OK\r\nFrom: \xff\xfe\r\n\r\n", "not valid UTF-8"),
    ],
)
def test_malformed_messages_raise_a_clear_parse_error(data, error):
    with pytest.raises(SipParseError, match=error):
        parse_message(data)


def test_garbage_never_raises_anything_but_a_parse_error():
    import random

    rng = random.Random(6)
    for _ in range(2000):
        cut = KAMAILIO_401[: rng.randrange(len(KAMAILIO_401))]
        noisy = bytearray(KAMAILIO_401)
        for _ in range(rng.randrange(1, 6)):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        for data in (cut, bytes(noisy)):
            try:
                message = parse_message(data)
                for value in message.get_all("WWW-Authenticate"):
                    parse_digest_challenge(value)
                parse_cseq(message.get("CSeq"))
            except SipParseError:
                pass


def test_a_request_serialises_with_a_matching_content_length():
    request = SipRequest(method="REGISTER", uri="sip:pbx")
    request.add("call-id", "abc")
    request.add("Content-Length", "99")  # replaced by the real one
    request.body = b"hi"
    data = request.to_bytes()
    assert data == b"REGISTER sip:pbx SIP/2.0\r\nCall-ID: abc\r\nContent-Length: 2\r\n\r\nhi"
    again = parse_message(data)
    assert (again.get("Call-ID"), again.body) == ("abc", b"hi")


def test_a_header_value_with_a_line_break_is_refused_when_building():
    request = SipRequest(method="REGISTER", uri="sip:pbx", headers=[("To", "a\r\nEvil: 1")])
    with pytest.raises(ValueError, match="line break"):
        request.to_bytes()


def test_a_response_to_a_request_copies_via_from_call_id_cseq_and_tags_to():
    request = parse_message(
        b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP p1;branch=z9hG4bK1\r\n"
        b"Via: SIP/2.0/UDP p2;branch=z9hG4bK2\r\nFrom: <sip:pbx@h>;tag=9\r\nTo: <sip:a@h>\r\n"
        b"Call-ID: q\r\nCSeq: 5 OPTIONS\r\nMax-Forwards: 70\r\n\r\n"
    )
    response = parse_message(build_response(request, 200, "OK", to_tag="t1").to_bytes())
    assert response.status == 200
    assert response.get_all("Via") == [
        "SIP/2.0/UDP p1;branch=z9hG4bK1",
        "SIP/2.0/UDP p2;branch=z9hG4bK2",
    ]
    assert response.get("To") == "<sip:a@h>;tag=t1"
    assert (response.get("Call-ID"), response.get("CSeq")) == ("q", "5 OPTIONS")
    assert response.get("Max-Forwards") is None


def test_the_stream_framer_splits_by_content_length_across_chunks():
    one = b"SIP/2.0 200 OK\r\nCall-ID: 1\r\nContent-Length: 4\r\n\r\nbody"
    two = b"SIP/2.0 401 Unauthorized\r\nl: 0\r\nCall-ID: 2\r\n\r\n"
    stream = b"\r\n\r\n" + one + b"\r\n" + two
    framer = StreamFramer()
    out = []
    for i in range(0, len(stream), 7):
        out += framer.feed(stream[i : i + 7])
    assert out == [one, two]
    assert parse_message(out[0]).body == b"body"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"SIP/2.0 200 OK\r\nCall-ID: 1\r\n\r\n", "without Content-Length"),
        (b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n", "malformed Content-Length"),
        (b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 20000, "no end of headers"),
    ],
)
def test_the_stream_framer_refuses_unframeable_input(data, error):
    with pytest.raises(SipParseError, match=error):
        StreamFramer(max_header_bytes=65536).feed(data)


def test_split_list_keeps_quoted_and_bracketed_commas():
    assert split_list('a, "b,c" <sip:x>, <sip:y,z>;p=1,') == ["a", '"b,c" <sip:x>', "<sip:y,z>;p=1"]
    with pytest.raises(SipParseError, match="unterminated"):
        split_list('"open, quote')


def test_name_addr_forms():
    bob = parse_name_addr('"Bob \\"B\\"" <sip:bob@h:5060;transport=tcp>;tag=1;expires=60;lr')
    assert bob.display == 'Bob "B"'
    assert bob.uri == "sip:bob@h:5060;transport=tcp"
    assert bob.params == {"tag": "1", "expires": "60", "lr": None}
    bare = parse_name_addr("sip:bob@h;expires=30")
    assert (bare.uri, bare.params) == ("sip:bob@h", {"expires": "30"})
    assert parse_name_addr("Bob <sip:b@h>").display == "Bob"
    assert parse_name_addr("*").uri == "*"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("<sip:bob@h", "missing '>'"),
        ("<sip:bob@h> junk", "unexpected text"),
        ("<nocolon>", "malformed URI"),
        ("<sip:b@h>;bad name=1", "malformed parameter"),
        ('<sip:b@h>;p="open', "unterminated"),
    ],
)
def test_malformed_name_addrs_raise(value, error):
    with pytest.raises(SipParseError, match=error):
        parse_name_addr(value)


def test_uri_key_ignores_params_and_host_case():
    assert uri_key("SIP:1001@PBX.Example:5060;transport=tcp") == "sip:1001@pbx.example:5060"
    assert uri_key("sip:1001@pbx.example:5060") == "sip:1001@pbx.example:5060"


def test_expires_values():
    assert parse_expires(" 3600 ") == 3600
    assert parse_expires("99999999999") == 2**32 - 1
    for bad in ("", "-1", "1.5", "soon", "٣"):
        with pytest.raises(SipParseError, match="malformed expires"):
            parse_expires(bad)


def test_granted_expiry_prefers_our_contact_param_then_the_expires_header():
    response = parse_message(
        b"SIP/2.0 200 OK\r\n"
        b"Contact: <sip:other@10.0.0.2:5060>;expires=999,"
        b" <sip:1001@127.0.0.1:40000>;expires=120\r\n"
        b"Expires: 300\r\n\r\n"
    )
    assert contact_expires(response, "sip:1001@127.0.0.1:40000") == 120
    assert contact_expires(response, "sip:1001@127.0.0.1:40001") == 300
    bare = parse_message(b"SIP/2.0 200 OK\r\n\r\n")
    assert contact_expires(bare, "sip:1001@127.0.0.1:40000") is None


def test_cseq_is_validated():
    assert parse_cseq("  12   REGISTER ") == (12, "REGISTER")
    for bad in (None, "", "REGISTER", "x REGISTER", "1 REGISTER extra", str(2**31) + " R"):
        with pytest.raises(SipParseError):
            parse_cseq(bad)


def test_a_digest_challenge_with_all_its_params():
    challenge = parse_digest_challenge(
        'Digest realm="pbx.example", nonce="abc\\"def", qop="auth,auth-int", '
        'opaque="5ccc", algorithm=md5-sess, stale=TRUE, domain="sip:pbx.example"'
    )
    assert challenge.realm == "pbx.example"
    assert challenge.nonce == 'abc"def'
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.opaque == "5ccc"
    assert challenge.algorithm == "MD5-sess"
    assert challenge.stale is True


def test_a_digest_challenge_defaults_to_md5_without_qop():
    challenge = parse_digest_challenge('digest realm="r",nonce="n"')
    assert (challenge.algorithm, challenge.qop, challenge.opaque, challenge.stale) == (
        "MD5", (), None, False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('Basic realm="r"', "scheme 'Basic' is not supported"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "'SHA-1' is not supported"),
        ('Digest realm="r", nonce="n", algorithm=AKAv1-MD5', "only MD5, MD5-sess, SHA-256"),
    ],
)
def test_unsupported_challenges_are_refused_clearly(value, error):
    with pytest.raises(UnsupportedChallenge, match=error):
        parse_digest_challenge(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", "empty"),
        ('Digest nonce="n"', "without realm"),
        ('Digest realm="r"', "without nonce"),
        ('Digest realm="r", nonce="n', "unterminated"),
        ('Digest realm "r", nonce="n"', "has no value"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ("Digest realm=, nonce=n", "malformed value"),
        ('Digest =x, realm="r"', "malformed challenge parameter"),
    ],
)
def test_malformed_challenges_raise_parse_errors(value, error):
    with pytest.raises(SipParseError, match=error):
        parse_digest_challenge(value)


def test_choose_challenge_takes_the_strongest_one_we_can_answer():
    offered = [
        'Digest realm="r", nonce="n1", algorithm=SHA-1, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="n3", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="n4", algorithm=SHA-256-sess, qop="auth"',
    ]
    assert choose_challenge(offered).nonce == "n3"  # of equal strength, the first
    assert choose_challenge(offered[:2]).nonce == "n2"
    assert choose_challenge([*offered, 'Digest realm="r", nonce="n5", algorithm=SHA-512-256']
                            ).algorithm == "SHA-512-256"  # fmt: skip
    with pytest.raises(UnsupportedChallenge, match="SHA-1"):
        choose_challenge(offered[:1])
    with pytest.raises(UnsupportedChallenge, match="qop 'auth-conf'"):
        choose_challenge(['Digest realm="r", nonce="n", qop="auth-conf"'])
    with pytest.raises(SipParseError, match="without a challenge"):
        choose_challenge([])
