"""License codes: issue, check, and refuse anything that is not a genuine code."""

from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization

from licensing import codes, products
from licensing.codes import LicenseRefused
from licensing.products import BACKUP_REDUNDANCY, MASTER_REDUNDANCY, USER_LICENSE
from tests.licensing.factories import OWN_ARI, Vendor

VENDOR = Vendor()
KEY = VENDOR.private_key.public_key()


def refusal(text, key=KEY) -> LicenseRefused:
    with pytest.raises(LicenseRefused) as refused:
        codes.code_verify(text, key)
    return refused.value


def test_a_genuine_code_says_what_it_licenses():
    text = VENDOR.issue(product=MASTER_REDUNDANCY, users=500, features=("messaging", "alarm"),
                        serial=0xDEADBEEF, issued=date(2025, 3, 1))  # fmt: skip
    code = codes.code_verify(text, KEY)
    assert (code.ari, code.product, code.users) == (OWN_ARI, MASTER_REDUNDANCY, 500)
    assert code.features == ("alarm", "messaging")
    assert (code.issued, code.serial_text) == (date(2025, 3, 1), "DEADBEEF")
    assert code.text == text


def test_a_code_is_short_text_with_a_prefix_and_groups_of_eight():
    text = VENDOR.issue()
    prefix, *groups = text.split("-")
    assert prefix == "KWSL"
    assert [len(g) for g in groups] == [8] * 17
    assert len(text) == 157


def test_letter_case_spaces_and_line_breaks_do_not_matter():
    text = VENDOR.issue()
    wrapped = text[:60].lower() + "\n  " + text[60:].replace("-", " ")
    assert codes.code_verify(wrapped, KEY).text == text


def test_a_code_with_any_one_character_changed_is_refused():
    text = VENDOR.issue(users=100)
    causes = set()
    for position, char in enumerate(text):
        for replacement in ("A", "7", "-"):
            if replacement == char:
                continue
            altered = text[:position] + replacement + text[position + 1 :]
            refused = refusal(altered)
            causes.add(refused.cause)
            assert refused.cause in ("garbage", "forged"), (position, replacement)
    assert causes == {"garbage", "forged"}


def test_an_altered_code_is_refused_as_not_genuine():
    text = VENDOR.issue(users=100)
    position = text.index("-", 10) + 3
    altered = text[:position] + ("B" if text[position] != "B" else "C") + text[position + 1 :]
    refused = refusal(altered)
    assert refused.cause == "forged"
    assert str(refused) == (
        "this code is not genuine: its signature does not match, so it was altered, mistyped or "
        "not issued by the vendor (copy it again from the vendor's message)"
    )


def test_a_code_of_another_vendor_key_is_forged():
    assert refusal(Vendor().issue()).cause == "forged"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no license code was entered"),
        ("   \n ", "no license code was entered"),
        ("hello world", "this is not a license code: a KWS license code starts with KWSL-"),
        ("KWSL-ABCDEFGH", "it has 8 characters after KWSL-, a license code has 136"),
        (
            "KWSL-ABC0EFGH",
            "it contains '0', which license codes never use (did you mean the letter O?)",
        ),
        ("KWSL-ABC1EFGH", "(did you mean the letter I?)"),
        ("KWSL-AB!", "it contains '!', which license codes never use"),
    ],
)
def test_garbage_is_refused_saying_what_is_wrong(text, message):
    refused = refusal(text)
    assert refused.cause == "garbage"
    assert message in str(refused)


def test_a_cut_off_code_is_garbage():
    text = VENDOR.issue()
    assert "copy the whole code" in str(refusal(text[:-9]))


def test_a_signed_code_of_a_newer_format_is_refused_as_such():
    payload = codes._PAYLOAD.pack(2, 0x10A3F2C5, MASTER_REDUNDANCY, 20000, 1, 0, 0)
    raw = payload + VENDOR.private_key.sign(codes._CONTEXT + payload)
    refused = refusal(codes._code_text(raw))
    assert refused.cause == "format"
    assert "format version 2" in str(refused)


def test_a_signed_code_for_an_unknown_product_is_refused_as_such():
    payload = codes._PAYLOAD.pack(1, 0x10A3F2C5, 14079999, 20000, 1, 0, 0)
    raw = payload + VENDOR.private_key.sign(codes._CONTEXT + payload)
    refused = refusal(codes._code_text(raw))
    assert refused.cause == "unknown_product"
    assert "product 14079999 is not known" in str(refused)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"product": 123}, "product 123 is not known; known products: 14075250"),
        ({"product": USER_LICENSE}, "product 14075200 (users) needs a user count (--users N)"),
        ({"product": products.FEATURE_LICENSE}, "needs at least one feature"),
        ({"features": ("teleport",)}, "feature 'teleport' is not known; known features: alarm"),
        ({"users": 70000}, "a user count is 0 to 65535, not 70000"),
    ],
)
def test_the_vendor_cannot_issue_what_no_firmware_reads(kwargs, message):
    with pytest.raises(ValueError) as refused:
        VENDOR.issue(**kwargs)
    assert message in str(refused.value)


def test_the_vendor_cannot_issue_for_a_bad_ari():
    with pytest.raises(ValueError, match="is not a class B ARI"):
        VENDOR.issue(ari="20A3F2C5")


def test_the_public_key_is_read_from_base64_or_pem():
    pem = KEY.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    text = VENDOR.issue(product=BACKUP_REDUNDANCY)
    assert codes.code_verify(text, codes.public_key_load(pem)).product == BACKUP_REDUNDANCY
    assert codes.code_verify(text, codes.public_key_load(VENDOR.public_text)).ari == OWN_ARI


@pytest.mark.parametrize(
    "setting, cause, message",
    [
        ("", "no_key", "no vendor public key is configured (KWS_LICENSE_PUBLIC_KEY"),
        ("not base64!", "bad_key", "is not an Ed25519 public key"),
        ("AAAA", "bad_key", "is not an Ed25519 public key"),
    ],
)
def test_a_missing_or_broken_public_key_is_named(setting, cause, message):
    with pytest.raises(LicenseRefused) as refused:
        codes.public_key_load(setting)
    assert refused.value.cause == cause
    assert message in str(refused.value)


def test_a_new_key_pair_issues_codes_its_public_key_checks():
    pem, public = codes.keypair_generate()
    private = codes.private_key_load(pem)
    text = codes.code_issue(private_key=private, ari=OWN_ARI, product=MASTER_REDUNDANCY,
                            issued=date(2025, 1, 1), serial=7)  # fmt: skip
    assert codes.code_verify(text, codes.public_key_load(public)).serial == 7
