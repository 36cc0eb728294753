"""Signatures of peer messages: what is accepted and what is refused."""

import pytest

from core import signing

SECRET = "pairing-secret-0123456789"
BODY = b'{"claims": {}}'


def signed(**overrides):
    args = {"secret": SECRET, "node": "kws-a", "method": "POST", "path": "/api/peer/heartbeat",
            "body": BODY, "now": 1000.0}  # fmt: skip
    args.update(overrides)
    return signing.sign_request(**args)


def verify(headers, **overrides):
    args = {"secret": SECRET, "method": "POST", "path": "/api/peer/heartbeat", "body": BODY,
            "headers": headers, "now": 1000.0}  # fmt: skip
    args.update(overrides)
    return signing.verify_request(**args)


def test_a_signed_request_verifies_and_yields_its_nonce():
    message = signed()
    assert verify(message.headers).nonce == message.nonce


def test_every_request_has_a_fresh_nonce():
    assert signed().nonce != signed().nonce


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "another-secret-0123456789"},
        {"method": "GET"},
        {"path": "/api/peer/snapshot"},
        {"body": b'{"claims": {"mode": "master"}}'},
    ],
)
def test_a_request_altered_in_any_signed_part_is_refused(change):
    with pytest.raises(signing.SignatureError, match="wrong signature"):
        verify(signed().headers, **change)


def test_an_altered_timestamp_or_nonce_breaks_the_signature():
    for header, value in ((signing.HEADER_TIME, "1001.000000"), (signing.HEADER_NONCE, "a" * 32)):
        headers = {**signed().headers, header: value}
        with pytest.raises(signing.SignatureError, match="wrong signature"):
            verify(headers)


@pytest.mark.parametrize(
    "header", [signing.HEADER_TIME, signing.HEADER_NONCE, signing.HEADER_SIGNATURE]
)
def test_an_unsigned_request_is_refused_naming_the_missing_header(header):
    headers = dict(signed().headers)
    del headers[header]
    with pytest.raises(signing.SignatureError, match=f"unsigned message: header {header} missing"):
        verify(headers)


@pytest.mark.parametrize(
    ("skew", "ok"), [(29.0, True), (-29.0, True), (31.0, False), (-31.0, False)]
)
def test_messages_older_or_newer_than_the_skew_window_are_stale(skew, ok):
    headers = signed(now=1000.0 - skew).headers
    if ok:
        verify(headers)
    else:
        with pytest.raises(signing.SignatureError, match="stale message"):
            verify(headers)


def test_malformed_headers_are_refused():
    with pytest.raises(signing.SignatureError, match="malformed timestamp"):
        verify({**signed().headers, signing.HEADER_TIME: "yesterday"})
    with pytest.raises(signing.SignatureError, match="malformed nonce"):
        verify({**signed().headers, signing.HEADER_NONCE: "../../"})


def test_without_a_configured_secret_nothing_is_accepted():
    with pytest.raises(signing.SignatureError, match="no pairing secret"):
        verify(signed().headers, secret="")


def test_a_response_is_bound_to_its_request():
    headers, _ = signing.sign_response(secret=SECRET, node="kws-b", status=200,
                                       request_nonce="n" * 32, body=b"{}", now=1000.0)  # fmt: skip
    signing.verify_response(secret=SECRET, status=200, request_nonce="n" * 32, body=b"{}",
                            headers=headers, now=1000.0)  # fmt: skip
    for change in ({"request_nonce": "m" * 32}, {"status": 500}, {"body": b"[]"}):
        args = {"secret": SECRET, "status": 200, "request_nonce": "n" * 32, "body": b"{}",
                "headers": headers, "now": 1000.0, **change}  # fmt: skip
        with pytest.raises(signing.SignatureError):
            signing.verify_response(**args)


# --- Direction, destination, sealing (a reflected or forged message is refused) ------

A, B = "node-a-id", "node-b-id"


