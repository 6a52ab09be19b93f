"""Open an uploaded spreadsheet (csv, xlsx, xls) and stream its rows.

The type comes from the file's bytes, never its extension: admins rename
files, and systems export HTML tables named ".xls". Every way a file can be
unusable raises one ImportFileError with a message the admin can act on.

The Excel libraries (python-calamine, olefile) are imported when a workbook
is opened: only the processes that read uploads pay their memory.
"""
import codecs
import collections
import csv
import io
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from xml.etree import ElementTree

from kamen.services.importing.errors import BadCell, ImportFileError

MB = 1024 * 1024
SAMPLE_BYTES = 64 * 1024
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An encrypted xlsx is an OLE container holding this stream.
ENCRYPTED_MARKER = "EncryptedPackage".encode("utf-16-le")
DELIMITERS = (",", "\t", ";")

NOT_A_SHEET = "无法识别的文件类型：不是 Excel（.xlsx / .xls）或 CSV 文件。如果只是改了扩展名，请用 Excel 打开后另存为 .xlsx 再上传"
FAKE_EXCEL = "这是网页格式的“假 Excel”文件（常见于系统导出的 .xls），请用 Excel 打开后另存为 .xlsx 再上传"
CORRUPT = "文件已损坏或不是有效的 Excel 文件，无法读取。请用 Excel 打开后重新保存再上传"
ENCRYPTED = "文件设置了打开密码，请在 Excel 中取消密码后再上传"
NO_CACHED_VALUE = "公式没有计算结果（文件不是用 Excel 保存的），请用 Excel 打开并保存后再上传"


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int = 50 * MB
    max_rows: int = 200_000
    # Uncompressed size of all xlsx parts, read from the zip directory before unpacking.
    max_unpacked_bytes: int = 500 * MB
    max_zip_entries: int = 10_000
    # calamine holds a sheet as a dense grid (about 32 bytes a cell, empty or
    # not), so width and rows x width are checked before it loads anything.
    max_columns: int = 256
    max_cells: int = 6_000_000
    # Shared strings are held whole in memory: bounded on their own.
    max_shared_strings_bytes: int = 64 * MB
    # One CSV line (or one cell spanning lines) is read whole.
    max_line_bytes: int = 1 * MB


def open_spreadsheet(path, limits=ReadLimits()):
    """Check the file and return a Spreadsheet; raises ImportFileError."""
    size = os.path.getsize(path)
    if size == 0:
        raise ImportFileError("文件是空的（0 字节），请检查是否选错了文件")
    if size > limits.max_bytes:
        raise ImportFileError(
            f"文件太大（{size / MB:.1f} MB），上限 {limits.max_bytes / MB:.0f} MB，请拆分后分批导入"
        )
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    if head.startswith(ZIP_MAGIC):
        _check_zip(path, limits)
        return Spreadsheet(path, "xlsx", limits)
    if head.startswith(OLE_MAGIC):
        _check_xls(path, limits)
        return Spreadsheet(path, "xls", limits)
    encoding, delimiter = _sniff_text(head, complete=size <= SAMPLE_BYTES)
    return Spreadsheet(path, "csv", limits, encoding=encoding, delimiter=delimiter)


