"""acg-faka 共享店铺: the docking API of a widely deployed PHP card shop, so a
kamen 分站 can stock goods from such a 主站. Protocol: docs/acg-faka.md.

Form-encoded POSTs only; every reply is HTTP 200 with ``code`` 200 (success)
or 0 and a ``msg``. ``app_id`` is our user id on the 主站 and ``app_key`` the
16-hex key that signs (and, as the PHP client does, is also posted).
"""
import hashlib
import re
from decimal import Decimal
from urllib.parse import unquote_plus, urlencode

from kamen.suppliers.base import (
    Ambiguous,
    ConnectionInfo,
    Delivery,
    DuplicateOrder,
    InvalidAccount,
    Level,
    OrderResult,
    OrderStatus,
    OutOfStock,
    Page,
    PriceAboveLimit,
    ProductUnavailable,
    SupplierError,
    RemoteProduct,
    StockLevel,
    SupplierAdapter,
    Transient,
)
from kamen.money import round_money
from kamen.suppliers.http import HttpClient
from kamen.suppliers.parsing import (
    picture_address,
    BadValue,
    buyer_field,
    collect,
    count,
    error_from_message,
    json_list,
    key_of,
    money,
    optional_money,
    optional_text,
    redact,
    reply_check,
    text,
)

CONNECT = "/shared/authentication/connect"
ITEMS = "/shared/commodity/items"
INVENTORY = "/shared/commodity/inventory"
TRADE = "/shared/commodity/trade"
QUERY = "/shared/commodity/query"
# What a trade's ``secret`` says while the 主站 still has to deliver by hand.
PENDING_TEXT = "正在发货中"
# Order refusals worded by the 主站 that the shared message rules do not cover;
# checked before them (parsing.error_from_message). docs/acg-faka.md, "Orders".
ORDER_ERRORS = (
    (DuplicateOrder, ("重复", "已存在")),
    ("not found", ("订单不存在",)),
    (InvalidAccount, ("请填写", "格式不正确", "格式错误", "联系方式")),
)
SUCCESS = 200
# delivery_way: 0 automatic card codes; 1 fulfilled by hand on the 主站 (top-ups, services).
DELIVERY_WAYS = {0: Delivery.CARD, 1: Delivery.TOPUP}
# Products with variants (种类/race) price each variant in their INI config; a
# trade must name the variant. They are rejected with a reason, not guessed at
# (docs/acg-faka.md, "Variants").
_RACES = re.compile(r"^\s*\[category\]\s*$", re.MULTILINE)


def _scalar(v):
    if isinstance(v, bool):
        return "1" if v else "0"  # as PHP's http_build_query writes booleans
    return str(v)


def form_pairs(params):
    """Flatten params the way PHP's http_build_query does: ``sku[k]=v``; None is left out."""
    pairs = []
    for key, v in params.items():
        if v is None:
            continue
        if isinstance(v, dict):
            pairs += [(f"{key}[{sub}]", _scalar(x)) for sub, x in v.items() if x is not None]
        elif isinstance(v, (list, tuple)):
            pairs += [(f"{key}[{i}]", _scalar(x)) for i, x in enumerate(v) if x is not None]
        else:
            pairs.append((key, _scalar(v)))
    return pairs


def sign(params, app_key):
    """Sorted ``k=v&…`` of every field but sign (exactly "" dropped), ``&key=``, URL-decoded, md5."""
    kept = {k: v for k, v in sorted(params.items()) if k != "sign" and v != ""}
    plain = unquote_plus(urlencode(form_pairs(kept)) + "&key=" + app_key)
    return hashlib.md5(plain.encode("utf-8")).hexdigest()