def test_a_request_claiming_this_server_as_its_sender_is_refused_as_reflected():
    message = signed(sender=A, receiver=B)
    with pytest.raises(signing.SignatureError, match="reflected") as refused:
        verify(message.headers, me=A)
    assert refused.value.cause == "reflected"
    assert verify(message.headers, me=B).sender == A


def test_a_request_addressed_to_another_server_is_refused():
    with pytest.raises(signing.SignatureError, match="addressed to another"):
        verify(signed(sender=A, receiver="node-c-id").headers, me=B)
    assert verify(signed(sender=A, receiver="").headers, me=B)  # the first contact


def test_a_signature_for_one_direction_does_not_verify_for_the_other():
    headers = dict(signed(sender=A, receiver=B).headers)
    headers[signing.HEADER_SENDER], headers[signing.HEADER_RECEIVER] = B, A
    with pytest.raises(signing.SignatureError, match="wrong signature"):
        verify(headers, me=A)


def test_a_request_is_no_answer_and_an_answer_is_no_request():
    request = signed(sender=B, receiver=A)
    with pytest.raises(signing.SignatureError, match="wrong signature"):
        signing.verify_response(secret=SECRET, status=200, request_nonce=request.nonce,
                                body=BODY, headers=request.headers, me=A, now=1000.0)  # fmt: skip
    headers, body = signing.sign_response(secret=SECRET, node="kws-b", status=200,
                                          request_nonce="n" * 32, body=BODY, responder=B,
                                          requester=A, now=1000.0)  # fmt: skip
    with pytest.raises(signing.SignatureError, match="wrong signature"):
        verify(headers, me=A)


def test_an_answer_to_another_server_or_from_this_one_is_refused():
    headers, body = signing.sign_response(secret=SECRET, node="kws-b", status=200,
                                          request_nonce="n" * 32, body=BODY, responder=B,
                                          requester=A, now=1000.0)  # fmt: skip
    args = {"secret": SECRET, "status": 200, "request_nonce": "n" * 32, "body": body,
            "headers": headers, "now": 1000.0}  # fmt: skip
    assert signing.verify_response(**args, me=A) == BODY
    with pytest.raises(signing.SignatureError, match="reflected"):
        signing.verify_response(**args, me=B)
    with pytest.raises(signing.SignatureError, match="addressed to another"):
        signing.verify_response(**args, me="node-c-id")


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e400"])
def test_a_timestamp_that_is_not_a_finite_number_is_refused(stamp):
    with pytest.raises(signing.SignatureError, match="malformed timestamp"):
        verify({**signed().headers, signing.HEADER_TIME: stamp})


def test_a_sealed_body_is_unreadable_on_the_wire_and_opens_only_with_the_secret():
    secret_body = b'{"sip_password": "Very-Secret-pw-1"}'
    message = signed(body=secret_body, sender=A, receiver=B, seal=True)
    assert b"Very-Secret" not in message.body and message.body != secret_body
    opened = verify(message.headers, body=message.body, me=B)
    assert opened.body == secret_body and opened.sealed
    tampered = message.body[:-1] + bytes([message.body[-1] ^ 1])
    with pytest.raises(signing.SignatureError):
        verify(message.headers, body=tampered, me=B)


def test_a_sealed_answer_opens_for_its_requester():
    headers, wire = signing.sign_response(secret=SECRET, node="kws-b", status=200,
                                          request_nonce="n" * 32, body=b'{"pw": "s3cr3t"}',
                                          responder=B, requester=A, seal=True, now=1000.0)  # fmt: skip
    assert b"s3cr3t" not in wire
    assert signing.verify_response(secret=SECRET, status=200, request_nonce="n" * 32, body=wire,
                                   headers=headers, me=A, now=1000.0) == b'{"pw": "s3cr3t"}'  # fmt: skip


def test_keys_are_derived_per_purpose_and_direction_never_the_secret_itself():
    keys = {signing.derive_key(SECRET, p, s, r) for p in ("request", "response")
            for s, r in ((A, B), (B, A))}  # fmt: skip
    assert len(keys) == 4 and SECRET.encode() not in keys
