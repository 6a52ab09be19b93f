"""Client for kamen's own upstream API: a kamen 分站 buying from a kamen 主站.

Protocol (the 主站 serves it; signing and ``verify`` live in kamen_signing):

Base ``{site}/api/upstream/v1``. Every request carries the four X-Kamen-*
signature headers; JSON bodies are UTF-8; money is always a decimal *string*
("9.50"), times are ISO 8601 UTC ("2024-05-01T12:00:00Z").

``GET /products?cursor=&limit=&updated_after=``
    ``limit`` 1-500 (default 200); ``cursor`` opaque, from the previous page;
    ``updated_after`` ISO 8601: only products changed after it (incremental
    sync; absent means everything, and goods that stop being offered are
    simply no longer listed). Answer ``{"items": [product…], "next_cursor":
    str | null}``. A product::

        {"code": "P100", "name": "腾讯Q币10元", "category": ["游戏", "腾讯"],
         "face_value": "10.00", "price": "9.50", "market_price": "10.00",
         "stock": {"level": "IN", "qty": 37}, "available": true,
         "delivery": "card", "fields": null, "updated_at": "2024-05-01T12:00:00Z"}

    ``price`` is this station's price (分站价), ``level`` IN|LOW|OUT|UNKNOWN,
    ``qty`` an int or null (a 主站 may hide counts), ``delivery`` card|topup,
    ``fields`` null or a list of ``{"name", "label", "required", "pattern",
    "hint"}`` buyer fields (``pattern`` a regular expression or "");
    ``face_value``, ``market_price`` may be null.

``POST /stock`` ``{"codes": [...]}`` (at most 500)
    ``{"levels": {code: {"level", "qty"}}}``; codes this station may not buy
    come back as ``{"level": "OUT", "qty": 0}``.

``GET /balance``
    ``{"balance": "123.45", "station": "分站名"}`` (the prepaid balance the
    主站 admin tops up).

Errors: a non-2xx status with ``{"error": {"code", "message"}}``, ``message``
in Chinese for the 分站 admin. Codes: 401 ``missing_header``,
``bad_timestamp``, ``expired``, ``bad_nonce``, ``unknown_app``,
``bad_signature``, ``nonce_reused``; 403 ``station_disabled``; 400
``bad_request``; 404 ``not_found``; 429 ``rate_limited`` (Retry-After); 503
``unavailable``. Reserved for ordering (a later issue): 402
``insufficient_balance``, 409 ``out_of_stock``, ``product_unavailable``,
``price_above_limit``, ``invalid_account``, ``duplicate_order``.
"""
import json
from datetime import timezone
from urllib.parse import urlencode, urlsplit

from kamen.suppliers.base import (
    AuthFailed,
    ConnectionInfo,
    Delivery,
    DuplicateOrder,
    InsufficientBalance,
    InvalidAccount,
    Level,
    OutOfStock,
    Page,
    PriceAboveLimit,
    ProductUnavailable,
    RateLimited,
    RemoteProduct,
    StockLevel,
    SupplierAdapter,
    SupplierError,
    Transient,
)
from kamen.suppliers.http import HttpClient, retry_after
from kamen.suppliers.kamen_signing import sign_headers
from kamen.suppliers.parsing import (
    BadValue,
    buyer_field,
    collect,
    count,
    key_of,
    money,
    optional_money,
    reply_check,
    text,
    utc_datetime,
    value,
)

API_PREFIX = "/api/upstream/v1"
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 500
MAX_STOCK_CODES = 500

ERROR_CLASSES = {
    "missing_header": AuthFailed,
    "bad_timestamp": AuthFailed,
    "expired": AuthFailed,
    "bad_nonce": AuthFailed,
    "unknown_app": AuthFailed,
    "bad_signature": AuthFailed,
    "nonce_reused": AuthFailed,
    "station_disabled": AuthFailed,
    "bad_request": SupplierError,
    "not_found": SupplierError,
    "rate_limited": RateLimited,
    "unavailable": Transient,
    "insufficient_balance": InsufficientBalance,
    "out_of_stock": OutOfStock,
    "product_unavailable": ProductUnavailable,
    "price_above_limit": PriceAboveLimit,
    "invalid_account": InvalidAccount,
    "duplicate_order": DuplicateOrder,
}


def error_body(code, message):
    """The JSON error body the 主站 answers with (its views use this too)."""
    return {"error": {"code": code, "message": message}}


