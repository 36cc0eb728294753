"""A CSV import with a malformed row names the line and imports nothing."""

import pytest

from users import csv_io
from users.models import DectUser

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("licensed")]

HEADER = "extension,display_name,subscription\n"


def refused(text: str) -> list[tuple[int, str]]:
    with pytest.raises(csv_io.ImportRefused) as refusal:
        csv_io.dect_users_import(data=text.encode(), actor="test")
    assert not DectUser.objects.exists()
    return refusal.value.report.rejected


def test_an_unterminated_quote_is_an_error_with_its_line_and_nothing_is_imported():
    text = HEADER + '3011,"unterminated quote,subscribed\n3012,Next row,subscribed\n3013,x,none\n'
    rejected = refused(text)
    assert rejected[0][0] == 2 and "quote" in rejected[0][1]


def test_a_stray_quote_inside_a_value_is_an_error():
    rejected = refused(HEADER + '3011,Anna "the" Berg,subscribed\n3012,"Bo" Holm,none\n')
    assert any("malformed CSV" in message or "quote" in message for _, message in rejected)


@pytest.mark.parametrize(
    ("row", "message"),
    [("3011,Anna Berg\n", "fewer values than columns"),
     ("3011,Anna Berg,subscribed,extra\n", "more values than columns")],
)  # fmt: skip
def test_a_row_with_the_wrong_number_of_values_is_an_error_with_its_line(row, message):
    rejected = refused(HEADER + "3010,Fine,none\n" + row)
    assert rejected == [(3, message)]


def test_bad_encoding_is_an_error():
    with pytest.raises(csv_io.ImportRefused) as refusal:
        csv_io.dect_users_import(data=b"extension\n\xff\xfe3011\n", actor="test")
    assert "not UTF-8" in refusal.value.report.rejected[0][1]


def test_blank_lines_and_quoted_commas_are_fine():
    text = HEADER + '3011,"Berg, Anna",subscribed\n\n3012,Holm,none\n'
    report = csv_io.dect_users_import(data=text.encode(), actor="test")
    assert report.created == 2
    assert DectUser.objects.get(extension="3011").display_name == "Berg, Anna"
