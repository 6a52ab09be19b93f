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

``POST /orders`` ``{"order_no", "code", "quantity", "fields", "max_unit_cost", "notify_url"}``
    Paid from the station's balance at once; idempotent on ``order_no`` (the
    分站's order number): 201 with a new order, 200 with the first one when
    the number is already there. Answer: the order (below).

``GET /orders/{order_no}``
    The order: ``{"order_no", "order_id", "code", "quantity", "unit_price",
    "amount", "status": processing|success|failed, "refunded",
    "refunded_amount", "cards":
    [{"number", "password"}], "note", "message", "created_at",
    "finished_at"}``; ``cards`` only once ``success``.

Callback: when the order is final the 主站 POSTs the same order JSON to
``notify_url``, signed with the same four headers (the path signed is the
notify URL's path and query); the 分站 answers 200 with the body ``success``.

Errors: a non-2xx status with ``{"error": {"code", "message"}}``, ``message``
in Chinese for the 分站 admin. Codes: 401 ``missing_header``,
``bad_timestamp``, ``expired``, ``bad_nonce``, ``unknown_app``,
``bad_signature``, ``nonce_reused``; 403 ``station_disabled``; 400
``bad_request``; 404 ``not_found``; 429 ``rate_limited`` (Retry-After); 503
``unavailable``; ordering: 402 ``insufficient_balance``, 409
``out_of_stock``, ``product_unavailable``, ``price_above_limit``,
``invalid_account``, ``duplicate_order`` (the number was used for other
goods). A refusal creates and takes nothing.
"""
import json
from datetime import timezone
from urllib.parse import quote, urlencode, urlsplit

from kamen.suppliers.base import (
    Ambiguous,
    AuthFailed,
    ConnectionInfo,
    Delivery,
    DuplicateOrder,
    InsufficientBalance,
    InvalidAccount,
    Level,
    OrderResult,
    OrderStatus,
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
from kamen.suppliers.http import HttpClient, loads, retry_after
from kamen.suppliers.kamen_signing import HEADER_APP_ID, VerificationError, sign_headers, verify
from kamen.suppliers.parsing import (
    BadValue,
    buyer_field,
    collect,
    count,
    key_of,
    money,
    optional_money,
    optional_text,
    redact,
    reply_check,
    text,
    utc_datetime,
    value,
)

API_PREFIX = "/api/upstream/v1"
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 500
MAX_STOCK_CODES = 500

class NotFound(SupplierError):
    """404 not_found: the 主站 has no such order (for this station)."""


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
    "not_found": NotFound,
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

    def call(self, method, endpoint, *, query=None, payload=None, once=False):
        query = urlencode({k: v for k, v in (query or {}).items() if v is not None})
        target = endpoint + (f"?{query}" if query else "")
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = sign_headers(self.app_id, self.secret, method, self.signed_prefix + target, body)
        return self.http.request(
            method, API_PREFIX + target, body=body or None, headers=headers,
            content_type="application/json" if payload is not None else None, once=once,
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

    def place_order(self, idempotency_key, code, qty, fields, max_unit_cost):
        payload = {"order_no": str(idempotency_key), "code": code, "quantity": int(qty),
                   "fields": {str(k): str(v) for k, v in (fields or {}).items()}}
        if max_unit_cost is not None:
            payload["max_unit_cost"] = str(max_unit_cost)
        if self.callback_url:
            payload["notify_url"] = self.callback_url
        exchange = {"request": payload}
        try:
            data = self.call("POST", "/orders", payload=payload, once=True)
        except Ambiguous as exc:
            return OrderResult(OrderStatus.UNKNOWN, message=exc.message, idempotency_key=str(idempotency_key),
                               raw=_redacted(exchange))
        try:
            return _order_result(data, {**exchange, "reply": data}, placing=True)
        except BadValue as exc:  # it was placed, but the answer cannot be read: ask again later
            return OrderResult(OrderStatus.UNKNOWN, message=f"主站返回数据有误：{exc}；需查询确认，切勿重复下单",
                               idempotency_key=str(idempotency_key), raw=_redacted(exchange))

    def query_order(self, idempotency_key, supplier_order_id=None):
        target = f"/orders/{quote(str(idempotency_key), safe='')}"
        exchange = {"request": {"order_no": str(idempotency_key)}}
        try:
            data = self.call("GET", target)
        except NotFound as exc:
            # Not proof of failure: a create may still be on its way. The caller decides after its deadline.
            return OrderResult(OrderStatus.UNKNOWN, message=f"{exc.message}：主站暂查无此订单号",
                               idempotency_key=str(idempotency_key), raw=_redacted(exchange))
        with reply_check():
            return _order_result(data, {**exchange, "reply": data}, placing=False)

    def parse_callback(self, headers, body):
        """The 主站's signed POST (the same four headers as our requests, over our callback URL's path)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        parts = urlsplit(self.callback_url or "")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lowered = {str(k).lower(): v for k, v in dict(headers).items()}
        if lowered.get(HEADER_APP_ID.lower()) != self.app_id:
            raise AuthFailed("主站订单回调的 AppID 与本货源不符，已拒绝（可能是伪造的通知）")
        try:
            # Replays are harmless (the same final state again), so no nonce store here.
            verify(headers, "POST", target, body, lambda _app_id: self.secret, lambda *_: False)
        except VerificationError as exc:
            raise AuthFailed(f"主站订单回调签名校验失败，已拒绝：{exc.message}") from None
        try:
            data = loads(body)
        except ValueError:
            raise Transient("主站订单回调不是合法的 JSON") from None
        with reply_check():
            return _order_result(data, {"callback": data}, placing=False)

    def test_connection(self):
        data = self.call("GET", "/balance")
        with reply_check():
            balance = money(data, "balance", signed=True)
        return ConnectionInfo.connected(data.get("station") or None, balance)


