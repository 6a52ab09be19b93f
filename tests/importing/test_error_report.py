from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from kamen.services.importing.error_report import neutralize, write_error_report
from kamen.services.importing.errors import BadCell
from kamen.services.importing.header import locate_table
from kamen.services.importing.mapping import auto_map
from kamen.services.importing.readers import open_spreadsheet
from kamen.services.importing.validate import FileValidator
from kamen.services.pricing import Markup

HEADERS = ["商品编码", "商品名称", "供货价", "库存"]


@pytest.mark.parametrize(
    "text, safe",
    [
        ("=HYPERLINK(\"http://x\",\"点我\")", "'=HYPERLINK(\"http://x\",\"点我\")"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("-5", "-5"),
        ("+10.5", "+10.5"),
        ("腾讯QQ", "腾讯QQ"),
        ("", ""),
    ],
)
def test_neutralize(text, safe):
    assert neutralize(text) == safe


def test_csv_report_keeps_the_admins_rows(tmp_path, read_rows):
    target = tmp_path / "errors.csv"
    rows = [
        (["1001", "=cmd()", "abc", "-5"], 4, "供货价格式错误：“abc”不是数字；库存不能为负数：-5"),
        ([1002.0, "名", 9.5, BadCell("公式没有计算结果")], 7, "公式没有计算结果"),
        ([True, date(2026, 1, 2), datetime(2026, 1, 2, 3, 4), None], 9, "=原因"),
        (["1003", "短行"], 12, "供货价不能为空"),  # trailing empty cells were not read: still lined up
    ]
    write_error_report(target, "csv", HEADERS, rows)
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_rows(target) == [
        HEADERS + ["原行号", "错误原因"],
        ["1001", "'=cmd()", "abc", "-5", "4", "供货价格式错误：“abc”不是数字；库存不能为负数：-5"],
        ["1002", "名", "9.5", "", "7", "公式没有计算结果"],
        ["TRUE", "2026-01-02", "2026-01-02 03:04:00", "", "9", "'=原因"],
        ["1003", "短行", "", "", "12", "供货价不能为空"],
    ]


def test_csv_report_in_the_uploaded_encoding_and_delimiter(tmp_path):
    target = tmp_path / "errors.csv"
    write_error_report(target, "csv", HEADERS, [(["1", "话费", "x", "1"], 2, "错")], delimiter="\t",
                       encoding="gb18030")
    assert target.read_bytes().decode("gb18030").splitlines()[1] == "1\t话费\tx\t1\t2\t错"


def test_xlsx_report_keeps_types_and_never_writes_formulas(tmp_path):
    target = tmp_path / "errors.xlsx"
    rows = [([1001.0, "=1+1", 9.5, datetime(2026, 1, 2)], 3, "原因"),
            (["1002", BadCell("x"), "-3", None], 4, "负库存")]
    write_error_report(target, "xlsx", HEADERS, rows)
    sheet = load_workbook(target).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        HEADERS + ["原行号", "错误原因"],
        [1001, "'=1+1", 9.5, datetime(2026, 1, 2), 3, "原因"],
        ["1002", None, "-3", None, 4, "负库存"],
    ]
    assert sheet["B2"].data_type == "s"


def test_messy_gbk_file_to_error_report(tmp_path, make_csv, read_rows):
    """A GBK CSV from a supplier: title rows, notes, bad rows -> their rows back with reasons."""
    source = make_csv(
        [
            ["某某货源报价单", "", "", ""],
            ["更新时间：2026-11-01", "", "", ""],
            ["编号", "商品名称", "进价", "数量"],
            ["1001", "腾讯QQ会员", "9.5", "100"],
            ["1.23E+11", "爱奇艺", "15", "5"],
            ["1002", "=HYPERLINK(\"x\")", "十五", "-1"],
            ["1001", "重复", "1", "1"],
            ["合计", "", "", "106"],
        ],
        encoding="gbk",
    )
    with open_spreadsheet(source) as book:
        table = locate_table(book.rows())
        validator = FileValidator(auto_map(table.headers).columns, markup=Markup(Decimal(5)))
        failed, skipped = [], []
        for row in table.rows:
            if row.skip:
                skipped.append(row.line)
                continue
            result = validator.check(row.cells, row.line)
            if not result.ok:
                failed.append((row.cells, row.line, result.reason()))
        kind, encoding = book.kind, book.encoding
    assert skipped == [8]
    write_error_report(tmp_path / "errors.csv", kind, table.headers, failed, encoding=encoding)
    assert read_rows(tmp_path / "errors.csv") == [
        ["编号", "商品名称", "进价", "数量", "原行号", "错误原因"],
        ["1.23E+11", "爱奇艺", "15", "5", "5", "商品编码“1.23E+11”被 Excel 显示成了科学计数法，原来的数字已丢失，请把该列设为“文本”格式后重新填写"],
        ["1002", "'=HYPERLINK(\"x\")", "十五", "-1", "6", "供货价格式错误：“十五”不是数字；库存不能为负数：-1"],
        ["1001", "重复", "1", "1", "7", "商品编码“1001”与第 4 行重复"],
    ]
