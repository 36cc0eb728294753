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
    headers = signing.sign_response(secret=SECRET, node="kws-b", status=200, request_nonce="n" * 32,
                                    body=b"{}", now=1000.0)  # fmt: skip
    signing.verify_response(secret=SECRET, status=200, request_nonce="n" * 32, body=b"{}",
                            headers=headers, now=1000.0)  # fmt: skip
    for change in ({"request_nonce": "m" * 32}, {"status": 500}, {"body": b"[]"}):
        args = {"secret": SECRET, "status": 200, "request_nonce": "n" * 32, "body": b"{}",
                "headers": headers, "now": 1000.0, **change}  # fmt: skip
        with pytest.raises(signing.SignatureError):
            signing.verify_response(**args)
