import codecs
import zipfile
from datetime import date, datetime

import pytest

from kamen.services.importing.errors import BadCell, ImportFileError
from kamen.services.importing.readers import ReadLimits, open_spreadsheet
from tests.import_files import raw_xlsx

ROWS = [["商品编码", "商品名称", "供货价"], ["1001", "腾讯QQ会员", "9.50"], ["1002", "爱奇艺黄金会员", "15"]]


@pytest.mark.parametrize(
    "encoding, delimiter",
    [("utf-8", ","), ("utf-8-sig", ","), ("gbk", ","), ("gb18030", "\t"), ("gbk", ";"), ("utf-16", "\t")],
)
def test_csv_encodings_and_delimiters(make_csv, read_rows, encoding, delimiter):
    path = make_csv(ROWS, encoding=encoding, delimiter=delimiter)
    with open_spreadsheet(path) as book:
        assert book.kind == "csv"
        assert book.delimiter == delimiter
        assert book.sheet_names == []
    assert read_rows(path) == ROWS


def test_gbk_is_read_as_gb18030(make_csv):
    with open_spreadsheet(make_csv(ROWS, encoding="gbk")) as book:
        assert book.encoding == "gb18030"


def test_delimiter_counts_fields_not_characters(make_csv, read_rows):
    # A title line, and thousands separators inside quotes, in a tab file.
    rows = [["XX货源价格表"], ["商品编码", "商品名称", "供货价"], ["1001", "点券 1,000 个", "1,000.00"]]
    path = make_csv(rows, delimiter="\t")
    assert read_rows(path) == rows


def test_csv_renamed_to_xlsx_is_read_by_content(make_csv, read_rows):
    path = make_csv(ROWS, name="price.xlsx")
    assert read_rows(path) == ROWS


def test_xlsx_rows_keep_excel_types_and_visible_sheets(make_xlsx):
    path = make_xlsx(
        sheets={"话费": [["编码", "日期"], [1001, datetime(2026, 12, 31, 8, 0)], [1002, date(2026, 1, 5)]], "隐藏": [["x"]], "游戏": [["y"]]},
        hidden=("隐藏",),
    )
    with open_spreadsheet(path) as book:
        assert book.kind == "xlsx"
        assert book.sheet_names == ["话费", "游戏"]
        assert list(book.rows()) == [["编码", "日期"], [1001.0, datetime(2026, 12, 31, 8, 0)], [1002.0, date(2026, 1, 5)]]
        assert list(book.rows("游戏")) == [["y"]]
        with pytest.raises(ImportFileError, match="找不到工作表“隐藏”"):
            book.rows("隐藏")


def test_xlsx_rows_start_at_excel_row_one_and_column_a(make_xlsx, read_rows):
    # Data placed at B3: row numbers and columns must still match what the admin sees.
    path = make_xlsx([[], [], [None, "商品编码", "供货价"], [None, "1001", 9.5]])
    assert read_rows(path) == [["", "", ""], ["", "", ""], ["", "商品编码", "供货价"], ["", "1001", 9.5]]


def test_formula_without_cached_value_and_error_cells_are_bad_cells(make_xlsx, read_rows):
    # openpyxl writes formulas without results, as a script would.
    path = make_xlsx([["供货价", "售价", "市场价"], [10, "=A2*1.1", "#DIV/0!"]])
    header, row = read_rows(path)
    assert row[0] == 10.0
    assert isinstance(row[1], BadCell) and "公式没有计算结果" in row[1].message
    assert row[2] == BadCell("单元格是错误值 #DIV/0!，请修正公式或填写数值")


def test_formula_with_cached_value_uses_the_value(make_xlsx, read_rows, tmp_path):
    path = make_xlsx([["供货价", "售价"], [10, "=A2*1.1"]])
    saved_by_excel = _edit_part(path, tmp_path / "excel.xlsx", "xl/worksheets/sheet1.xml", b"<v />", b"<v>11</v>")
    assert read_rows(saved_by_excel)[1] == [10.0, 11.0]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ImportFileError, match="文件是空的"):
        open_spreadsheet(path)