class AcgFakaAdapter(SupplierAdapter):
    kind = "acgfaka"

    def __init__(self, base_url, app_id, app_key, timeout=None, *, session=None):
        self.http = HttpClient(base_url, timeout, session=session)
        self.app_id = str(app_id)
        self.app_key = app_key

    def call(self, path, params=None, *, once=False):
        """POST one signed form; ``once`` (a trade): a reply lost or garbled after sending is Ambiguous."""
        data = {**(params or {}), "app_id": self.app_id, "app_key": self.app_key}
        data["sign"] = sign(data, self.app_key)
        reply = self.http.request("POST", path, body=urlencode(form_pairs(data)).encode("ascii"),
                                  content_type="application/x-www-form-urlencoded", once=once)
        if not isinstance(reply, dict) or "code" not in reply:
            problem = "货源返回数据有误：缺少字段“code”"
            raise Ambiguous(problem + "；订单可能已提交，需查询确认") if once else Transient(problem)
        if count(reply["code"]) != SUCCESS:
            raise _error(reply.get("msg"), reply["code"])
        return reply.get("data")

    # --- ordering (no callbacks: poll query_order) ---------------------------
    def place_order(self, idempotency_key, code, qty, fields, max_unit_cost):
        key, qty = str(idempotency_key), int(qty)
        unit = self._price_check(code, qty, max_unit_cost)
        fields = {k: v for k, v in (fields or {}).items() if v not in (None, "")}
        contact = str(fields.pop("contact", "") or key)  # the 主站 requires one; our order number finds it there
        params = {**fields, "shared_code": code, "contact": contact, "num": qty, "request_no": key}
        raw = {"request": {"path": TRADE, "form": params}}
        try:
            data = self.call(TRADE, params, once=True)
        except Ambiguous as exc:
            return OrderResult(OrderStatus.UNKNOWN, message=exc.message, idempotency_key=key, raw=redact(raw))
        except DuplicateOrder as exc:
            # request_no already used: that trade is ours, but acg-faka finds orders only by its tradeNo.
            return OrderResult(OrderStatus.UNKNOWN, idempotency_key=key, raw=redact(raw),
                               message=f"{exc.message}：该订单号已在主站下过单，请按主站订单号查询或到主站核对，切勿重新下单")
        raw["reply"] = data
        if not isinstance(data, dict) or not optional_text(data, "tradeNo"):
            return OrderResult(OrderStatus.UNKNOWN, message="货源回复缺少主站订单号（tradeNo），订单可能已提交，需核对",
                               idempotency_key=key, raw=redact(raw))
        cost = unit
        if data.get("amount") not in (None, "") and qty:
            try:
                cost = round_money(money(data, "amount") / qty)
            except BadValue:
                pass
        return self._delivered(data, qty, key, raw, cost=cost)

    def query_order(self, idempotency_key, supplier_order_id=None):
        key = str(idempotency_key)
        if not supplier_order_id:
            return OrderResult(OrderStatus.UNKNOWN, idempotency_key=key,
                               message="acg-faka 只能按主站订单号（tradeNo）查询；下单回复未收到，请到主站核对该订单")
        raw = {"request": {"path": QUERY, "form": {"tradeNo": supplier_order_id}}}
        try:
            data = self.call(QUERY, {"tradeNo": supplier_order_id})
        except OrderNotFound as exc:
            return OrderResult(OrderStatus.UNKNOWN, message=exc.message, idempotency_key=key, raw=raw)
        raw["reply"] = data
        return self._delivered({**(data if isinstance(data, dict) else {}), "tradeNo": supplier_order_id},
                               None, key, raw, cost=None)

    def parse_callback(self, headers, body):
        raise SupplierError("acg-faka 共享店铺不发送订单回调：订单结果靠查询订单获取")

    def _price_check(self, code, qty, max_unit_cost):
        """What the 主站 will debit per unit (inventory's factory_price), refused above the limit or stock."""
        data = self.call(INVENTORY, {"sharedCode": code, "race": ""})
        with reply_check():
            unit = money(data, "factory_price")
            delivery = _delivery(data)
        if data.get("is_category") in (True, 1, "1") or unit == 0:
            raise ProductUnavailable("多规格（种类）商品暂不支持自动下单，请在主站为每个规格单独建商品")
        if max_unit_cost is not None and unit > Decimal(max_unit_cost):
            raise PriceAboveLimit(f"主站拿货价 ¥{unit} 高于允许的最高成本 ¥{Decimal(max_unit_cost)}，未下单")
        stock = count(data.get("count"))
        if delivery is Delivery.CARD and stock is not None and stock < qty:
            raise OutOfStock(f"主站库存不足：剩余 {stock}，需要 {qty}")
        return unit

    def _delivered(self, data, qty, key, raw, cost):
        """Card codes from ``secret`` (one per line); the 正在发货中 text means still processing."""
        secret = str(data.get("secret") or "").strip()
        raw = redact(raw)
        order_id = optional_text(data, "tradeNo")
        if not secret or PENDING_TEXT in secret:
            return OrderResult(OrderStatus.PROCESSING, supplier_order_id=order_id, cost=cost, idempotency_key=key,
                               message=secret or "主站尚未发货", raw=raw)
        cards = [{"number": line.strip(), "password": None, "expires": None}
                 for line in secret.splitlines() if line.strip()]
        status = OrderStatus.PARTIAL if qty and len(cards) < qty else OrderStatus.SUCCESS
        return OrderResult(status, supplier_order_id=order_id, cards=cards, cost=cost, idempotency_key=key, raw=raw)

    def list_products(self, cursor=None, updated_after=None):
        tree = self.call(ITEMS)
        if not isinstance(tree, list):
            raise Transient("货源返回数据有误：商品分类应为数组")
        rows = []
        for category in tree:
            children = category.get("children") if isinstance(category, dict) else None
            if not isinstance(children, list):
                continue
            name = optional_text(category, "name")
            rows += [(name, child) for child in children]
        items, rejected = collect(rows, lambda row: self._product(*row), lambda row: key_of(row[1], "code"))
        return Page(items=items, next_cursor=None, rejected=rejected)

    def get_stock(self, codes):
        levels = {}
        for code in codes:
            try:
                data = self.call(INVENTORY, {"sharedCode": code, "race": ""})
            except ProductUnavailable:
                levels[code] = StockLevel(Level.OUT)
                continue
            with reply_check():
                levels[code] = _stock(_delivery(data), data.get("count"))
        return levels

    def balance(self):
        return self.test_connection().balance

    def test_connection(self):
        data = self.call(CONNECT)
        with reply_check():
            balance = money(data, "balance", signed=True)
        return ConnectionInfo.connected(optional_text(data, "shopName"), balance)

    def _product(self, category_name, row):
        delivery = _delivery(row)
        if _RACES.search(str(row.get("config") or "")):
            raise BadValue("多规格（种类）商品暂不支持同步，请在主站为每个规格单独建商品")
        # user_price is what the 主站 charges us; factory_price is its own cost.
        cost = money(row, "user_price")
        widget = _widget(row.get("widget"))
        return RemoteProduct(
            code=text(row, "code"),
            name=text(row, "name"),
            category_path=(category_name,) if category_name else (),
            face_value=None,
            cost_price=cost,
            market_price=optional_money(row, "price"),
            stock=_stock(delivery, row.get("stock")),
            available=True,  # items lists only goods the 主站 sells through the API
            delivery=delivery,
            field_template=widget or None,
            buyer_fields=[buyer_field(f.get("name"), f.get("cn"), f.get("regex"), f.get("placeholder") or f.get("error"))
                          for f in widget],
            cover_url=picture_address(row.get("cover"), self.http.base_url),
            raw=row,
        )


