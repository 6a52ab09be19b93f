from datetime import date, datetime
from decimal import Decimal

import pytest

from kamen.services.importing.errors import BadCell
from kamen.services.importing.normalize import (
    FieldError,
    clean_text,
    is_blank,
    is_range,
    parse_bool,
    parse_code,
    parse_datetime,
    parse_delivery,
    parse_face_value,
    parse_minutes,
    parse_money_cell,
    parse_text,
    parse_tier,
    parse_whole,
)


@pytest.mark.parametrize(
    "raw, amount",
    [
        ("9.5", "9.50"),
        ("¥1,234.50", "1234.50"),
        ("￥ 12 元", "12.00"),
        ("１２.５元", "12.50"),
        ("RMB 10", "10.00"),
        (" 10\u3000", "10.00"),
        (9.5, "9.50"),
        (10, "10.00"),
        (0.1 + 0.2, "0.30"),  # float noise from a formula
        (29.999999999999996, "30.00"),
        (Decimal("7.1"), "7.10"),
    ],
)
def test_money(raw, amount):
    value = parse_money_cell(raw, "供货价")
    assert value == Decimal(amount) and isinstance(value, Decimal)
    assert str(value) == amount


@pytest.mark.parametrize(
    "raw, message",
    [
        ("abc", "供货价格式错误：“abc”不是数字"),
        ("12.345", "供货价最多两位小数"),
        (12.345, "供货价最多两位小数"),
        ("-1", "供货价不能为负数"),
        (float("nan"), "供货价不是有效数字"),
        (True, "供货价格式错误：“True”不是数字"),
        (BadCell("公式没有计算结果"), "公式没有计算结果"),
    ],
)
def test_money_errors(raw, message):
    with pytest.raises(FieldError, match=message):
        parse_money_cell(raw, "供货价")


@pytest.mark.parametrize(
    "raw, code",
    [(1001.0, "1001"), (123456789012345.0, "123456789012345"), (" ＡＢ-１２ ", "AB-12"), ("00123", "00123"), ("1E5", "1E5")],
)
def test_codes_stay_text(raw, code):
    assert parse_code(raw) == code


def test_code_in_scientific_notation_lost_its_digits():
    with pytest.raises(FieldError, match="商品编码“1.23E\\+11”被 Excel 显示成了科学计数法，原来的数字已丢失"):
        parse_code("1.23E+11")


def test_code_longer_than_excel_precision():
    with pytest.raises(FieldError, match="超过 15 位的数字，Excel 已丢失末尾数字"):
        parse_code(1.2345678901234567e17)


def test_code_too_long():
    with pytest.raises(FieldError, match="商品编码太长，最多 64 个字符"):
        parse_code("x" * 65)


def test_text_is_half_width_and_single_spaced():
    assert clean_text("  ＱＱ会员\u3000 1个月\t ") == "QQ会员 1个月"
    with pytest.raises(FieldError, match="商品名称太长（201 个字），最多 200 个字"):
        parse_text("名" * 201, "商品名称", 200)


@pytest.mark.parametrize(
    "raw, end_of_day, moment",
    [
        ("2026-12-31", False, datetime(2026, 12, 31)),
        ("2026/12/31", False, datetime(2026, 12, 31)),
        ("2026.1.5", False, datetime(2026, 1, 5)),
        ("2026年12月31日", False, datetime(2026, 12, 31)),
        ("２０２６年１２月３１日", False, datetime(2026, 12, 31)),
        ("20261231", False, datetime(2026, 12, 31)),
        ("2026-12-31 23:59", False, datetime(2026, 12, 31, 23, 59)),
        ("2026年12月31日 23时59分30秒", False, datetime(2026, 12, 31, 23, 59, 30)),
        ("2026-12-31", True, datetime(2027, 1, 1)),
        ("2026-12-31 18:00", True, datetime(2026, 12, 31, 18, 0)),
        (46387, False, datetime(2026, 12, 31)),
        (46387.0, True, datetime(2027, 1, 1)),
        (46387.75, False, datetime(2026, 12, 31, 18, 0)),
        ("46387", False, datetime(2026, 12, 31)),
        (date(2026, 12, 31), True, datetime(2027, 1, 1)),
        (datetime(2026, 12, 31, 10, 0), True, datetime(2026, 12, 31, 10, 0)),
    ],
)
def test_dates(raw, end_of_day, moment):
    assert parse_datetime(raw, "活动结束", end_of_day=end_of_day) == moment


