"""Reading supplier replies defensively, shared by all adapters.

One bad product is rejected with a reason and the rest of the page is kept;
a bad reply as a whole (no balance, a list that is not a list) is Transient.
"""
import json
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin

from kamen.money import round_money
from kamen.suppliers.base import (
    AuthFailed,
    InsufficientBalance,
    OutOfStock,
    ProductUnavailable,
    RateLimited,
    RejectedItem,
    SupplierError,
    Transient,
)


class BadValue(ValueError):
    """A field is missing or unusable; str() is a Chinese reason."""


def value(data, key):
    if not isinstance(data, dict):
        raise BadValue(f"应为对象，收到 {type(data).__name__}")
    if key not in data or data[key] is None:
        raise BadValue(f"缺少字段“{key}”")
    return data[key]


def text(data, key):
    result = str(value(data, key)).strip()
    if not result:
        raise BadValue(f"字段“{key}”为空")
    return result


def optional_text(data, key):
    result = data.get(key)
    if result is None:
        return None
    return str(result).strip() or None


# A remote price above this is a supplier's typo or garbage, not a product.
MAX_PRICE = Decimal("1000000")


def money(data, key, *, signed=False):
    """A Decimal from a JSON number (already Decimal/int) or a numeric string,
    rounded half-up to 0.01 (so "9.505" is 9.51 on every sync, never a change);
    negative only when ``signed`` (a balance may be overdrawn, a price may not)."""
    raw = value(data, key)
    if isinstance(raw, bool) or isinstance(raw, float):
        raise BadValue(f"字段“{key}”不是有效金额：{raw!r}")
    try:
        amount = Decimal(str(raw).strip()) if isinstance(raw, str) else Decimal(raw)
    except (InvalidOperation, TypeError, ValueError):
        raise BadValue(f"字段“{key}”不是有效金额：{raw!r}") from None
    if not amount.is_finite():
        raise BadValue(f"字段“{key}”不是有效金额：{raw!r}")
    if amount < 0 and not signed:
        raise BadValue(f"字段“{key}”为负数：{amount}")
    if amount > MAX_PRICE and not signed:
        raise BadValue(f"字段“{key}”金额过大：{amount}（超过 {MAX_PRICE}）")
    return round_money(amount)


def optional_money(data, key):
    if data.get(key) in (None, ""):
        return None
    return money(data, key)


# A regex written for PHP or JavaScript: "/^\d+$/i".
_DELIMITED = re.compile(r"^/(?P<body>.*)/[a-zA-Z]*$", re.DOTALL)


def buyer_field(key, label, pattern="", hint=""):
    """One buyer field as Product.buyer_fields holds it.

    A supplier's pattern is kept only when Python can use it (delimiters
    stripped); one we cannot read is dropped, never a reason to refuse the
    product: the supplier checks the value again when we order."""
    key, label = str(key or "").strip(), str(label or "").strip()
    if not key:
        raise BadValue("买家填写项缺少字段名")
    pattern = str(pattern or "").strip()
    delimited = _DELIMITED.match(pattern)
    if delimited:
        pattern = delimited["body"]
    try:
        re.compile(pattern)
    except re.error:
        pattern = ""
    return {"key": key[:64], "label": (label or key)[:60], "pattern": pattern[:500],
            "hint": str(hint or "").strip()[:200]}


def json_list(raw, what):
    """A list given as JSON text (or already decoded); None/"" is empty."""
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadValue(f"{what}不是合法的 JSON") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadValue(f"{what}应为数组")
    return raw


def count(raw):
    """An int from an int or a digit string ("12"); None when it is neither."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, (str, Decimal)):
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            return None
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    return None


def utc_datetime(raw):
    """ISO 8601 ('2024-05-01T12:00:00Z' or with an offset) -> naive UTC."""
    try:
        parsed = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"时间格式错误：{raw!r}") from None
    if parsed.tzinfo is None:
        raise BadValue(f"时间缺少时区：{raw!r}")
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


def collect(rows, build, code_of):
    """Build products from rows; rows that fail become RejectedItems.

    ``code_of(row)`` must cope with any row (it is asked about the bad ones).
    """
    items, rejected = [], []
    for row in rows:
        try:
            items.append(build(row))
        except BadValue as exc:
            code = code_of(row)
            rejected.append(RejectedItem(code=None if code is None else str(code), reason=str(exc)))
    return items, rejected


def key_of(row, key):
    """``row[key]`` when row is a dict, else None: a safe ``code_of`` for collect."""
    return row.get(key) if isinstance(row, dict) else None


@contextmanager
def reply_check():
    """A bad value in a reply as a whole: the supplier is misbehaving, try again later."""
    try:
        yield
    except BadValue as exc:
        raise Transient(f"货源返回数据有误：{exc}") from None


# Checked in order: "商户ID不存在" is an auth problem, not a missing product.
_MESSAGE_RULES = (
    (AuthFailed, ("签名", "密钥", "商户", "app_key", "appkey", "授权", "token", "ip白名单", "白名单")),
    (InsufficientBalance, ("余额不足", "余额不够")),
    (OutOfStock, ("库存不足", "缺货", "断货", "无库存")),
    (RateLimited, ("频繁", "频率", "限流")),
    (ProductUnavailable, ("商品不存在", "停售", "下架", "维护", "未上架", "不存在")),
    (Transient, ("繁忙", "系统异常", "稍后", "超时")),
)


def error_from_message(message, code=None):
    """Classify a supplier's own error text; protocols word them alike."""
    message = str(message or "").strip() or "未知错误"
    lowered = message.lower()
    shown = f"货源返回错误：{message}" + (f"（代码 {code}）" if code not in (None, "") else "")
    for cls, words in _MESSAGE_RULES:
        if any(word in lowered for word in words):
            return cls(shown)
    return SupplierError(shown)


# Request and reply fields never shown in an order timeline: keys, signatures,
# buyers' passwords, card codes (Fulu card_*, acg-faka secret).
_REDACTED = {"app_key", "sign", "charge_password", "password", "card_pwd", "card_number", "secret"}


def redact(data):
    """A JSON-ready copy of a request or reply (amounts as text) with keys,
    signatures and card secrets masked."""
    if isinstance(data, Decimal):
        return str(data)
    if isinstance(data, dict):
        return {k: ("***" if k in _REDACTED and v not in (None, "") else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def picture_address(raw, base_url):
    """A picture address as a shop page may use it: absolute https (the shop's
    pages load pictures over https only), a path on the supplier's own host
    joined to it; anything else (empty, http, javascript:, too long) is None."""
    address = str(raw or "").strip()
    if address.startswith("/") and not address.startswith("//"):
        address = urljoin(base_url + "/", address)
    if not address.startswith("https://") or len(address) > 500 or any(c.isspace() or c in "\"'<>" for c in address):
        return None
    return address
