"""Money parsing and formatting: Decimal end to end, 2 decimals, Chinese errors."""
import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
_FULLWIDTH = str.maketrans("０１２３４５６７８９．，－＋", "0123456789.,-+")
_NOISE = re.compile(r"[\s¥￥元,]")


class MoneyError(ValueError):
    """Bad money input; str(error) is a message for the admin."""


def parse_money(text, *, field="金额", allow_negative=False):
    """'¥1,234.50' / '１２.5元' -> Decimal('1234.50'); at most 2 decimals."""
    if isinstance(text, Decimal):
        value = text
    else:
        cleaned = _NOISE.sub("", str(text).translate(_FULLWIDTH))
        if not cleaned:
            raise MoneyError(f"{field}不能为空")
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", cleaned):
            raise MoneyError(f"{field}格式错误：“{text}”不是数字")
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:  # pragma: no cover - regex guards this
            raise MoneyError(f"{field}格式错误：“{text}”不是数字") from exc
    if value.as_tuple().exponent < -2 and value != value.quantize(CENT):
        raise MoneyError(f"{field}最多两位小数")
    if value < 0 and not allow_negative:
        raise MoneyError(f"{field}不能为负数")
    if abs(value) >= Decimal("10000000000"):
        raise MoneyError(f"{field}过大")
    return value.quantize(CENT)


def round_money(value, step=CENT):
    """Round half-up to a step of 0.01 or 0.1 yuan."""
    return (Decimal(value) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def round_up_money(value, step=CENT):
    return (Decimal(value) / step).quantize(Decimal(1), rounding=ROUND_CEILING) * step


def format_money(value):
    return "" if value is None else f"{Decimal(value).quantize(CENT):,.2f}"


def format_plain(value):
    """30.00 -> "30", 2.50 -> "2.5": a number as an admin would type it (never "3E+1")."""
    return "" if value is None else format(Decimal(value).normalize(), "f")
