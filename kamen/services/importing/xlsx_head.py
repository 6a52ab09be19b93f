"""The first rows of an xlsx sheet, parsed only as far as they are taken.

Finding the header of a 100,000-row price list needs its first few rows;
calamine loads a whole sheet (about a second for 100k rows), and openpyxl's
read-only mode reads every shared string first. Here the sheet's XML is
parsed as a stream and stopped when the caller stops, shared strings are
read up to the highest one asked for, and cell styles say which numbers
are dates. Cells come back as the full read (readers.Spreadsheet.rows)
gives them: text, float, bool, date / datetime / time / timedelta, "" for
an empty cell, BadCell for an error or a formula without a cached value;
columns counted from column A.

The full read sizes the whole sheet before calamine loads it; this reader
only checks the sheet's stated dimension and the rows it parses.
"""
import re
import zipfile
import zlib
from datetime import date, datetime
from xml.etree import ElementTree

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_datetime, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from kamen.services.importing.errors import BadCell, ImportFileError

_REF = re.compile(r"([A-Z]{1,3})(\d+)")
_DIMENSION = re.compile(r"[A-Z]{1,3}\d+:([A-Z]{1,3})(\d+)")
_RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def head_rows(path, sheet_name, limits):
    """Yield the sheet's rows from row 1 (see the module's docstring)."""
    from kamen.services.importing import readers

    try:
        with zipfile.ZipFile(path) as zf:
            member = readers.sheet_member(zf, sheet_name)
            values = _CellValues(zf)
            with zf.open(member) as xml:
                yield from _rows(xml, values, limits)
    except ImportFileError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ElementTree.ParseError, EOFError, zlib.error, ValueError,
            IndexError, OverflowError) as exc:
        raise ImportFileError(readers.CORRUPT) from exc


def _rows(xml, values, limits):
    from kamen.services.importing import readers

    expected = 0  # the 0-based index of the next row to yield
    for _, element in ElementTree.iterparse(xml, events=("end",)):
        tag = _local(element.tag)
        if tag == "dimension":
            stated = _DIMENSION.fullmatch(element.get("ref") or "")
            if stated:
                readers.check_extent(limits, int(stated.group(2)), _column(stated.group(1)) + 1)
            continue
        if tag != "row":
            continue
        ref = element.get("r")
        index = int(ref) - 1 if ref else expected
        while expected < index:  # rows the sheet leaves out are empty rows
            yield []
            expected += 1
        yield _cells(element, values, limits)
        expected = index + 1
        element.clear()


def _cells(row, values, limits):
    from kamen.services.importing import readers

    found, position = {}, 0
    for cell in row:
        if _local(cell.tag) != "c":
            continue
        ref = cell.get("r")
        match = _REF.fullmatch(ref) if ref else None
        column = _column(match.group(1)) if match else position
        if column >= limits.max_columns:
            readers.check_extent(limits, 1, column + 1)
        found[column] = values.of(cell)
        position = column + 1
    out = [""] * (max(found) + 1) if found else []
    for column, value in found.items():
        out[column] = value
    return out


def _column(letters):
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number - 1


def _local(tag):
    return tag.rpartition("}")[2]


class _CellValues:
    """A cell element's value, as calamine reads it."""

    def __init__(self, zf):
        parts = _workbook_parts(zf)
        self._zf, self._strings_part, self._strings, self._sst = zf, parts.get("sharedStrings"), [], None
        self._kinds = _date_styles(zf, parts.get("styles")) if parts.get("styles") in zf.namelist() else {}
        workbook = zf.read("xl/workbook.xml")
        self._epoch = CALENDAR_MAC_1904 if re.search(rb'date1904="(1|true)"', workbook) else CALENDAR_WINDOWS_1900

    def of(self, cell):
        from kamen.services.importing import readers

        kind = cell.get("t", "n")
        value = formula = None
        for child in cell:
            tag = _local(child.tag)
            if tag == "v":
                value = child.text or ""
            elif tag == "f":
                formula = child
            elif tag == "is":
                return _text_of(child)
        if formula is not None and not (value or "").strip() and not (kind == "str" and value is not None):
            return BadCell(readers.NO_CACHED_VALUE)  # Excel writes an empty text result as t="str" <v></v>
        if kind == "e":
            return BadCell(f"单元格是错误值 {value}，请修正公式或填写数值")
        if value is None:
            return ""
        if kind == "s":
            return self._string(int(value))
        if kind == "str":
            return value
        if kind == "b":
            return value.strip() not in ("", "0")
        if kind == "d":
            return datetime.fromisoformat(value.strip())
        # A number cell is a float, as the full read (calamine) gives it: validation turns
        # prices into Decimal from its shortest text, never by float arithmetic.
        return self._number(float(value), self._kinds.get(int(cell.get("s") or 0)))

    def _number(self, number, kind):
        if kind is None:
            return number
        if kind == "duration":
            return from_excel(number, self._epoch, timedelta=True)
        found = from_excel(number, self._epoch)
        if kind == "date" and isinstance(found, datetime):
            return found.date()
        if kind == "time" and isinstance(found, (datetime, date)):
            return found.time() if isinstance(found, datetime) else found
        return found

    def _string(self, index):
        while len(self._strings) <= index:
            if self._sst is None:
                if self._strings_part is None:
                    raise IndexError(index)
                self._sst = _shared_strings(self._zf.open(self._strings_part))
            self._strings.append(next(self._sst))
        return self._strings[index]


def _shared_strings(stream):
    """Each shared string in order, read as far as they are asked for."""
    with stream:
        for _, element in ElementTree.iterparse(stream, events=("end",)):
            if _local(element.tag) == "si":
                yield _text_of(element)
                element.clear()


def _text_of(element):
    """A string item's text: its <t>, or its rich-text runs joined; phonetic hints left out."""
    parts = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return "".join(parts)


def _workbook_parts(zf):
    """Where the workbook keeps its shared strings and styles ({kind: zip member})."""
    parts = {"sharedStrings": "xl/sharedStrings.xml", "styles": "xl/styles.xml"}
    try:
        relations = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    except KeyError:
        return parts
    for relation in relations:
        kind = (relation.get("Type") or "").removeprefix(_RELATIONS)
        target = relation.get("Target") or ""
        if kind in parts and target:
            parts[kind] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return parts


def _date_styles(zf, member):
    """{cell style index: "date" | "datetime" | "time" | "duration"} for the styles whose
    number format shows a date or a time."""
    root = ElementTree.fromstring(zf.read(member))
    formats = dict(BUILTIN_FORMATS)
    kinds = {}
    for element in root:
        if _local(element.tag) == "numFmts":
            formats.update({int(f.get("numFmtId")): f.get("formatCode") or "" for f in element})
        elif _local(element.tag) == "cellXfs":
            for index, xf in enumerate(element):
                fmt = formats.get(int(xf.get("numFmtId") or 0))
                if not fmt:
                    continue
                kind = "duration" if is_timedelta_format(fmt) else is_datetime(fmt)
                if kind:
                    kinds[index] = kind
    return kinds