@pytest.mark.parametrize("raw", ["2026-02-30", "2026-12-31 25:00", "明天", 12, "12/31/2026"])
def test_bad_dates(raw):
    with pytest.raises(FieldError, match="活动开始“.*”不是有效日期，请写成 2026-12-31"):
        parse_datetime(raw, "活动开始")


@pytest.mark.parametrize("raw, value", [("是", True), ("否", False), ("Y", True), ("n", False), ("TRUE", True), ("0", False), (1.0, True), (False, False)])
def test_booleans(raw, value):
    assert parse_bool(raw, "需同步库存") is value


def test_bad_boolean():
    with pytest.raises(FieldError, match="需同步库存只能填“是”或“否”，当前为“也许”"):
        parse_bool("也许", "需同步库存")


@pytest.mark.parametrize("raw, value", [("100", 100), ("1,000", 1000), ("１００个", 100), (100.0, 100), ("-5", -5), ("20.0", 20)])
def test_whole_numbers(raw, value):
    assert parse_whole(raw, "库存") == value


@pytest.mark.parametrize("raw, message", [("10.5", "库存必须是整数：“10.5”"), (2.5, "库存必须是整数：“2.5”"), ("很多", "库存必须是整数"), ("1000000000", "库存过大")])
def test_bad_whole_numbers(raw, message):
    with pytest.raises(FieldError, match=message):
        parse_whole(raw, "库存")


@pytest.mark.parametrize("raw, value", [("10元", "10.00"), ("¥50", "50.00"), (100.0, "100.00")])
def test_face_value(raw, value):
    assert parse_face_value(raw) == Decimal(value)


def test_face_value_must_be_positive():
    with pytest.raises(FieldError, match="面值必须大于 0"):
        parse_face_value("0元")


@pytest.mark.parametrize(
    "raw, tier",
    [("1-10元", "1-10元"), ("1～10", "1-10元"), ("1元-10元", "1-10元"), ("1 至 100 元", "1-100元"), ("0.5-9.50", "0.5-9.5元"), ("10", "10元"), ("大额档", "大额档")],
)
def test_tiers(raw, tier):
    assert parse_tier(raw) == tier


def test_tier_upside_down():
    with pytest.raises(FieldError, match="面值档位“10-1元”下限大于上限"):
        parse_tier("10-1元")


def test_is_range():
    assert is_range("1-10元") and not is_range("10元") and not is_range(10.0)


@pytest.mark.parametrize("raw, minutes", [("5", 5), ("5分钟", 5), ("1小时", 60), ("秒到", 0), (30.0, 30)])
def test_minutes(raw, minutes):
    assert parse_minutes(raw) == minutes


def test_bad_minutes():
    with pytest.raises(FieldError, match="预计到账\\(分钟\\)格式错误：“很快”"):
        parse_minutes("很快")
    with pytest.raises(FieldError, match="预计到账\\(分钟\\)不能为负数"):
        parse_minutes(-1.0)


@pytest.mark.parametrize("raw, kind", [("自动发卡密", "card"), ("卡密", "card"), ("直充", "topup"), ("充值到账号", "topup"), ("人工", "manual"), ("Manual", "manual")])
def test_delivery(raw, kind):
    assert parse_delivery(raw) == kind


def test_bad_delivery():
    with pytest.raises(FieldError, match="发货方式“快递”无法识别，可填：自动发卡密、充值到账号、人工发货"):
        parse_delivery("快递")


@pytest.mark.parametrize("raw, blank", [("", True), ("  ", True), (None, True), (0.0, False), ("0", False), (BadCell("x"), False)])
def test_is_blank(raw, blank):
    assert is_blank(raw) is blank
