"""acg-faka 共享店铺: the docking API of a widely deployed PHP card shop, so a
kamen 分站 can stock goods from such a 主站. Protocol: docs/acg-faka.md.

Form-encoded POSTs only; every reply is HTTP 200 with ``code`` 200 (success)
or 0 and a ``msg``. ``app_id`` is our user id on the 主站 and ``app_key`` the
16-hex key that signs (and, as the PHP client does, is also posted).
"""
import hashlib
import re
from urllib.parse import unquote_plus, urlencode

from kamen.suppliers.base import (
    ConnectionInfo,
    Delivery,
    Level,
    Page,
    ProductUnavailable,
    RemoteProduct,
    StockLevel,
    SupplierAdapter,
    Transient,
)
from kamen.suppliers.http import HttpClient
from kamen.suppliers.parsing import (
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
    reply_check,
    text,
)

CONNECT = "/shared/authentication/connect"
ITEMS = "/shared/commodity/items"
INVENTORY = "/shared/commodity/inventory"
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

    def call(self, path, params=None):
        data = {**(params or {}), "app_id": self.app_id, "app_key": self.app_key}
        data["sign"] = sign(data, self.app_key)
        reply = self.http.request("POST", path, body=urlencode(form_pairs(data)).encode("ascii"),
                                  content_type="application/x-www-form-urlencoded")
        if not isinstance(reply, dict) or "code" not in reply:
            raise Transient("货源返回数据有误：缺少字段“code”")
        if count(reply["code"]) != SUCCESS:
            raise error_from_message(reply.get("msg"), reply["code"])
        return reply.get("data")

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
            raw=row,
        )


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