ORDER_STATES = {"processing": OrderStatus.PROCESSING, "success": OrderStatus.SUCCESS, "failed": OrderStatus.FAILED}


def _redacted(exchange):
    """The exchange for the order timeline: card passwords and numbers and hand-delivered notes masked."""
    def mask(data):
        if isinstance(data, dict):
            out = {}
            for key, item in data.items():
                if key == "cards" and isinstance(item, list):
                    out[key] = f"{len(item)} 张（已隐去）"
                elif key == "note" and item:
                    out[key] = "***"
                else:
                    out[key] = mask(item)
            return out
        if isinstance(data, list):
            return [mask(v) for v in data]
        return data

    return redact(mask(exchange))


def _order_result(data, exchange, *, placing):
    if not isinstance(data, dict):
        raise BadValue("订单数据应为 JSON 对象")
    state = text(data, "status")
    status = ORDER_STATES.get(state)
    if status is None:
        raise BadValue(f"未知的订单状态“{state}”")
    if placing and status is OrderStatus.PROCESSING:
        status = OrderStatus.ACCEPTED
    if status is OrderStatus.SUCCESS and (optional_money(data, "refunded_amount") or 0) > 0:
        status = OrderStatus.PARTIAL  # part delivered, the rest's price back on our balance
    cards = []
    if status in (OrderStatus.SUCCESS, OrderStatus.PARTIAL):
        rows = data.get("cards") or []
        if not isinstance(rows, list) or not all(isinstance(c, dict) for c in rows):
            raise BadValue("字段“cards”应为数组")
        cards = [{"number": c.get("number") or None, "password": c.get("password") or None, "expires": None}
                 for c in rows]
    message = str(data.get("message") or "")
    note = str(data.get("note") or "")
    if note:
        message = f"{message}：{note}" if message else note
    return OrderResult(status, supplier_order_id=optional_text(data, "order_id"), cards=cards, message=message,
                       cost=optional_money(data, "unit_price"), idempotency_key=optional_text(data, "order_no"),
                       raw=_redacted(exchange))


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