def _error_from_reply(resp, data):
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or error.get("code") not in ERROR_CLASSES:
        return None
    cls = ERROR_CLASSES[error["code"]]
    message = f"主站返回错误：{error.get('message') or error['code']}（{error['code']}）"
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after(resp))
    return cls(message)


class KamenUpstreamAdapter(SupplierAdapter):
    kind = "kamen"
    supports_updated_after = True

    def __init__(self, base_url, app_id, secret, timeout=None, *, page_size=DEFAULT_PAGE_SIZE, session=None):
        base_url = base_url.rstrip("/")
        if base_url.endswith(API_PREFIX):  # the admin pasted the API URL, not the site
            base_url = base_url[: -len(API_PREFIX)]
        self.http = HttpClient(base_url, timeout, error_from_reply=_error_from_reply, session=session)
        # A 主站 mounted under a sub-path sees (and signs) that prefix too.
        self.signed_prefix = urlsplit(base_url).path + API_PREFIX
        self.app_id = app_id
        self.secret = secret
        self.page_size = min(page_size, MAX_PAGE_SIZE)

    def call(self, method, endpoint, *, query=None, payload=None):
        query = urlencode({k: v for k, v in (query or {}).items() if v is not None})
        target = endpoint + (f"?{query}" if query else "")
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = sign_headers(self.app_id, self.secret, method, self.signed_prefix + target, body)
        return self.http.request(
            method, API_PREFIX + target, body=body or None, headers=headers,
            content_type="application/json" if payload is not None else None,
        )

    def list_products(self, cursor=None, updated_after=None):
        if updated_after is not None and updated_after.tzinfo is not None:
            updated_after = updated_after.astimezone(timezone.utc).replace(tzinfo=None)
        data = self.call("GET", "/products", query={
            "cursor": cursor,
            "limit": self.page_size,
            "updated_after": None if updated_after is None else updated_after.isoformat() + "Z",
        })
        with reply_check():
            rows = value(data, "items")
        if not isinstance(rows, list):
            raise Transient("货源返回数据有误：items 应为数组")
        items, rejected = collect(rows, _product, lambda row: key_of(row, "code"))
        next_cursor = data.get("next_cursor")
        return Page(items=items, next_cursor=str(next_cursor) if next_cursor else None, rejected=rejected)

    def get_stock(self, codes):
        codes = list(codes)
        levels = {}
        for start in range(0, len(codes), MAX_STOCK_CODES):
            chunk = codes[start:start + MAX_STOCK_CODES]
            data = self.call("POST", "/stock", payload={"codes": chunk})
            with reply_check():
                answered = value(data, "levels")
                for code in chunk:
                    entry = answered.get(code) if isinstance(answered, dict) else None
                    levels[code] = StockLevel(Level.UNKNOWN) if entry is None else _stock(entry)
        return levels

    def balance(self):
        return self.test_connection().balance

    def test_connection(self):
        data = self.call("GET", "/balance")
        with reply_check():
            balance = money(data, "balance", signed=True)
        return ConnectionInfo.connected(data.get("station") or None, balance)


def _stock(entry):
    level = text(entry, "level")
    if level not in Level.__members__:
        raise BadValue(f"未知的库存状态“{level}”")
    qty = entry.get("qty")
    if qty is not None and count(qty) is None:
        raise BadValue(f"库存数量不是整数：{qty!r}")
    return StockLevel(Level[level], None if qty is None else count(qty))


def _product(row):
    category = row.get("category") or []
    if not isinstance(category, list):
        raise BadValue("字段“category”应为数组")
    delivery = text(row, "delivery")
    if delivery not in {d.value for d in Delivery}:
        raise BadValue(f"未知的发货方式“{delivery}”")
    fields = row.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise BadValue("字段“fields”应为数组")
    available = value(row, "available")
    if not isinstance(available, bool):
        raise BadValue("字段“available”应为 true/false")
    return RemoteProduct(
        code=text(row, "code"),
        name=text(row, "name"),
        category_path=tuple(str(c) for c in category),
        face_value=optional_money(row, "face_value"),
        cost_price=money(row, "price"),
        market_price=optional_money(row, "market_price"),
        stock=_stock(value(row, "stock")),
        available=available,
        delivery=Delivery(delivery),
        field_template=fields or None,
        buyer_fields=[buyer_field(f.get("name"), f.get("label"), f.get("pattern"), f.get("hint")) for f in fields],
        updated_at=utc_datetime(row["updated_at"]) if row.get("updated_at") else None,
        raw=row,
    )
