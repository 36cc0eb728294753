"""The CSV phonebook's file format: ``name,number`` rows, checked all at once (pure).

An optional first row ``name,number`` is a header. Every problem is reported with its
row (the line of the file, from 1) and column (1 name, 2 number), so an administrator
can fix the file in one go; a file with any problem is refused whole.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 20_000
MAX_NAME = 100
MAX_NUMBER = 32
MAX_PROBLEMS = 50  # listed; the count says how many more
COLUMNS = ("name", "number")

_NUMBER = re.compile(r"^\+?[0-9][0-9 ()*#./-]*$")


@dataclass(frozen=True)
class Problem:
    row: int
    column: int
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        name = COLUMNS[self.column - 1] if 1 <= self.column <= len(COLUMNS) else ""
        return f"{where}{f' ({name})' if name else ''}: {self.message}"


class CsvRefused(ValueError):
    """The file was refused; ``problems`` says where and why (nothing was stored)."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        self.total = total if total is not None else len(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def csv_parse(data: bytes) -> list[tuple[str, str]]:
    """The (name, number) rows of a CSV phonebook file; CsvRefused naming every problem."""
    if len(data) > MAX_BYTES:
        raise CsvRefused([Problem(0, 0, f"the file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvRefused([Problem(line, 0, "not UTF-8 text (save the file as UTF-8)")]) from None
    problems: list[Problem] = []
    rows: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for values in reader:
            row = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue  # an empty line
            if not rows and not problems and [v.strip().lower() for v in values] == list(COLUMNS):
                continue  # the header
            if len(values) != 2:
                column = min(len(values) + 1, 3)
                plural = "s" if len(values) != 1 else ""
                message = f"{len(values)} value{plural}; a row is name,number"
                problems.append(Problem(row, column, message))
                continue
            name, number = values[0].strip(), values[1].strip()
            if not name:
                problems.append(Problem(row, 1, "the name is empty"))
            elif len(name) > MAX_NAME:
                problems.append(Problem(row, 1, f"longer than {MAX_NAME} characters"))
            if not number:
                problems.append(Problem(row, 2, "the number is empty"))
            elif len(number) > MAX_NUMBER or not _NUMBER.match(number):
                problems.append(Problem(row, 2, f"{number[:40]!r} is not a phone number "
                                                "(digits, spaces, + - ( ) * #)"))  # fmt: skip
            rows.append((name, number))
            if len(rows) > MAX_ROWS:
                problems.append(Problem(row, 0, f"more than {MAX_ROWS} entries"))
                break
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, 0, f"not valid CSV: {exc}"))
    if problems:
        raise CsvRefused(problems)
    if not rows:
        raise CsvRefused([Problem(1, 0, "the file has no entries (rows of name,number)")])
    return rows