def test_over_size_limit(make_csv):
    path = make_csv(ROWS * 100)
    with pytest.raises(ImportFileError, match=r"文件太大（.* MB），上限 0 MB"):
        open_spreadsheet(path, ReadLimits(max_bytes=1000))


def test_default_size_limit_is_50_mb():
    assert ReadLimits().max_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "无法识别的文件类型"),
        (b"%PDF-1.7\n\0\xff binary", "无法识别的文件类型"),
        (b"\xff\xfd\xfc" * 20, "无法识别的文件类型"),
        ("<html><body><table><tr><td>商品编码</td></tr></table>".encode("gbk"), "“假 Excel”"),
    ],
)
def test_wrong_type_renamed_to_xlsx(tmp_path, content, message):
    path = tmp_path / "price.xlsx"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        open_spreadsheet(path)


def test_truncated_xlsx_is_corrupt(make_xlsx):
    path = make_xlsx([["商品编码"], ["1001"]])
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImportFileError, match="文件已损坏"):
        open_spreadsheet(path)


def test_zip_that_is_not_a_workbook(tmp_path):
    path = tmp_path / "doc.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(ImportFileError, match="不是 Excel 表格"):
        open_spreadsheet(path)


def test_xlsb_is_refused(tmp_path):
    path = tmp_path / "book.xlsb"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.bin", b"\0")
    with pytest.raises(ImportFileError, match="不支持 .xlsb"):
        open_spreadsheet(path)


def test_zip_bomb_is_refused_before_unpacking(make_xlsx):
    path = make_xlsx([["商品编码"], ["1001"]])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/media/padding.bin", b"\0" * (8 * 1024 * 1024))
    assert path.stat().st_size < 100_000
    with pytest.raises(ImportFileError, match="文件解压后有 8 MB，超过上限 2 MB，疑似压缩炸弹"):
        open_spreadsheet(path, ReadLimits(max_unpacked_bytes=2 * 1024 * 1024))


def test_corrupt_xls(tmp_path):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x07" * 2000)
    with pytest.raises(ImportFileError, match="文件已损坏"):
        open_spreadsheet(path)


def test_password_protected_workbook(tmp_path):
    # Excel stores an encrypted xlsx as an OLE container with an EncryptedPackage stream.
    path = tmp_path / "locked.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600 + "EncryptedPackage".encode("utf-16-le"))
    with pytest.raises(ImportFileError, match="设置了打开密码"):
        open_spreadsheet(path)


def test_too_many_rows_csv(make_csv, read_rows):
    path = make_csv([["1001", "x"]] * 11)
    assert len(read_rows(path, max_rows=11)) == 11
    with pytest.raises(ImportFileError, match="表格超过单次导入上限 10 行"):
        read_rows(path, max_rows=10)


def test_too_many_rows_xlsx(make_xlsx, read_rows):
    path = make_xlsx([["1001", "x"]] * 11)
    with pytest.raises(ImportFileError, match="表格有 11 行，超过单次导入上限 10 行"):
        read_rows(path, max_rows=10)


def test_bad_bytes_after_the_sample_name_the_row(tmp_path, read_rows):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"1001,abc\r\n" * 8000 + "1002,腾讯\r\n".encode("utf-8") + b"1003,\xff\xfe\r\n")
    with pytest.raises(ImportFileError, match="第 8002 行有无法识别的文字"):
        read_rows(path)