class Spreadsheet:
    """An opened file. ``sheet_names`` lists visible worksheets (empty for csv)."""

    def __init__(self, path, kind, limits, *, encoding=None, delimiter=None):
        self.path = path
        self.kind = kind
        self.limits = limits
        self.encoding = encoding
        self.delimiter = delimiter
        self.sheet_names = []
        self._book = None
        if kind != "csv":
            import python_calamine

            self._book = _calamine(lambda: python_calamine.CalamineWorkbook.from_path(path), path)
            self.sheet_names = [
                m.name
                for m in self._book.sheets_metadata
                if m.typ == python_calamine.SheetTypeEnum.WorkSheet
                and m.visible == python_calamine.SheetVisibleEnum.Visible
            ]
            if not self.sheet_names:
                self.close()
                raise ImportFileError("工作簿里没有可见的工作表")

    def rows(self, sheet=None):
        """Yield each row as a list of cell values, starting at the sheet's row 1 and column A.

        CSV cells are strings; Excel cells are str, float, bool, date/datetime,
        "" for empty, or BadCell. Rows are never all held in Python at once.
        """
        if self.kind == "csv":
            return self._csv_rows()
        return self._sheet_rows(sheet or self.sheet_names[0])

    def head(self, sheet=None):
        """The same rows as ``rows``, for a header and a few samples: an xlsx sheet is
        parsed only as far as they are taken (xlsx_head.py), so the header of a
        100,000-row price list costs milliseconds instead of a whole load."""
        if self.kind != "xlsx":
            return self.rows(sheet)
        from kamen.services.importing.xlsx_head import head_rows

        return head_rows(self.path, sheet or self.sheet_names[0], self.limits)

    def close(self):
        if self._book is not None:
            self._book.close()
            self._book = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def lines(self):
        """A CSV or text file's decoded lines (see decoded_lines)."""
        with open(self.path, "rb") as f:
            yield from decoded_lines(f, self.encoding, self.limits)

    def _csv_rows(self):
        count = 0
        try:
            for row in csv.reader(self.lines(), delimiter=self.delimiter):
                count += 1
                if count > self.limits.max_rows:
                    raise _too_many_rows(self.limits)
                if len(row) > self.limits.max_columns:
                    raise ImportFileError(
                        f"第 {count} 行有 {len(row)} 列，超过上限 {self.limits.max_columns} 列，"
                        "请检查分隔符或删除多余的列"
                    )
                yield row
        except csv.Error as exc:
            raise ImportFileError(f"CSV 格式错误（第 {count + 1} 行）：引号不配对或内容异常") from exc

    def _sheet_rows(self, name):
        if name not in self.sheet_names:
            raise ImportFileError(f"找不到工作表“{name}”")
        bad_cells = {}
        if self.kind == "xlsx":
            # Before calamine: it allocates the whole grid up to the farthest cell.
            scan = _scan_xlsx_sheet(self.path, name)
            check_extent(self.limits, scan.rows, scan.columns)
            bad_cells = scan.bad
        sheet = _calamine(lambda: self._book.get_sheet_by_name(name), self.path)
        check_extent(self.limits, sheet.height, sheet.width)
        return _rows_with_bad_cells(sheet, bad_cells)


