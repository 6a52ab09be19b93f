from datetime import datetime
from decimal import Decimal

import pytest

from kamen.suppliers.base import AuthFailed, InsufficientBalance, ProductUnavailable, SupplierError
from kamen.suppliers.parsing import BadValue, buyer_field, count, error_from_message, money, utc_datetime


@pytest.mark.parametrize("raw, expected", [
    ("12.30", Decimal("12.30")),
    (7, Decimal("7")),
    (Decimal("0.0001"), Decimal("0.00")),
    (" 1 ", Decimal("1")),
    ("9.505", Decimal("9.51")),  # half-up, not banker's rounding
    (Decimal("9.5049"), Decimal("9.50")),
    ("1000000", Decimal("1000000")),
])
def test_money_is_rounded_half_up_to_the_cent(raw, expected):
    got = money({"p": raw}, "p")
    assert got == expected and got.as_tuple().exponent == -2


@pytest.mark.parametrize("raw", [1.5, True, "abc", "-1", "NaN", "Infinity", [], "", "1000000.01", "1e9"])
def test_bad_money(raw):
    with pytest.raises(BadValue):
        money({"p": raw}, "p")


def test_signed_money_allows_an_overdrawn_balance():
    assert money({"b": "-5.00"}, "b", signed=True) == Decimal("-5.00")


@pytest.mark.parametrize("raw, expected", [
    (3, 3), ("12", 12), ("1.0", 1), ("1.5", None), ("x", None), (None, None),
])
def test_count(raw, expected):
    assert count(raw) == expected


def test_utc_datetime():
    assert utc_datetime("2024-05-01T20:00:00+08:00") == datetime(2024, 5, 1, 12)
    assert utc_datetime("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12)
    with pytest.raises(BadValue, match="时区"):
        utc_datetime("2024-05-01T12:00:00")


@pytest.mark.parametrize("message, error", [
    ("商户ID不存在", AuthFailed),
    ("余额不足", InsufficientBalance),
    ("商品不存在", ProductUnavailable),
    ("", SupplierError),
])
def test_error_from_message(message, error):
    assert type(error_from_message(message, 9)) is error


@pytest.mark.parametrize("pattern, kept", [
    (r"/^\d{5,11}$/i", r"^\d{5,11}$"),  # PHP/JS delimiters stripped
    (r"^1[3-9]\d{9}$", r"^1[3-9]\d{9}$"),
    ("([", ""),  # not a regular expression we can use: dropped, the field kept
    (None, ""),
])
def test_buyer_field_keeps_only_a_usable_pattern(pattern, kept):
    assert buyer_field(" qq ", "QQ号", pattern, " 5-12 位 ") == {"key": "qq", "label": "QQ号", "pattern": kept,
                                                              "hint": "5-12 位"}


def test_buyer_field_needs_a_key():
    with pytest.raises(BadValue, match="字段名"):
        buyer_field("", "账号")
