from datetime import datetime
from decimal import Decimal

import pytest

from kamen.models.catalog import DeliveryType
from kamen.services.importing.errors import BadCell
from kamen.services.importing.mapping import FIELDS, auto_map
from kamen.services.importing.normalize import DELIVERY_WORDS
from kamen.services.importing.validate import PARSERS, FileValidator, Issue, validate_row
from kamen.services.pricing import Markup

MARKUP = Markup(percent=Decimal(10))
GOOD = {"code": 1001.0, "name": " 腾讯QQ会员 ", "cost_price": "9.50", "sale_price": "10", "stock": "100"}


def kinds(issues):
    return [(i.field, i.kind) for i in issues]


def test_every_field_has_a_parser_and_delivery_values_match_the_model():
    assert PARSERS.keys() == {f.key for f in FIELDS}
    assert set(DELIVERY_WORDS) == {d.value for d in DeliveryType}


def test_good_row_is_normalized():
    result = validate_row(GOOD, markup=MARKUP)
    assert result.ok and result.warnings == [] and result.computed == ()
    assert result.values == {
        "code": "1001", "name": "腾讯QQ会员", "cost_price": Decimal("9.50"), "sale_price": Decimal("10.00"), "stock": 100,
    }


def test_blank_cells_are_left_out_so_updates_keep_old_values():
    result = validate_row({**GOOD, "stock": "", "category": "  "}, markup=MARKUP)
    assert "stock" not in result.values and "category" not in result.values


def test_missing_sale_price_comes_from_the_markup():
    result = validate_row({**GOOD, "sale_price": ""}, markup=MARKUP)
    assert result.values["sale_price"] == Decimal("10.45")
    assert result.computed == ("sale_price",)


def test_markup_rounding_never_sells_below_cost():
    result = validate_row({**GOOD, "sale_price": None, "cost_price": "9.96"}, markup=Markup(step=Decimal("0.1")))
    assert result.values["sale_price"] == Decimal("10.0")


def test_no_markup_leaves_sale_price_out():
    assert "sale_price" not in validate_row({**GOOD, "sale_price": ""}, markup=None).values


def test_required_fields_missing():
    result = validate_row({"code": "", "name": None, "stock": "1"}, markup=MARKUP)
    assert kinds(result.errors) == [("code", "字段缺失"), ("name", "字段缺失"), ("cost_price", "字段缺失")]
    assert result.reason() == "商品编码不能为空；商品名称不能为空；供货价不能为空"


def test_format_errors_are_reported_once_per_field():
    result = validate_row({**GOOD, "cost_price": "九块五", "promo_start": "下周"}, markup=MARKUP)
    assert kinds(result.errors) == [("cost_price", "格式错误"), ("promo_start", "格式错误")]
    assert result.errors[0].message == "供货价格式错误：“九块五”不是数字"
    assert "sale_price" in result.values  # the file's 售价 still reads


def test_formula_without_value_is_a_format_error():
    result = validate_row({**GOOD, "sale_price": BadCell("公式没有计算结果")}, markup=MARKUP)
    assert result.errors == [Issue("sale_price", "格式错误", "公式没有计算结果")]
    assert "sale_price" not in result.values  # never replaced by a computed price


def test_negative_stock():
    result = validate_row({**GOOD, "stock": "-5"}, markup=MARKUP)
    assert result.errors == [Issue("stock", "负库存", "库存不能为负数：-5")]


def test_promo_end_before_start():
    result = validate_row({**GOOD, "promo_start": "2026-12-31", "promo_end": "2026-12-01"}, markup=MARKUP)
    assert result.errors == [Issue("promo_end", "活动结束早于开始", "活动结束时间早于开始时间")]


def test_one_day_promo_is_fine():
    result = validate_row({**GOOD, "promo_start": "2026-12-31", "promo_end": "2026-12-31"}, markup=MARKUP)
    assert result.ok
    assert (result.values["promo_start"], result.values["promo_end"]) == (datetime(2026, 12, 31), datetime(2027, 1, 1))


def test_promo_price_above_sale_price():
    result = validate_row({**GOOD, "promo_price": "10.5"}, markup=MARKUP)
    assert result.errors == [Issue("promo_price", "折扣价高于售价", "折扣价 ¥10.50 不能高于售价 ¥10.00")]


