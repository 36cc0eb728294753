import pytest

from users import ipei


def test_check_digit_is_the_weighted_sum_modulo_11():
    digits = "031800412345"
    total = sum(int(d) * i for i, d in enumerate(digits, start=1))
    assert ipei.check_digit(digits) == str(total % 11)


def test_a_remainder_of_ten_is_written_as_a_star():
    # 000000000010: 1*11 + 0*12 = 11 -> 0; 000000000100: 1*10 = 10 -> '*'
    assert ipei.check_digit("000000000100") == "*"


def test_normalize_accepts_the_written_form_with_spaces():
    value = ipei.make(3180, 412345)
    assert ipei.normalize(ipei.display(value)) == value


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("1234", "5-digit EMC, 7-digit PSN and a check digit"),
        ("03180 0412345 x", "5-digit EMC"),
    ],
)
def test_normalize_refuses_malformed_values(text, rule):
    with pytest.raises(ValueError, match=rule):
        ipei.normalize(text)


def test_normalize_refuses_a_wrong_check_digit():
    value = ipei.make(3180, 412345)
    wrong = value[:-1] + ("1" if value[-1] != "1" else "2")
    with pytest.raises(ValueError, match=f"expected {value[-1]}"):
        ipei.normalize(wrong)
