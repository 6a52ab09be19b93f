"""Builders for the messy files the import tests read; no app, no database."""
import csv

import pytest
from openpyxl import Workbook

from kamen.services.importing.readers import ReadLimits, open_spreadsheet

STANDARD_HEADER = ["商品编码", "商品名称", "供货价", "售价", "库存"]


@pytest.fixture
def make_xlsx(tmp_path):
    """make_xlsx(rows) or make_xlsx(sheets={"name": rows}, merged={"name": ["A1:E1"]}) -> path."""

    def make(rows=None, *, sheets=None, merged=None, hidden=(), name="book.xlsx"):
        book = Workbook()
        book.remove(book.active)
        for title, sheet_rows in (sheets or {"商品": rows}).items():
            sheet = book.create_sheet(title)
            for row in sheet_rows:
                sheet.append(row)
            for cells in (merged or {}).get(title, ()):
                sheet.merge_cells(cells)
            if title in hidden:
                sheet.sheet_state = "hidden"
        path = tmp_path / name
        book.save(path)
        return path

    return make


@pytest.fixture
def make_csv(tmp_path):
    def make(rows, *, encoding="utf-8", delimiter=",", name="file.csv"):
        path = tmp_path / name
        with open(path, "w", encoding=encoding, newline="") as f:
            csv.writer(f, delimiter=delimiter).writerows(rows)
        return path

    return make


@pytest.fixture
def read_rows():
    """All rows of a file's (first) sheet, for small test files."""

    def read(path, sheet=None, **limits):
        with open_spreadsheet(path, ReadLimits(**limits)) as book:
            return list(book.rows(sheet))

    return read
