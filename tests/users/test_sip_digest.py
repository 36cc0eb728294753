"""Digest authentication (users/sip/digest.py) against the RFCs' own examples."""

import hashlib

import pytest

from users.sip.digest import authorization, digest_response
from users.sip.message import DigestChallenge, UnsupportedChallenge, parse_digest_challenge

# RFC 2617 section 3.5.
RFC2617 = {
    "username": "Mufasa",
    "password": "Circle Of Life",
    "realm": "testrealm@host.com",
    "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    "method": "GET",
    "uri": "/dir/index.html",
}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_rfc2617_example_with_qop_auth():
    response = digest_response(**RFC2617, qop="auth", nc=1, cnonce="0a4f113b")
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_example_without_qop():
    # RFC 2069 section 2.4 (as corrected by its errata): password "CircleOfLife".
    params = dict(RFC2617, password="CircleOfLife")
    assert digest_response(**params) == "1949323746fe6a43ef61f9606e7febea"


def test_md5_sess_hashes_the_nonces_into_ha1():
    ha1 = md5(f"{md5('Mufasa:testrealm@host.com:Circle Of Life')}:{RFC2617['nonce']}:0a4f113b")
    ha2 = md5("GET:/dir/index.html")
    expected = md5(f"{ha1}:{RFC2617['nonce']}:00000001:0a4f113b:auth:{ha2}")
    response = digest_response(**RFC2617, algorithm="MD5-sess", qop="auth", nc=1, cnonce="0a4f113b")
    assert response == expected


def test_auth_int_hashes_the_body():
    ha1 = md5("Mufasa:testrealm@host.com:Circle Of Life")
    ha2 = md5(f"GET:/dir/index.html:{md5('')}")
    expected = md5(f"{ha1}:{RFC2617['nonce']}:00000002:c:auth-int:{ha2}")
    assert digest_response(**RFC2617, qop="auth-int", nc=2, cnonce="c") == expected


# RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
RFC7616 = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "method": "GET",
    "uri": "/dir/index.html",
    "qop": "auth",
    "nc": 1,
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm, response):
    assert digest_response(**RFC7616, algorithm=algorithm) == response


def test_sha_512_256_is_sha_512_truncated_as_rfc_8760_says():
    def h(text: str) -> str:
        return hashlib.new("sha512_256", text.encode()).hexdigest()

    ha1 = h("Mufasa:http-auth@example.org:Circle of Life")
    ha2 = h("GET:/dir/index.html")
    expected = h(f"{ha1}:{RFC7616['nonce']}:00000001:{RFC7616['cnonce']}:auth:{ha2}")
    assert digest_response(**RFC7616, algorithm="SHA-512-256") == expected
    assert len(expected) == 64 and h("") != hashlib.sha512(b"").hexdigest()[:64]


def test_an_unsupported_algorithm_is_refused():
    with pytest.raises(UnsupportedChallenge, match="SHA-1"):
        digest_response(**RFC2617, algorithm="SHA-1")


def test_the_authorization_header_answers_the_rfc2617_challenge():
    challenge = parse_digest_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge, username="Mufasa", password="Circle Of Life", method="GET",
        uri="/dir/index.html", nc=1, cnonce="0a4f113b",
    )  # fmt: skip
    assert value == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001, cnonce="0a4f113b"'
    )


def test_without_qop_the_header_has_no_nc_nor_cnonce():
    challenge = DigestChallenge(realm="r", nonce="n")
    value = authorization(challenge, username="u", password="p", method="REGISTER", uri="sip:r")
    assert "qop" not in value and "nc=" not in value and "cnonce" not in value
    expected = digest_response(
        username="u", password="p", realm="r", nonce="n", method="REGISTER", uri="sip:r"
    )
    assert f'response="{expected}"' in value


def test_nonce_count_is_eight_hex_digits_and_quotes_are_escaped():
    challenge = DigestChallenge(realm='say "hi"', nonce="n", qop=("auth",))
    value = authorization(
        challenge, username='a"b', password="p", method="REGISTER", uri="sip:r", nc=255
    )
    assert "nc=000000ff" in value
    assert 'username="a\\"b"' in value and 'realm="say \\"hi\\""' in value
    # A fresh client nonce each time when none is given.
    assert authorization(challenge, username="u", password="p", method="R", uri="s") != (
        authorization(challenge, username="u", password="p", method="R", uri="s")
    )


def test_a_challenge_offering_only_auth_conf_is_refused():
    challenge = DigestChallenge(realm="r", nonce="n", qop=("auth-conf",))
    with pytest.raises(UnsupportedChallenge, match="qop"):
        authorization(challenge, username="u", password="p", method="REGISTER", uri="sip:r")
