"""Turn one raw cell (str from CSV; str, float, bool, date from Excel) into a clean value.

Each parser raises FieldError with the Chinese reason the admin sees. They
run once per cell on 100k-row files, so common inputs take a fast path and
every pattern is compiled once.
"""
import math
import re
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from kamen.money import CENT, MoneyError, parse_money
from kamen.services.importing.errors import BadCell


class FieldError(ValueError):
    """A cell that cannot be used (a 格式错误); str(error) is the reason for the admin."""


EXCEL_EPOCH = datetime(1899, 12, 30)
MAX_WHOLE = 100_000_000
TRUE_WORDS = frozenset({"是", "y", "yes", "true", "1", "需要", "√", "✓", "对"})
FALSE_WORDS = frozenset({"否", "n", "no", "false", "0", "不需要", "×", "✗", "不"})
DELIVERY_WORDS = {
    "card": ("card", "自动发卡密", "自动发卡", "发卡密", "卡密", "自动发货"),
    "topup": ("topup", "充值到账号", "直充", "代充", "充值", "自动充值"),
    "manual": ("manual", "人工发货", "人工", "手动", "手工", "人工充值"),
}
DELIVERY_BY_WORD = {word: kind for kind, words in DELIVERY_WORDS.items() for word in words}
INSTANT_WORDS = frozenset({"即时", "秒到", "实时", "立即", "秒充", "秒发"})

_PLAIN_MONEY = re.compile(r"\d{1,10}(?:\.\d{1,2})?")
_CURRENCY_WORDS = re.compile(r"(?i)rmb|cny|人民币")
_SCIENTIFIC = re.compile(r"[+-]?\d(?:\.\d+)?E[+-]\d+", re.IGNORECASE)
_WHOLE = re.compile(r"[+-]?\d+(?:\.0*)?")
_WHOLE_NOISE = re.compile(r"[,\s个张件份]")
_MINUTES = re.compile(r"(\d+)(分钟|分|min|mins|小时|h)?", re.IGNORECASE)
_TIER = re.compile(r"(\d+(?:\.\d+)?)元?\s*[-~至到—–]\s*(\d+(?:\.\d+)?)元?")
_DATE = re.compile(
    r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]*(\d{1,2})[:时](\d{1,2})分?(?::?(\d{1,2})秒?)?)?"
)
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SERIAL = re.compile(r"\d{5}(?:\.\d+)?")


def is_blank(value):
    """Empty cells are skipped, not errors; a BadCell is never blank."""
    return value is None or value == "" or (value.__class__ is str and value.isspace())


def clean_text(value):
    """Half-width, single-spaced, trimmed text; Excel's 1001.0 reads as '1001'."""
    if value.__class__ is str:
        text = value
    elif isinstance(value, BadCell):
        raise FieldError(value.message)
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)  # full-width digits, letters, spaces
    return " ".join(text.split())


def parse_text(value, label, max_length):
    text = clean_text(value)
    if len(text) > max_length:
        raise FieldError(f"{label}太长（{len(text)} 个字），最多 {max_length} 个字")
    return text


def parse_code(value, label="商品编码"):
    """Codes are text: 1001.0 -> '1001'; digits Excel already lost are an error."""
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e15:
            raise FieldError(
                f"{label}是超过 15 位的数字，Excel 已丢失末尾数字，请把该列设为“文本”格式后重新填写"
            )
        return str(int(value)) if value.is_integer() else repr(value)
    text = clean_text(value)
    if _SCIENTIFIC.fullmatch(text):
        raise FieldError(
            f"{label}“{text}”被 Excel 显示成了科学计数法，原来的数字已丢失，请把该列设为“文本”格式后重新填写"
        )
    if len(text) > 64:
        raise FieldError(f"{label}太长，最多 64 个字符")
    return text


def parse_money_cell(value, label):
    """Decimal with at most 2 decimals, never through float arithmetic."""
    cls = value.__class__
    if cls is str and _PLAIN_MONEY.fullmatch(value):
        return Decimal(value).quantize(CENT)
    if cls is float:
        if not math.isfinite(value):
            raise FieldError(f"{label}不是有效数字")
        amount = Decimal(repr(value))  # the shortest text that round-trips to this float
        if amount.as_tuple().exponent < -2:
            # Formula results carry float noise (29.999999999999996); Excel itself
            # keeps 15 significant digits, so that is what the admin saw.
            amount = Decimal(format(value, ".15g"))
        value = amount
    elif cls is int:
        value = Decimal(value)
    elif cls is str or isinstance(value, BadCell):
        value = _CURRENCY_WORDS.sub("", clean_text(value))
    elif cls is not Decimal:
        raise FieldError(f"{label}格式错误：“{value}”不是数字")
    try:
        return parse_money(value, field=label)
    except MoneyError as exc:
        raise FieldError(str(exc)) from exc


