import codecs
from datetime import datetime
from decimal import Decimal

from openpyxl import load_workbook

from kamen.services.importing.header import locate_table
from kamen.services.importing.mapping import FIELDS, auto_map
from kamen.services.importing.readers import open_spreadsheet
from kamen.services.importing.template import HEADERS, template_csv, template_xlsx
from kamen.services.importing.validate import FileValidator
from kamen.services.pricing import Markup

MARKUP = Markup(percent=Decimal(20))


def _import(path):
    """Read -> header -> map -> validate, as the parse job does."""
    with open_spreadsheet(path) as book:
        table = locate_table(book.rows())
        mapping = auto_map(table.headers)
        validator = FileValidator(mapping.columns, markup=MARKUP)
        return mapping, [(row.line, validator.check(row.cells, row.line)) for row in table.rows]


def test_xlsx_template_layout(tmp_path):
    path = tmp_path / "模板.xlsx"
    path.write_bytes(template_xlsx())
    book = load_workbook(path)
    assert book.sheetnames == ["商品", "说明"]
    sheet = book["商品"]
    assert [c.value for c in sheet[1]] == HEADERS == [f.label for f in FIELDS]
    assert sheet.max_row == 3  # header + two examples
    assert sheet["A2"].value == "1001" and sheet["A2"].number_format == "@"
    rules = {(dv.type, dv.formula1, str(dv.sqref)) for dv in sheet.data_validations.dataValidation}
    assert ("decimal", "0", "F2:F1048576") in rules  # 供货价 ≥ 0
    assert ("whole", "0", "I2:I1048576") in rules  # 库存
    assert ("list", '"是,否"', "M2:M1048576") in rules  # 需同步库存
    assert ("list", '"自动发卡密,充值到账号,人工发货"', "N2:N1048576") in rules
    assert ("date", "36526", "K2:K1048576") in rules
    assert all(dv.error and dv.showErrorMessage for dv in sheet.data_validations.dataValidation)
    notes = [row[0] for row in book["说明"].iter_rows(values_only=True)]
    assert set(HEADERS) <= set(notes)


def test_xlsx_template_round_trip(tmp_path):
    path = tmp_path / "filled.xlsx"
    path.write_bytes(template_xlsx())
    book = load_workbook(path)
    sheet = book["商品"]
    sheet.append(["2001", "网易云音乐 黑胶VIP 月卡", "音乐", "15元", None, 12.8, 15, None, 50, None, None, None, "否", "卡密", None, 1])
    sheet.append(["2001", "重复编码", None, None, None, "abc", None, None, -3])
    book.save(path)

    mapping, results = _import(path)
    assert {m.how for m in mapping.matches} == {"exact"} and not mapping.extra and not mapping.missing
    (l1, ex1), (l2, ex2), (l3, mine), (l4, bad) = results
    assert (l1, l2, l3, l4) == (2, 3, 4, 5)
    assert ex1.ok and ex2.ok and mine.ok
    assert ex1.values["code"] == "1001" and ex1.values["promo_end"] == datetime(2027, 1, 1)
    assert ex2.values["tier_label"] == "1-500元" and ex2.values["sale_price"] == Decimal("1.18")
    assert mine.values == {
        "code": "2001", "name": "网易云音乐 黑胶VIP 月卡", "category": "音乐", "face_value": Decimal("15.00"),
        "cost_price": Decimal("12.80"), "market_price": Decimal("15.00"), "stock": 50, "sync_stock": False,
        "delivery_type": "card", "delivery_minutes": 1, "sale_price": Decimal("15.36"),
    }
    assert [(i.field, i.kind) for i in bad.errors] == [("cost_price", "格式错误"), ("stock", "负库存"), ("code", "重复编码")]


def test_csv_template_round_trip(tmp_path):
    data = template_csv()
    assert data.startswith(codecs.BOM_UTF8)
    path = tmp_path / "模板.csv"
    path.write_bytes(data + "3001,腾讯视频VIP 月卡,,,,18,,,,,,,是,自动发卡密,,\r\n".encode())
    mapping, results = _import(path)
    assert not mapping.missing
    assert [r.ok for _, r in results] == [True, True, True]
    assert results[0][1].values["promo_start"] == datetime(2026, 12, 1)
    assert results[2][1].values["sale_price"] == Decimal("21.60")