def test_sale_or_promo_below_cost_plus_minimum_margin_is_an_error():
    result = validate_row({**GOOD, "cost_price": "12"}, markup=MARKUP)
    assert result.errors == [Issue("sale_price", "售价低于成本", "售价 ¥10.00 低于供货价 ¥12.00，会亏本")]
    margin = Markup(min_margin=Decimal("0.50"))
    result = validate_row({**GOOD, "cost_price": "9.60", "sale_price": "11", "promo_price": "10.00"}, markup=margin)
    assert result.errors == [Issue("promo_price", "折扣价低于成本", "折扣价 ¥10.00 低于供货价 ¥9.60 加最低利润 ¥0.50，会亏本")]
    # A sale price computed from the markup is lifted to the floor.
    result = validate_row({key: v for key, v in {**GOOD, "cost_price": "9.60"}.items() if key != "sale_price"},
                          markup=margin)
    assert result.ok and result.values["sale_price"] == Decimal("10.10")


def test_price_change_against_today():
    current = {"cost_price": Decimal("5.00"), "sale_price": Decimal("9.80")}
    result = validate_row(GOOD, markup=MARKUP, current=current)
    assert result.warnings == [Issue("cost_price", "价格变动过大", "供货价 5.00 → 9.50（+90.0%），变动超过 30%，请确认")]
    assert validate_row(GOOD, markup=MARKUP, current=current, max_price_change=Decimal(100)).warnings == []
    assert validate_row(GOOD, markup=MARKUP, current=current, max_price_change=None).warnings == []
    zero = validate_row(GOOD, markup=MARKUP, current={"sale_price": Decimal(0)}).warnings
    assert zero == [Issue("sale_price", "价格变动过大", "售价 0 → 10.00（原价为 0），变动超过 30%，请确认")]


def test_face_value_cell_holding_a_tier():
    result = validate_row({**GOOD, "face_value": "1-10元"}, markup=MARKUP)
    assert result.values["tier_label"] == "1-10元" and "face_value" not in result.values


def test_file_validator_reads_mapped_columns_and_flags_duplicate_codes():
    mapping = auto_map(["编号", "名称", "进价", "备注"])
    validator = FileValidator(
        mapping.columns, markup=MARKUP, current={"A1": {"cost_price": Decimal("1.00")}}
    )
    first = validator.check(["A1", "甲", "5", "x"], 5)
    short = validator.check(["A2", "乙"], 6)
    again = validator.check(["A1", "丙", "6", ""], 9)
    assert first.ok and first.values["sale_price"] == Decimal("5.50")
    assert kinds(first.warnings) == [("cost_price", "价格变动过大")]
    assert short.errors == [Issue("cost_price", "字段缺失", "供货价不能为空")]
    assert again.errors == [Issue("code", "重复编码", "商品编码“A1”与第 5 行重复")]


@pytest.mark.parametrize("raw", [1001.0, "1001", "１００１"])
def test_duplicates_compare_normalized_codes(raw):
    validator = FileValidator({"code": 0, "name": 1, "cost_price": 2}, markup=MARKUP)
    validator.check(["1001", "a", "1"], 2)
    assert kinds(validator.check([raw, "b", "1"], 3).errors) == [("code", "重复编码")]


def test_a_file_validator_parses_repeating_cells_once_and_alike():
    columns = {"code": 0, "name": 1, "cost_price": 2, "face_value": 3, "delivery_type": 4, "sync_stock": 5}
    validator = FileValidator(columns, markup=MARKUP)
    rows = [
        ["A1", "甲", "9.50", "10元", "直充", 1],
        ["A2", "乙", "9.50", "10元", "直充", True],
        ["A3", "丙", "9.50", "10-20", "飞鸽", "否"],
        ["A4", "丁", "9.50", "10-20", "飞鸽", 1.0],
    ]
    results = [validator.check(row, line) for line, row in enumerate(rows, 2)]
    alone = [validate_row(dict(zip(columns, row)), markup=MARKUP) for row in rows]
    assert [r.values for r in results] == [r.values for r in alone]
    assert [kinds(r.errors) for r in results] == [kinds(r.errors) for r in alone]
    assert results[0].values["face_value"] == results[1].values["face_value"] == Decimal("10.00")
    assert results[2].values["tier_label"] == results[3].values["tier_label"]
    # the same unreadable cell is reported on every row that has it, each with its own error
    assert [e.message for e in results[2].errors] == [e.message for e in results[3].errors]
    assert "飞鸽" in results[3].errors[0].message and results[2].errors[0] is not results[3].errors[0]