def decoded_lines(f, encoding, limits):
    """The decoded lines of a binary text file (a CSV price list, a 卡密 file), read a
    block at a time so a row limit stops a big file early. Each line is at most
    ``limits.max_line_bytes`` long and free of NUL. Bytes are split into lines
    before decoding, so a bad byte is reported on its own line: a line-feed byte
    never occurs inside a UTF-8 or GB18030 character. UTF-16 is decoded as a stream."""
    limit = limits.max_line_bytes
    if encoding == "utf-16":
        text = io.TextIOWrapper(f, encoding=encoding, newline="")
        yield from _line_by_line(lambda: text.readline(limit // 2 + 1), encoding, limit, 0)
        return
    number, carry = 0, b""
    while True:
        block = f.read(BLOCK_BYTES)
        data = carry + block
        end = data.rfind(b"\n") + 1 if block else len(data)  # whole lines; the rest waits for the next block
        whole, carry = data[:end], data[end:]
        lines = _whole_lines(whole, encoding, limit)
        if lines is None:  # something wrong in this block: the line-by-line reading says which line and why
            lines = _line_by_line(io.BytesIO(whole).readline, encoding, limit, number)
        for line in lines:
            number += 1
            yield line
        if len(carry) > limit:
            raise _long_line(number + 1, limit)
        if not block:
            return


BLOCK_BYTES = 256 * 1024


def _whole_lines(data, encoding, limit):
    """The lines of ``data`` (whole lines), decoded with one call; None when a line is too
    long, does not decode or holds NUL."""
    if not data:
        return []
    if max(map(len, data.split(b"\n"))) >= limit:
        return None
    try:
        text = data.decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError:
        return None
    if "\0" in text:
        return None
    lines = text.split("\n")
    last = lines.pop()  # after the final line feed: the end of a file without one
    lines = [line + "\n" for line in lines]
    if not data.endswith(b"\n"):
        lines.append(last)
    if encoding == "utf-8-sig" and "\ufeff" in text:  # as each line read alone: its byte order mark dropped
        lines = [line.removeprefix("\ufeff") for line in lines]
    return lines


def _line_by_line(read, encoding, limit, number):
    """Lines from ``read()`` (bytes or text), each checked; ``number`` lines came before."""
    longest = limit // 2 if encoding == "utf-16" else limit  # two bytes a character
    while True:
        try:
            line = read()
            if not line:
                return
            number += 1
            if len(line) > longest:
                raise _long_line(number, limit)
            if not isinstance(line, str):
                line = line.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"第 {number if encoding != 'utf-16' else number + 1} 行有无法识别的文字（编码既不是 UTF-8 也不是 GBK），"
                "请在 Excel 中另存为“CSV UTF-8”后上传"
            ) from exc
        if "\0" in line:
            raise ImportFileError(f"第 {number} 行含有空字符（NUL），文件可能已损坏，请用 Excel 打开后另存为 CSV 再上传")
        yield line


def _long_line(number, limit):
    return ImportFileError(
        f"第 {number} 行超过 {limit / MB:.0f} MB，不像是正常的表格或文本（可能是换行符不对或文件已损坏），"
        "请用 Excel 打开后另存为 CSV 再上传"
    )


def _rows_with_bad_cells(sheet, bad_cells):
    # calamine yields rows from row 1 but trims leading empty columns: they are put
    # back, so a column's index is its place in the sheet (A = 0) however it is read.
    first_col = sheet.start[1] if sheet.start else 0
    padding = [""] * first_col
    for index, row in enumerate(sheet.iter_rows()):
        if first_col:
            row = padding + row
        bad = bad_cells.get(index)
        if bad:
            for col, cell in bad.items():
                if 0 <= col < len(row):
                    row[col] = cell
        yield row


def check_extent(limits, rows, columns):
    if rows > limits.max_rows:
        raise _too_many_rows(limits, rows)
    if columns > limits.max_columns:
        raise ImportFileError(
            f"表格有 {columns} 列（最远的单元格在 {column_letters(columns)} 列），超过上限 {limits.max_columns} 列。"
            "请删除右侧多余的列（含空白但有格式的单元格）后另存再上传"
        )
    if rows * columns > limits.max_cells:
        raise ImportFileError(
            f"表格范围过大（{rows} 行 × {columns} 列），超过上限 {limits.max_cells} 个单元格。"
            "请删除多余的行列，或拆分后分批导入"
        )


def column_letters(number):
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _too_many_rows(limits, count=None):
    found = f"有 {count} 行，" if count else ""
    return ImportFileError(f"表格{found}超过单次导入上限 {limits.max_rows} 行，请拆分后分批导入")


def _calamine(call, path):
    import python_calamine

    try:
        return call()
    except python_calamine.PasswordError as exc:
        raise ImportFileError(ENCRYPTED) from exc
    except python_calamine.CalamineError as exc:
        raise _unreadable(path) from exc


def _unreadable(path):
    with open(path, "rb") as f:
        encrypted = ENCRYPTED_MARKER in f.read()
    return ImportFileError(ENCRYPTED if encrypted else CORRUPT)


def _check_zip(path, limits):
    """Refuse non-Excel zips and zip bombs from the central directory alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(CORRUPT) from exc
    names = {info.filename for info in infos}
    if "xl/workbook.xml" not in names:
        if "xl/workbook.bin" in names:
            raise ImportFileError("不支持 .xlsb 格式，请在 Excel 中另存为 .xlsx 再上传")
        raise ImportFileError("这是一个压缩包或其他 Office 文档，不是 Excel 表格；请上传 .xlsx / .xls 或 CSV 文件")
    if len(infos) > limits.max_zip_entries:
        raise ImportFileError(f"文件内含 {len(infos)} 个部件，超过上限 {limits.max_zip_entries}，疑似压缩炸弹，已拒绝")
    strings = sum(info.file_size for info in infos if info.filename == "xl/sharedStrings.xml")
    if strings > limits.max_shared_strings_bytes:
        raise ImportFileError(
            f"文件中的文字部分解压后有 {strings / MB:.0f} MB，超过上限 {limits.max_shared_strings_bytes / MB:.0f} MB，"
            "疑似压缩炸弹，已拒绝"
        )
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.max_unpacked_bytes:
        raise ImportFileError(
            f"文件解压后有 {unpacked / MB:.0f} MB，超过上限 {limits.max_unpacked_bytes / MB:.0f} MB，"
            "疑似压缩炸弹，已拒绝"
        )


# BIFF records holding one cell (row, col first) and a run of cells (row, first col, …, last col).
_XLS_CELL_RECORDS = frozenset({0x0006, 0x00D6, 0x00FD, 0x0201, 0x0203, 0x0204, 0x0205, 0x027E, 0x0406})
_XLS_RUN_RECORDS = frozenset({0x00BD, 0x00BE})
_XLS_BOF, _XLS_FILEPASS = 0x0809, 0x002F
_XLS_RECORD = struct.Struct("<HH")


def _check_xls(path, limits):
    """Size every sheet from its cell records: calamine builds all the grids when it opens the file."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            name = next((n for n in ("Workbook", "Book") if ole.exists(n)), None)
            if name is None:
                return  # not a workbook (an encrypted xlsx, say): calamine names the problem
            data = ole.openstream(name).read()
    except (OSError, ValueError, IndexError, struct.error) as exc:  # olefile's errors for broken containers
        raise _unreadable(path) from exc
    sheets, rows, columns, pos, end = [], 0, 0, 0, len(data)
    while pos + 4 <= end:
        kind, size = _XLS_RECORD.unpack_from(data, pos)
        body, pos = pos + 4, pos + 4 + size
        if kind in _XLS_CELL_RECORDS and size >= 4 and pos <= end:
            row, col = _XLS_RECORD.unpack_from(data, body)
        elif kind in _XLS_RUN_RECORDS and size >= 6 and pos <= end:
            row = _XLS_RECORD.unpack_from(data, body)[0]
            col = _XLS_RECORD.unpack_from(data, pos - 4)[1]
        elif kind == _XLS_BOF:
            sheets.append((rows, columns))
            rows = columns = 0
            continue
        elif kind == _XLS_FILEPASS:
            raise ImportFileError(ENCRYPTED)
        else:
            continue
        rows, columns = max(rows, row + 1), max(columns, col + 1)
    for sheet_rows, sheet_columns in sheets + [(rows, columns)]:
        check_extent(limits, sheet_rows, sheet_columns)


def _sniff_text(head, complete):
    """Pick encoding and delimiter for a text file from its first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # Excel's "Unicode 文本"
    elif b"\0" in head:
        raise ImportFileError(NOT_A_SHEET)
    else:
        # GB18030 is a superset of GBK, which Chinese Excel uses for CSV.
        encoding = next((e for e in ("utf-8", "gb18030") if _decodes(head, e, complete)), None)
        if encoding is None:
            raise ImportFileError(NOT_A_SHEET)
    text = head.decode(encoding, errors="ignore")
    if text.lstrip("\ufeff \t\r\n").startswith("<"):
        raise ImportFileError(FAKE_EXCEL)
    lines = text.splitlines()
    if not complete:
        lines = lines[:-1]  # the sample may end mid-line
    return encoding, _sniff_delimiter(lines[:50])


def _decodes(data, encoding, complete):
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _sniff_delimiter(lines):
    """The delimiter giving the most rows with the same field count (> 1).

    Counting parsed fields, not characters, keeps quoted "1,000" in a tab
    file and a title line without delimiters from skewing the choice.
    """
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        widths = [len(r) for r in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in r)]
        if not widths:
            continue
        width, rows = collections.Counter(widths).most_common(1)[0]
        score = (rows, width) if width > 1 else (0, 0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


_CELL_REF = re.compile(rb'\br="([A-Z]+)(\d+)"')
_ROOT_PREFIX = re.compile(rb"<(\w+:)?worksheet\b")


@dataclass
class SheetScan:
    """What one pass over a sheet's XML found, before calamine loads it.

    ``rows`` and ``columns`` are the extent calamine would allocate (the
    farthest cell, by reference or by position); ``bad`` is {row: {col:
    BadCell}} (0-based) for formulas without a cached value and error cells,
    which calamine reads as "".
    """

    bad: dict
    rows: int = 0
    columns: int = 0


def _scan_xlsx_sheet(path, sheet_name):
    try:
        with zipfile.ZipFile(path) as zf:
            member = sheet_member(zf, sheet_name)
            with zf.open(member) as xml:
                return _scan_sheet_xml(xml)
    except (zipfile.BadZipFile, KeyError, OSError, ElementTree.ParseError, EOFError, zlib.error) as exc:
        raise ImportFileError(CORRUPT) from exc


def sheet_member(zf, sheet_name):
    rel_id = None
    for el in ElementTree.fromstring(zf.read("xl/workbook.xml")).iter():
        if el.tag.endswith("}sheet") and el.get("name") == sheet_name:
            rel_id = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
    for el in ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels")).iter():
        if el.get("Id") == rel_id:
            target = el.get("Target")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    raise KeyError(sheet_name)


def _scan_sheet_xml(xml):
    """Stream the sheet XML in 4 MB pieces cut at row ends: memory stays bounded."""
    scan = SheetScan({})
    buffer = xml.read(SAMPLE_BYTES)
    match = _ROOT_PREFIX.search(buffer)
    prefix = (match.group(1) or b"") if match else b""
    tags = _SheetTags(prefix)
    while True:
        chunk = xml.read(4 * MB)
        buffer += chunk
        if not chunk:
            tags.scan(buffer, scan)
            return scan
        cut = buffer.rfind(tags.row_end)
        if cut > 0:  # scan whole rows only, so no cell is split between chunks
            tags.scan(buffer[:cut], scan)
            buffer = buffer[cut:]
        elif len(buffer) > 64 * MB:  # one "row" this long is not a price list
            raise ImportFileError(CORRUPT)


class _SheetTags:
    """Byte patterns for one sheet's namespace prefix (usually none)."""

    def __init__(self, prefix):
        p = re.escape(prefix)
        self.row_end = b"</" + prefix + b"row>"
        self.cell_start = b"<" + prefix + b"c "
        # A cell or row tag whose first attribute is not its reference.
        self.unreferenced = re.compile(b"<" + p + rb'(?:c|row)(?:[>/]|\s(?!r="))')
        self.row_ref_first = b"<" + prefix + b'row r="'
        # Every writer puts r first; then these find the extent without a parse.
        self.prefix_c_ref = b"<" + p + rb'c r="'
        self.narrow_refs = re.compile(b"<" + p + rb'c r="([A-Z])\d')
        self.wide_refs = re.compile(b"<" + p + rb'c r="([A-Z]{2,})\d')
        self.row_refs = re.compile(b"<" + p + rb'row r="(\d+)"')
        self.tag = re.compile(b"<" + p + rb"(row|c)(?=[\s/>])([^>]*)")
        # A formula followed by no cached value, or an empty one, then the cell's end.
        self.uncached = re.compile(
            b"<" + p + rb"f\b[^>]*?(?:/>|>[^<]*</" + p + rb"f>)\s*"
            rb"(<" + p + rb"v\s*/>|<" + p + rb"v>\s*</" + p + rb"v>)?\s*</" + p + rb"c>"
        )
        self.error_value = re.compile(rb' t="e"[^>]*>.*?<' + p + rb"v>([^<]*)<", re.DOTALL)

    def scan(self, data, scan):
        self._extent(data, scan)
        bad = scan.bad
        for match in self.uncached.finditer(data):
            head = self._cell_head(data, match.start())
            # Excel writes an empty cached text result as t="str" with <v></v>.
            if match.group(1) and b't="str"' in head:
                continue
            self._mark(bad, head, NO_CACHED_VALUE)
        for match in self.error_value.finditer(data):
            code = match.group(1).decode(errors="replace")
            self._mark(bad, self._cell_head(data, match.start()), f"单元格是错误值 {code}，请修正公式或填写数值")

    def _extent(self, data, scan):
        if self.unreferenced.search(data):
            return self._extent_by_position(data, scan)
        numbers = self.row_refs.findall(data)
        if numbers:
            scan.rows = max(scan.rows, max(map(int, numbers)))
        # A cell can name a row beyond its <row>'s: only references at least as long as
        # the highest row so far, and not smaller in their first digit, can raise it.
        high = str(scan.rows)
        beyond = re.compile(self.prefix_c_ref + rb"[A-Z]+(\d{%d,}|[%s-9]\d{%d})\"" % (
            len(high) + 1, high[0].encode(), len(high) - 1))
        numbers = beyond.findall(data)
        if numbers:
            scan.rows = max(scan.rows, max(map(int, numbers)))
        wide = self.wide_refs.findall(data)
        if wide:
            scan.columns = max(scan.columns, max(_column_index(w) + 1 for w in set(wide)))
        elif scan.columns < 26:
            # Within A..Z the grid stays small whatever the width: the last row's is the usual one.
            last_row = data[data.rfind(self.row_ref_first):]
            letters = self.narrow_refs.findall(last_row)
            if letters:
                scan.columns = max(scan.columns, max(letters)[0] - ord("A") + 1)

    def _extent_by_position(self, data, scan):
        """Cells or rows without a reference are placed after the previous one, as calamine does."""
        row, col = scan.rows, 0
        for match in self.tag.finditer(data):
            attrs = match.group(2)
            if match.group(1) == b"row":
                ref = _ROW_REF.search(attrs)
                row, col = (int(ref.group(1)) if ref else row + 1), 0
                scan.rows = max(scan.rows, row)
                continue
            ref = _CELL_REF.search(attrs)
            if ref:
                col = _column_index(ref.group(1)) + 1
                scan.rows = max(scan.rows, int(ref.group(2)))
            else:
                col += 1
            scan.columns = max(scan.columns, col)

    def _cell_head(self, data, position):
        start = data.rfind(self.cell_start, 0, position)
        return data[start : data.find(b">", start) + 1]

    @staticmethod
    def _mark(bad, head, message):
        ref = _CELL_REF.search(head)
        if ref:  # cells without a reference are rare; calamine places them, we cannot
            bad.setdefault(int(ref.group(2)) - 1, {})[_column_index(ref.group(1))] = BadCell(message)


_ROW_REF = re.compile(rb'\br="(\d+)"')


def _column_index(letters):
    index = 0
    for ch in letters:
        index = index * 26 + ch - 64
    return index - 1