def parse_whole(value, label):
    """An integer, negatives allowed (the caller decides what a negative means)."""
    if isinstance(value, float):
        if not value.is_integer():
            raise FieldError(f"{label}必须是整数：“{value:g}”")
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = _WHOLE_NOISE.sub("", clean_text(value))
        if not _WHOLE.fullmatch(text):
            raise FieldError(f"{label}必须是整数：“{clean_text(value)}”")
        number = int(text.split(".")[0])
    if abs(number) > MAX_WHOLE:
        raise FieldError(f"{label}过大：{number}")
    return number


def parse_minutes(value, label="预计到账(分钟)"):
    """'5' / '5分钟' / '1小时' / '秒到' -> minutes."""
    if not isinstance(value, str):
        return _not_negative(parse_whole(value, label), label)
    text = clean_text(value)
    if text in INSTANT_WORDS:
        return 0
    match = _MINUTES.fullmatch(text.replace(" ", ""))
    if not match:
        raise FieldError(f"{label}格式错误：“{text}”，请填分钟数，如 5")
    minutes = int(match.group(1)) * (60 if (match.group(2) or "").lower() in ("小时", "h") else 1)
    if minutes > 60 * 24 * 30:
        raise FieldError(f"{label}过大：{minutes} 分钟")
    return minutes


def parse_face_value(value, label="面值"):
    """'10元' / '¥10' / 10.0 -> Decimal('10.00'), more than zero."""
    amount = parse_money_cell(value, label)
    if amount <= 0:
        raise FieldError(f"{label}必须大于 0")
    return amount


def parse_tier(value, label="面值档位"):
    """'1-10元' / '1～10' / '1至10元' -> '1-10元'; '10' -> '10元'; other short labels kept."""
    text = clean_text(value)
    match = _TIER.fullmatch(text.replace(" ", ""))
    if match:
        low, high = Decimal(match.group(1)), Decimal(match.group(2))
        if low > high:
            raise FieldError(f"{label}“{text}”下限大于上限")
        return f"{_plain(low)}-{_plain(high)}元"
    if _PLAIN_MONEY.fullmatch(text.removesuffix("元")):
        return f"{_plain(Decimal(text.removesuffix('元')))}元"
    if len(text) > 32:
        raise FieldError(f"{label}太长，最多 32 个字")
    return text


def is_range(value):
    """Whether a 面值 cell really holds a tier such as '1-10元'."""
    return isinstance(value, str) and _TIER.fullmatch(clean_text(value).replace(" ", "")) is not None


def parse_datetime(value, label, end_of_day=False):
    """2026-12-31, 2026/12/31, 2026年12月31日, 20261231, Excel serials, Excel dates.

    With end_of_day, a date without a time means the whole day: the next
    midnight, since a promo's end is exclusive.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return _at_midnight(value, end_of_day)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_serial(value, label, end_of_day)
    text = clean_text(value)
    if _SERIAL.fullmatch(text):
        return _from_serial(float(text), label, end_of_day)
    match = _DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if match:
        year, month, day, hour, minute, second = match.groups() + (None,) * (6 - len(match.groups()))
        try:
            day_value = date(int(year), int(month), int(day))
            if hour is None:
                return _at_midnight(day_value, end_of_day)
            return datetime.combine(day_value, time(int(hour), int(minute), int(second or 0)))
        except ValueError:
            pass  # 2026-02-30, 25:00
    raise FieldError(f"{label}“{text}”不是有效日期，请写成 2026-12-31 或 2026-12-31 23:59")


def parse_bool(value, label):
    if isinstance(value, bool):
        return value
    text = clean_text(value).lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise FieldError(f"{label}只能填“是”或“否”，当前为“{text}”")


def parse_delivery(value, label="发货方式"):
    """Delivery words -> 'card' | 'topup' | 'manual' (DeliveryType values)."""
    text = clean_text(value)
    kind = DELIVERY_BY_WORD.get(text.lower())
    if kind is None:
        raise FieldError(f"{label}“{text}”无法识别，可填：自动发卡密、充值到账号、人工发货")
    return kind


def _not_negative(number, label):
    if number < 0:
        raise FieldError(f"{label}不能为负数")
    return number


def _plain(number):
    """Decimal('10.50') -> '10.5', Decimal('10') -> '10'."""
    return format(number.normalize(), "f")


def _at_midnight(day, end_of_day):
    midnight = datetime.combine(day, time())
    return midnight + timedelta(days=1) if end_of_day else midnight


def _from_serial(serial, label, end_of_day):
    # 20000..80000 is 1954..2119: anything else is a number, not a date.
    if not 20000 <= serial <= 80000:
        raise FieldError(f"{label}“{serial:g}”不是有效日期，请写成 2026-12-31 或 2026-12-31 23:59")
    moment = EXCEL_EPOCH + timedelta(days=serial)
    if float(serial).is_integer():
        return _at_midnight(moment.date(), end_of_day)
    return moment.replace(microsecond=0) + timedelta(seconds=round(moment.microsecond / 1e6))