@pytest.mark.parametrize("block", [5, 64, 1 << 18])
def test_lines_read_a_block_at_a_time_are_the_files_lines(monkeypatch, block):
    """Lines cut across blocks come back whole (a line feed alone ends a line; a lone CR
    stays inside it), each line's byte order mark dropped, and a bad line named by its
    number whatever block it is in."""
    import io

    from kamen.services.importing import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", block)
    limits = ReadLimits(max_line_bytes=40)
    data = codecs.BOM_UTF8 + "商品编码,名称\r\n1001,腾讯\rQ币\n".encode() + codecs.BOM_UTF8 + b"1002,x\n1003,y"
    assert list(readers.decoded_lines(io.BytesIO(data), "utf-8-sig", limits)) == [
        "商品编码,名称\r\n", "1001,腾讯\rQ币\n", "1002,x\n", "1003,y"]
    good = "1001,腾讯\n".encode("gb18030") * 9
    for bad, message in ((b"1,\xff\xff\n", "第 10 行有无法识别的文字"), (b"1,\x00\n", "第 10 行含有空字符"),
                         (b"1," + b"x" * 60, "第 10 行超过")):
        lines = readers.decoded_lines(io.BytesIO(good + bad + good), "gb18030", limits)
        with pytest.raises(ImportFileError, match=message):
            for n, line in enumerate(lines, 1):
                assert line == "1001,腾讯\n" and n <= 9


def test_unbalanced_quote_is_a_csv_error(tmp_path, read_rows):
    path = tmp_path / "quote.csv"
    path.write_bytes(codecs.BOM_UTF8 + b'a,b\n1,"x' + b"y" * 200_000)
    with pytest.raises(ImportFileError, match="CSV 格式错误"):
        read_rows(path)