class OrderNotFound(SupplierError):
    """The 主站 has no order under that tradeNo for us."""


def _error(message, code):
    text_ = str(message or "").strip()
    for error, words in ORDER_ERRORS:
        if any(word in text_ for word in words):
            error = OrderNotFound if error == "not found" else error
            return error(f"货源返回错误：{text_}（代码 {code}）")
    return error_from_message(message, code)


def _widget(raw):
    """The buyer fields a trade needs (sent back by ``name``): a JSON list of
    {cn, name, placeholder, type, regex, error}; null or "{}" when there are none."""
    if raw in ("{}", {}):
        return []
    fields = json_list(raw, "买家填写项（widget）")
    if not all(isinstance(f, dict) and str(f.get("name") or "").strip() for f in fields):
        raise BadValue("买家填写项（widget）缺少字段名 name")
    return fields


def _delivery(row):
    way = count(row.get("delivery_way") if isinstance(row, dict) else None)
    if way not in DELIVERY_WAYS:
        raise BadValue(f"未知的发货方式 delivery_way={way!r}")
    return DELIVERY_WAYS[way]


def _stock(delivery, raw_count):
    """Card stock is a count (maybe a string); hand-fulfilled goods have none to count."""
    if delivery is not Delivery.CARD:
        return StockLevel(Level.IN)
    qty = count(raw_count)
    if qty is None:
        return StockLevel(Level.UNKNOWN)
    return StockLevel(Level.IN if qty > 0 else Level.OUT, max(qty, 0))
