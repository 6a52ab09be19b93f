"""The error file: the admin's own rows plus 原行号 and 错误原因 columns, in their format.

They fix the rows in place and upload the file again, so cells keep their
original values under the supplier's own headers; the two added columns are
ignored when the file comes back (mapping.REPORT_HEADERS). Text that a spreadsheet would run as a formula is
neutralized (CSV injection): the file goes back into Excel.
"""
import csv
import re
from datetime import date, datetime


from kamen.services.importing.errors import BadCell

REASON_HEADER = "错误原因"
LINE_HEADER = "原行号"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def write_error_report(target, kind, headers, rows, *, delimiter=",", encoding="utf-8-sig"):
    """Write ``rows`` of (cells, line in the original file, reason) under ``headers``
    to the path ``target``.

    ``kind`` is "csv" or "xlsx", the format the admin uploaded.
    """
    width = len(headers)
    header = [neutralize(str(h)) for h in headers] + [LINE_HEADER, REASON_HEADER]
    if kind == "csv":
        with open(target, "w", encoding=encoding, errors="replace", newline="") as f:
            writer = csv.writer(f, delimiter=delimiter)
            writer.writerow(header)
            for cells, line, reason in rows:
                writer.writerow([_csv_cell(c) for c in _fit(cells, width)] + [line, neutralize(reason)])
    elif kind == "xlsx":
        from openpyxl import Workbook  # here: only an xlsx error file needs openpyxl

        book = Workbook(write_only=True)
        sheet = book.create_sheet("错误行")
        sheet.append(header)
        for cells, line, reason in rows:
            sheet.append([_xlsx_cell(c) for c in _fit(cells, width)] + [line, neutralize(reason)])
        book.save(target)
    else:
        raise ValueError(f"unknown report kind {kind!r}")


def _fit(cells, width):
    """The row's cells under its headers: short rows padded so 原行号 and 错误原因 line up."""
    cells = list(cells)
    while len(cells) > width and cells[-1] in (None, ""):
        cells.pop()
    return cells + [None] * (width - len(cells))


def neutralize(text):
    """Prefix text a spreadsheet would evaluate with an apostrophe; plain numbers like -5 stay."""
    if text and text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _xlsx_cell(value):
    if isinstance(value, str):
        return neutralize(value)
    if isinstance(value, BadCell):
        return None
    return value


def _csv_cell(value):
    if isinstance(value, str):
        return neutralize(value)
    if isinstance(value, BadCell) or value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