def _edit_part(source, target, part, old, new):
    """Copy a workbook, replacing bytes in one of its XML parts."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data.replace(old, new) if item.filename == part else data)
    return target


def test_formula_scan_handles_prefixes_shared_formulas_and_empty_text_results(tmp_path, read_rows):
    sheet = (
        '<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:sheetData>'
        '<x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>供货价</x:t></x:is></x:c>'
        '<x:c r="B1" t="inlineStr"><x:is><x:t>售价</x:t></x:is></x:c>'
        '<x:c r="C1" t="inlineStr"><x:is><x:t>备注</x:t></x:is></x:c></x:row>'
        '<x:row r="2"><x:c r="A2"><x:v>10</x:v></x:c><x:c r="B2"><x:f t="shared" ref="B2:B3" si="0">A2*2</x:f><x:v>20</x:v></x:c>'
        '<x:c r="C2" t="str"><x:f>IF(A2&gt;99,"贵","")</x:f><x:v></x:v></x:c></x:row>'
        '<x:row r="3"><x:c r="A3"><x:v>5</x:v></x:c><x:c r="B3"><x:f t="shared" si="0"/></x:c>'
        '<x:c r="C3" t="e"><x:f>1/0</x:f><x:v>#DIV/0!</x:v></x:c></x:row>'
        "</x:sheetData></x:worksheet>"
    )
    path = raw_xlsx(tmp_path / "other-tool.xlsx", sheet)
    with open_spreadsheet(path) as book:
        assert book.sheet_names == ["价格"]
    rows = read_rows(path)
    assert rows[1] == [10.0, 20.0, ""]
    assert rows[2][0] == 5.0
    assert "公式没有计算结果" in rows[2][1].message
    assert rows[2][2] == BadCell("单元格是错误值 #DIV/0!，请修正公式或填写数值")


def test_workbook_with_only_hidden_sheets(make_xlsx, tmp_path):
    # openpyxl refuses to save this, so hide the last visible sheet in the XML.
    path = make_xlsx([["x"]])
    hidden = _edit_part(path, tmp_path / "hidden.xlsx", "xl/workbook.xml", b'state="visible"', b'state="hidden"')
    with pytest.raises(ImportFileError, match="工作簿里没有可见的工作表"):
        open_spreadsheet(hidden)


def test_zip_with_too_many_parts(make_xlsx):
    path = make_xlsx([["商品编码"]])
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(30):
            zf.writestr(f"xl/media/{i}.bin", b"")
    with pytest.raises(ImportFileError, match="文件内含 .* 个部件，超过上限 20，疑似压缩炸弹"):
        open_spreadsheet(path, ReadLimits(max_zip_entries=20))


def _shown(rows):
    """Rows as compared: trailing empty cells and rows dropped (the full read pads to the
    sheet's width), a bad cell by its message."""
    out = []
    for row in rows:
        row = [("bad", c.message) if isinstance(c, BadCell) else (type(c).__name__, c) for c in row]
        while row and row[-1] == ("str", ""):
            row.pop()
        out.append(row)
    while out and not out[-1]:
        out.pop()
    return out


def _head_and_full(path, sheet=None, rows=40):
    from itertools import islice

    with open_spreadsheet(path) as book:
        return _shown(islice(book.head(sheet), rows)), _shown(islice(book.rows(sheet), rows))


def test_the_head_of_an_xlsx_sheet_reads_as_the_whole_sheet_does(tmp_path):
    """The header rows of an xlsx, parsed without loading the sheet, are the cells the full
    read gives: dates, times and durations by their style, booleans, formulas with and
    without a cached value, error values, rich text, a 1904 workbook, empty rows and an
    empty first column (columns count from A either way)."""
    from datetime import time, timedelta

    from openpyxl import Workbook
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    for epoch in (None, CALENDAR_MAC_1904):
        book = Workbook()
        if epoch:
            book.epoch = epoch
        sheet = book.active
        sheet["B1"] = "XX货源价格表 2026-11"
        sheet.merge_cells("B1:E1")
        sheet.append([None, "商品编码", "商品名称", "供货价", "活动结束", "到账", "时长", "同步", "公式", "错误"])
        sheet.append([None, "1001", CellRichText(["腾讯", TextBlock(InlineFont(b=True), "Q币")]), 9.5,
                      datetime(2026, 11, 30, 23, 59), time(10, 30), timedelta(hours=36), True, "=D3*2", "#N/A"])
        sheet.append([None, 1002, "网易一卡通", 48, date(2026, 12, 1), None, None, False])
        sheet["D3"].number_format = "0.00"
        sheet["G3"].number_format = "[h]:mm:ss"
        sheet["C7"] = "隔了两行"
        path = tmp_path / f"book-{bool(epoch)}.xlsx"
        book.save(path)
        head, full = _head_and_full(path)
        assert head == full
        assert head[1][1] == ("str", "商品编码") and head[2][0] == ("str", "")  # column A kept, empty
        assert head[2][2] == ("str", "腾讯Q币") and head[2][5] == ("time", time(10, 30))


def test_the_head_of_hand_written_sheet_xml(tmp_path):
    """Other writers: a namespace prefix, cells without references, inline strings, an
    ISO date cell, an empty text result of a formula."""
    xml = ('<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:sheetData>'
           '<x:row r="2"><x:c t="inlineStr"><x:is><x:t>商品编码</x:t></x:is></x:c>'
           '<x:c t="inlineStr"><x:is><x:t>名称</x:t></x:is></x:c><x:c r="E2" t="d"><x:v>2026-11-01T10:00:00</x:v></x:c></x:row>'
           '<x:row r="3"><x:c r="A3"><x:v>1001</x:v></x:c><x:c r="B3" t="str"><x:f>""</x:f><x:v></x:v></x:c>'
           '<x:c r="C3" t="b"><x:v>1</x:v></x:c><x:c r="D3"><x:f>1+1</x:f></x:c></x:row>'
           "</x:sheetData></x:worksheet>")
    head, full = _head_and_full(raw_xlsx(tmp_path / "prefixed.xlsx", xml))
    assert head == full and head[1][:2] == [("str", "商品编码"), ("str", "名称")]


def test_the_head_refuses_a_sheet_whose_stated_size_is_over_the_limits(tmp_path):
    from itertools import islice

    xml = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<dimension ref="A1:XFD150000"/><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData></worksheet>')
    with open_spreadsheet(raw_xlsx(tmp_path / "far.xlsx", xml)) as book:
        with pytest.raises(ImportFileError, match="表格有 16384 列"):
            list(islice(book.head(), 5))
