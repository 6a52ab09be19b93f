from decimal import Decimal

import pytest

from kamen.money import MoneyError, format_money, parse_money
from kamen.services.pricing import Markup


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10", "10.00"),
        ("¥1,234.5", "1234.50"),
        ("１２.３元", "12.30"),
        (" 0.99 ", "0.99"),
        ("￥.5", "0.50"),
    ],
)
def test_parse_money_accepts_what_admins_type(text, expected):
    assert parse_money(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "售价格式错误"),
        ("1.234", "售价最多两位小数"),
        ("-1", "售价不能为负数"),
        ("", "售价不能为空"),
        ("1e5", "售价格式错误"),
        ("NaN", "售价格式错误"),
    ],
)
def test_parse_money_rejects_with_chinese_reason(text, message):
    with pytest.raises(MoneyError, match=message):
        parse_money(text, field="售价")


def test_format_money():
    assert format_money(Decimal("1234.5")) == "1,234.50"
    assert format_money(None) == ""


def test_markup_rounds_and_never_goes_below_cost():
    assert Markup(percent=Decimal("3")).apply(Decimal("9.60")) == Decimal("9.89")
    assert Markup(percent=Decimal("3"), step=Decimal("0.1")).apply(Decimal("9.60")) == Decimal("9.9")
    assert Markup(fixed=Decimal("0.5")).apply(Decimal("10.00")) == Decimal("10.50")
    # Rounding 9.97 to a 0.1 step would give 10.0 (fine) but 9.94 would round to 9.9: below cost.
    assert Markup(step=Decimal("0.1")).apply(Decimal("9.94")) == Decimal("10.0")
