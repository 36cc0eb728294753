"""CSV import and export of the Users list.

Columns: extension, display_name, ipei, access_code, sip_username,
sip_password, subscription. An import creates new users and updates existing
ones (matched by extension). It is all or nothing: every row is checked, and
if any row is refused nothing is imported and the report lists each refused
row with its line number and reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from users import services
from users.models import DectUser

COLUMNS = ["extension", "display_name", "ipei", "access_code", "sip_username", "sip_password",
           "subscription"]  # fmt: skip
REQUIRED = {"extension"}
MAX_ROWS = 20_000


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


class ImportRefused(Exception):
    """The whole file was refused; ``report.rejected`` says which rows and why."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        super().__init__(f"{len(report.rejected)} rows refused")


def dect_users_export(users: Iterable[DectUser], *, include_passwords: bool) -> str:
    out = io.StringIO()
    columns = COLUMNS if include_passwords else [c for c in COLUMNS if c != "sip_password"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for user in users:
        writer.writerow({c: getattr(user, c) or "" for c in columns})
    return out.getvalue()


def _message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(m.message % (m.params or {}) for m in v)}"
                         for k, v in exc.error_dict.items())  # fmt: skip
    return " ".join(exc.messages)


def _rows(reader: csv.DictReader, report: ImportReport) -> Iterator[tuple[int, dict]]:
    """The rows with the line each starts on. A row whose values span lines (a quote
    left open swallows the lines after it) or that the reader cannot parse is rejected
    with its line numbers, and nothing after an unreadable row is read."""
    while True:
        last = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader stops on the line the bad row starts on (or just before blank lines).
            start = last + 1
            reason = (
                f"a quote opened on line {start} is never closed"
                if "end of data" in str(exc)
                else f"malformed CSV: {exc}"
            )
            report.rejected.append((start, reason))
            return
        end = reader.line_num
        breaks = sum(v.count("\n") for v in row.values() if isinstance(v, str))
        breaks += sum(v.count("\n") for v in row.get(None) or [])  # type: ignore[call-overload]
        if breaks:
            start = end - breaks
            report.rejected.append(
                (start, f"a quote opened on line {start} runs to line {end}: close it")
            )
            continue
        yield end, row


def dect_users_import(*, data: bytes, actor: str) -> ImportReport:
    """Import a CSV file all or nothing; raise ImportRefused with the report on any bad row."""
    report = ImportReport()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.rejected.append((0, "the file is not UTF-8 text"))
        raise ImportRefused(report) from None
    # strict: a stray quote inside a value is an error, not a value read up to the next quote.
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        report.rejected.append((1, f"malformed CSV header: {exc}"))
        raise ImportRefused(report) from None
    unknown = [c for c in header if c not in COLUMNS]
    missing = REQUIRED - set(header)
    if unknown or missing or not header:
        problems = []
        if missing or not header:
            problems.append(f"missing column {', '.join(sorted(missing or REQUIRED))}")
        if unknown:
            problems.append(f"unknown column {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
        report.rejected.append((1, "; ".join(problems)))
        raise ImportRefused(report)
    existing = {u.extension: u for u in DectUser.objects.all()}
    seen: dict[str, int] = {}
    try:
        with transaction.atomic():
            for line, row in _rows(reader, report):
                if line > MAX_ROWS + 1:
                    report.rejected.append((line, f"more than {MAX_ROWS} rows"))
                    break
                if None in row:
                    report.rejected.append((line, "more values than columns"))
                    continue
                if None in row.values():
                    report.rejected.append((line, "fewer values than columns"))
                    continue
                fields = {k: (v or "").strip() for k, v in row.items() if k in COLUMNS}
                extension = fields.get("extension", "")
                if extension in seen:
                    report.rejected.append(
                        (line, f"extension {extension} is also on line {seen[extension]}")
                    )
                    continue
                seen[extension] = line
                if not fields.get("subscription"):
                    fields.pop("subscription", None)
                try:
                    with transaction.atomic():
                        user = existing.get(extension)
                        if user is None:
                            services.dect_user_create(actor=actor, **fields)
                            report.created += 1
                        else:
                            if not fields.get("sip_password"):
                                fields.pop("sip_password", None)
                            services.dect_user_update(user=user, actor=actor, **fields)
                            report.updated += 1
                except ValidationError as exc:
                    report.rejected.append((line, _message(exc)))
            if report.rejected:
                raise ImportRefused(report)
    except ImportRefused:
        report.created = report.updated = 0
        raise
    return report
