"""A fake remote supplier for tests and benchmarks.

One Flask app speaks three protocols over the same catalogue: the Fulu-style
gateway, acg-faka 共享店铺 and kamen's upstream API. It checks the Fulu and
acg-faka signatures with its own code (written from docs/fulu.md and docs/acg-faka.md, not
imported from the adapters) so the adapters' signing is tested end to end.

Switches (attributes, set them in a test): ``latency`` (seconds before every
answer; above the client timeout it is a timeout), ``http_status`` (answer
everything with that status), ``html`` (an HTML error page with HTTP 200),
``malformed`` (truncated JSON), ``error`` (a ``SimError``: each protocol's
own error answer), ``bad_reply_sign`` (Fulu reply signature wrong) and
``overrides`` ({product code: {wire field: value or MISSING}}) for missing
fields, negative prices, stock as a string and so on. ``healthy_requests``
delays the failure switches (all but ``overrides``) until that many requests
have been answered normally: a listing that breaks on page 2.

Orders (Fulu ``fulu.order.*`` and acg-faka ``commodity/trade``/``query``):
stock and balance are really taken; a repeated ``customer_order_no`` /
``request_no`` is refused as a duplicate; a price above ``customer_price`` is
refused. ``order_fault`` ("timeout", "5xx", "malformed") records the order
and then answers badly: the order exists, the caller cannot know.
``settle_after`` answers that many order queries with ``processing`` before
``success`` (slow success). ``short_cards`` delivers that many fewer cards.
``fulu_callback`` builds the order notification a gateway would send.
"""
import base64
import hashlib
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote_plus, urlencode

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from kamen.suppliers.kamen_signing import VerificationError, request_target, verify
from kamen.suppliers.kamen_upstream import error_body

MISSING = object()
# What a real acg-faka 主站 sends for a game top-up (a JSON *string*).
ACG_TOPUP_WIDGET = ('[{"cn":"游戏账号","name":"game_account","placeholder":"请输入游戏账号","type":"input",'
                    '"regex":"/^[A-Za-z0-9_]{4,20}$/","error":"账号为4-20位字母数字"},'
                    '{"cn":"区服","name":"server","placeholder":"如 微信1区","type":"input","regex":"","error":""}]')
LOW_STOCK = 5
FULU_SECRET = "0123456789abcdef0123456789abcdef"  # 32 characters: also the card AES key
_DECIMAL_MARK = re.compile(r'"@dec:([-0-9.E+]+)"')


@dataclass
class SimProduct:
    code: str
    name: str
    price: Decimal  # what the buyer (our adapter) pays
    face_value: Decimal
    own_cost: Decimal | None = None  # acg-faka items.factory_price: the 主站's own purchase cost
    market_price: Decimal | None = None
    category: tuple = ("游戏点卡",)
    stock: int | None = 100  # None: not counted
    on_sale: bool = True
    delivery: str = "card"  # card | topup
    cover: str = ""  # acg-faka items.cover: the product picture's address (often a path on the 主站)
    updated_at: datetime = field(default_factory=lambda: datetime(2024, 5, 1, 12, 0, 0))


@dataclass
class SimError:
    message: str
    code: str = "bad_request"  # kamen error code; Fulu/acg-faka only show the message
    status: int = 400  # kamen HTTP status


def make_catalog(n, start=1001):
    """n products with numeric codes (Fulu needs integer ids), alternating card/top-up."""
    base = datetime(2024, 5, 1, 12, 0, 0)
    return [
        SimProduct(
            code=str(start + i),
            name=f"测试商品{i + 1}",
            price=Decimal("9.50") + i,
            face_value=Decimal("10.00") + i,
            market_price=Decimal("10.00") + i,
            category=("游戏点卡", "腾讯") if i % 2 == 0 else ("话费充值",),
            delivery="card" if i % 2 == 0 else "topup",
            updated_at=base + timedelta(minutes=i),
        )
        for i in range(n)
    ]


def dumps(obj):
    """JSON where Decimals are written as numbers with their exact digits."""
    text = json.dumps(obj, ensure_ascii=False,
                      default=lambda o: f"@dec:{o}" if isinstance(o, Decimal) else str(o))
    return _DECIMAL_MARK.sub(r"\1", text)


def fulu_sign(params, secret):
    payload = json.dumps({k: params[k] for k in params if k != "sign"}, ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.md5(("".join(sorted(payload)) + secret).encode()).hexdigest()


def acg_sign(form, app_key):
    """As the PHP 主站 computes it over $_POST: nested ``sku[k]`` keys regrouped, top level sorted."""
    grouped = {}
    for key, val in form.items(multi=True):
        outer, _, inner = key.partition("[")
        if inner:
            grouped.setdefault(outer, []).append((f"{outer}[{inner}", val))
        elif key != "sign" and val != "":
            grouped[key] = [(key, val)]
    pairs = [pair for key in sorted(grouped) for pair in grouped[key]]
    return hashlib.md5(unquote_plus(urlencode(pairs) + "&key=" + app_key).encode()).hexdigest()


class Simulator:
    def __init__(self, products=None):
        self.products = {p.code: p for p in (products if products is not None else make_catalog(4))}
        self.fulu_app_key = "fulu-app-key"
        self.fulu_secret = FULU_SECRET
        # As the gateway answers fulu.goods.template.get (PascalCase, as seen in the field).
        self.fulu_templates = {"tpl-account": {
            "AddressId": "tpl-account", "AddressName": "手机号充值", "IsServiceArea": False,
            "ElementInfo": {"Inputs": [
                {"Id": "charge_account", "Name": "充值手机号", "Type": "text", "SortId": 1,
                 "Regex": "^1[3-9]\\d{9}$", "Placeholder": "11 位手机号"},
            ]},
        }}
        self.acg_app_id = "1001"
        self.acg_app_key = "0123456789ABCDEF"
        self.kamen_stations = {"station-1": "kamen-station-secret"}
        self.shop_name = "模拟主站"
        self.balance = Decimal("1234.56")
        self.url = None
        self.requests = []  # (method, full path, content type, body bytes)
        self.nonces = set()
        self.latency = 0.0
        self.http_status = None
        self.html = False
        self.malformed = False
        self.error = None
        self.bad_reply_sign = False
        self.overrides = {}
        self.healthy_requests = 0
        self.order_fault = None
        self.settle_after = 0
        self.short_cards = 0
        self.orders = {}  # customer_order_no / request_no -> order dict
        self.queries = {}  # order key -> order queries answered
        self.acg_manual_text = "正在发货中，请耐心等待..."

    def failing(self):
        """Whether the failure switches apply to the request being answered."""
        return len(self.requests) > self.healthy_requests

    # --- wire shapes -----------------------------------------------------
    def _override(self, code, wire):
        for key, val in self.overrides.get(code, {}).items():
            if val is MISSING:
                wire.pop(key, None)
            else:
                wire[key] = val
        return wire

    def _level(self, p):
        if p.stock is None:
            return "IN"
        return "OUT" if p.stock <= 0 else "LOW" if p.stock < LOW_STOCK else "IN"

    def fulu_goods(self, p):
        return self._override(p.code, {
            "product_id": int(p.code),
            "product_name": p.name,
            "product_type": "卡密" if p.delivery == "card" else "直充",
            "face_value": p.face_value,
            "purchase_price": p.price,
            "sales_status": "上架" if p.on_sale else "下架",
            "stock_status": {"IN": "充足", "LOW": "警报", "OUT": "断货"}[self._level(p)],
            "template_id": "" if p.delivery == "card" else "tpl-account",
            "details": "",
        })

    def acg_item(self, p, index):
        """As a real 主站 answers (docs/acg-faka.md): ``user_price`` is what this 分站
        pays, ``factory_price`` the 主站's own cost (lower), ``price`` its retail price."""
        topup = p.delivery == "topup"
        return self._override(p.code, {
            "id": index,
            "code": p.code,
            "name": p.name,
            "price": p.market_price or p.face_value,
            "user_price": p.price,
            "factory_price": p.own_cost if p.own_cost is not None else p.price * Decimal("0.8"),
            "cover": p.cover,
            "description": "",
            "delivery_way": 1 if topup else 0,
            "contact_type": 0,
            "password_status": 0,
            "stock": 0 if topup else (p.stock or 0),
            "minimum": 0,
            "maximum": 0,
            "config": "",
            "widget": ACG_TOPUP_WIDGET if topup else "[]",
        })

    def kamen_product(self, p):
        return self._override(p.code, {
            "code": p.code,
            "name": p.name,
            "category": list(p.category),
            "face_value": str(p.face_value),
            "price": str(p.price),
            "market_price": None if p.market_price is None else str(p.market_price),
            "stock": {"level": self._level(p), "qty": p.stock},
            "available": p.on_sale,
            "delivery": p.delivery,
            "fields": [{"name": "account", "label": "QQ号", "required": True, "pattern": r"^[1-9]\d{4,11}$",
                        "hint": "5-12 位数字"}]
            if p.delivery == "topup" else None,
            "updated_at": p.updated_at.isoformat() + "Z",
        })

    # --- the app ---------------------------------------------------------
    def app(self):
        app = Flask("supplier_simulator")

        @app.before_request
        def switches():
            self.requests.append((request.method, request.full_path.rstrip("?"),
                                  request.content_type, request.get_data()))
            if not self.failing():
                return None
            if self.latency:
                time.sleep(self.latency)
            if self.http_status:
                return Response(f"status {self.http_status}", self.http_status, content_type="text/plain")
            if self.html:
                return Response("<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", 200,
                                content_type="text/html")
            if self.malformed:
                return Response('{"code": 0, "items": [{"code": "10', 200, content_type="application/json")
            return None

        app.add_url_rule("/api/getway", "fulu", self.fulu_gateway, methods=["POST"])
        for action in ("authentication/connect", "commodity/items", "commodity/inventory", "commodity/trade",
                       "commodity/query"):
            app.add_url_rule(f"/shared/{action}", action, self.acg_shared, methods=["GET", "POST"])
        app.add_url_rule("/api/upstream/v1/products", "kamen_products", self.kamen_products)
        app.add_url_rule("/api/upstream/v1/stock", "kamen_stock", self.kamen_stock, methods=["POST"])
        app.add_url_rule("/api/upstream/v1/balance", "kamen_balance", self.kamen_balance)
        return app

    def _json(self, obj, status=200):
        return Response(dumps(obj), status, content_type="application/json")

    # Fulu-style gateway
    def fulu_gateway(self):
        params = request.get_json(silent=True) or {}
        if params.get("app_key") != self.fulu_app_key:
            return self._fulu_fail(1001, "app_key不存在")
        if params.get("sign") != fulu_sign(params, self.fulu_secret):
            return self._fulu_fail(1002, "签名验证失败")
        if self.error and self.failing():
            return self._fulu_fail(2000, self.error.message)
        biz = json.loads(params["biz_content"])
        method = params["method"]
        if method == "fulu.goods.list.get":
            result = [self.fulu_goods(p) for p in self.products.values() if p.on_sale]
        elif method in ("fulu.goods.info.get", "fulu.goods.stock.check"):
            p = self.products.get(str(biz.get("product_id")))
            if p is None:
                return self._fulu_fail(2001, "商品不存在")
            goods = self.fulu_goods(p)
            result = goods if method == "fulu.goods.info.get" else {
                "product_id": goods["product_id"], "stock_status": goods["stock_status"]}
        elif method == "fulu.goods.template.get":
            template = self.fulu_templates.get(biz.get("template_id"))
            if template is None:
                return self._fulu_fail(2002, "模板不存在")
            result = template
        elif method == "fulu.user.info.get":
            result = {"name": self.shop_name, "balance": self.balance, "is_open": 1}
        elif method in ("fulu.order.direct.add", "fulu.order.card.add"):
            result = self._fulu_order_add(method, biz)
            if isinstance(result, Response):
                return result
            fault = self._after_accepting()
            if fault:
                return fault
        elif method == "fulu.order.info.get":
            order = self.orders.get(str(biz.get("customer_order_no")))
            if order is None:
                return self._fulu_fail(2003, "订单不存在")
            result = self._fulu_order_view(order, query=True)
        else:
            return self._fulu_fail(1003, "method不存在")
        result_text = dumps(result)
        reply_sign = "0" * 32 if self.bad_reply_sign else \
            hashlib.md5(("".join(sorted(result_text)) + self.fulu_secret).encode()).hexdigest()
        return self._json({"code": 0, "message": "接口调用成功", "result": result_text, "sign": reply_sign})

    # --- orders ---------------------------------------------------------
    def _take(self, key, p, num, unit_price):
        """Stock and balance as a real supplier takes them; an error message or the new order."""
        if key in self.orders:
            return "外部订单号已存在"
        if p is None:
            return "商品不存在"
        if not p.on_sale:
            return "商品已下架"
        if p.delivery == "card" and p.stock is not None and p.stock < num:
            return "库存不足"
        if unit_price * num > self.balance:
            return "余额不足"
        self.balance -= unit_price * num
        if p.delivery == "card" and p.stock is not None:
            p.stock -= num
        n = len(self.orders) + 1
        cards = [(f"CARD{n:04d}{i:02d}", f"PWD-{n}-{i}-密") for i in range(max(num - self.short_cards, 0))]
        order = {"id": f"SIM{n:06d}", "key": key, "product": p, "num": num, "unit": unit_price,
                 "cards": cards if p.delivery == "card" else [], "state": "success"}
        self.orders[key] = order
        return order

    def _fulu_order_add(self, method, biz):
        p = self.products.get(str(biz.get("product_id")))
        if p is not None and (method == "fulu.order.card.add") != (p.delivery == "card"):
            return self._fulu_fail(2004, "商品类型与下单接口不匹配")
        if p is not None and biz.get("customer_price") is not None and p.price > Decimal(str(biz["customer_price"])):
            return self._fulu_fail(2005, "商品进价高于外部销售价，下单失败")
        if method == "fulu.order.direct.add" and not biz.get("charge_account"):
            return self._fulu_fail(2006, "充值账号不能为空")
        order = self._take(str(biz.get("customer_order_no")), p, int(biz.get("buy_num") or 0),
                           p.price if p else Decimal(0))
        if isinstance(order, str):
            return self._fulu_fail(2007, order)
        order["account"] = biz.get("charge_account")
        return self._fulu_order_view(order, query=False)

    def _settled(self, order, query):
        if query:
            self.queries[order["key"]] = self.queries.get(order["key"], 0) + 1
        return self.queries.get(order["key"], 0) > self.settle_after or (self.settle_after == 0 and not query)

    def _fulu_order_view(self, order, query):
        settled = self._settled(order, query)
        state = order["state"] if settled else "processing"
        p = order["product"]
        return {
            "order_id": order["id"], "customer_order_no": order["key"], "product_id": int(p.code),
            "product_name": p.name, "charge_account": order.get("account") or "", "buy_num": order["num"],
            "order_type": 3 if p.delivery == "card" else 4, "order_price": order["unit"],
            "order_state": state, "create_time": "2024-05-01 12:00:00",
            "finish_time": "2024-05-01 12:00:05" if state == "success" else "",
            "cards": [{"card_number": self.encrypt(n), "card_pwd": self.encrypt(pw), "card_deadline": "2099-12-31",
                       "card_type": 0} for n, pw in order["cards"]] if state == "success" else [],
        }

    def encrypt(self, plain):
        padder = padding.PKCS7(128).padder()
        data = padder.update(plain.encode()) + padder.finalize()
        enc = Cipher(algorithms.AES(self.fulu_secret.encode()), modes.ECB()).encryptor()
        return base64.b64encode(enc.update(data) + enc.finalize()).decode()

    def _after_accepting(self):
        if self.order_fault == "timeout":
            time.sleep(3)  # above the client timeout
        if self.order_fault == "5xx":
            return Response("upstream error", 502, content_type="text/plain")
        if self.order_fault == "malformed":
            return Response('{"code": 0, "message": "接口调用成', 200, content_type="application/json")
        return None

    def fulu_callback(self, key, transport="json", status="success", forge=False):
        """(headers, body) of the order notification the gateway sends for ``key``."""
        order = self.orders[key]
        params = {"order_id": order["id"], "charge_finish_time": "2024-05-01 12:00:05", "customer_order_no": key,
                  "order_status": status, "recharge_description": "充值成功" if status == "success" else "充值失败",
                  "product_id": order["product"].code, "price": f"{order['unit']:.4f}", "buy_num": str(order["num"]),
                  "operator_serial_number": ""}
        params["sign"] = fulu_sign(params, "forged-secret-0123456789abcdefgh" if forge else self.fulu_secret)
        if transport == "json":
            return {"Content-Type": "application/json"}, json.dumps(params, ensure_ascii=False).encode()
        form = urlencode(params).encode()
        if transport == "form":
            return {"Content-Type": "application/x-www-form-urlencoded"}, form
        return {}, form  # query string of a GET notification

    def _fulu_fail(self, code, message):
        return self._json({"code": code, "message": message, "result": "", "sign": ""})

    # acg-faka shared
    def acg_shared(self):
        if request.method != "POST" or request.mimetype != "application/x-www-form-urlencoded":
            return self._acg_fail("商户ID不存在")  # $_POST is empty for JSON or GET
        form = request.form
        if form.get("app_id") != self.acg_app_id:
            return self._acg_fail("商户ID不存在")
        if form.get("sign") != acg_sign(form, self.acg_app_key):
            return self._acg_fail("密钥错误")
        if self.error and self.failing():
            return self._acg_fail(self.error.message)
        action = request.path.removeprefix("/shared/")
        if action == "authentication/connect":
            return self._json({"code": 200, "msg": "success",
                               "data": {"shopName": self.shop_name, "balance": self.balance}})
        if action == "commodity/items":
            tree = {}
            for index, p in enumerate(self.products.values(), 1):
                if p.on_sale:
                    tree.setdefault(p.category[0], []).append(self.acg_item(p, index))
            data = [{"id": i, "name": name, "children": children}
                    for i, (name, children) in enumerate(tree.items(), 1)]
            return self._json({"code": 200, "data": data})
        if action == "commodity/trade":
            return self._acg_trade(form)
        if action == "commodity/query":
            order = next((o for o in self.orders.values() if o["id"] == form.get("tradeNo")), None)
            if order is None:
                return self._acg_fail("订单不存在")
            settled = self._settled(order, True)
            return self._json({"code": 200, "msg": "success", "data": {
                "secret": self._acg_secret(order) if settled else self.acg_manual_text, "widget": None,
                "status": 1}})
        p = self.products.get(form.get("sharedCode", ""))
        if p is None:
            return self._acg_fail("商品不存在")
        if not p.on_sale:
            return self._acg_fail("当前商品已停售")
        item = self.acg_item(p, 0)
        return self._json({"code": 200, "msg": "success", "data": {
            "count": item["stock"], "delivery_way": item["delivery_way"], "draft_status": 0,
            "price": item["price"], "user_price": item["user_price"],
            "factory_price": item["user_price"], "config": "", "is_category": False}})

    def _acg_secret(self, order):
        if order["product"].delivery != "card":
            return order.get("delivered") or self.acg_manual_text
        return "\n".join(n for n, _ in order["cards"])

    def acg_deliver(self, key, secret):
        """The 主站's operator fulfils a hand-delivered order: its ``secret`` becomes this text."""
        self.orders[key]["delivered"] = secret

    def _acg_trade(self, form):
        p = self.products.get(form.get("shared_code", ""))
        key = form.get("request_no") or f"anon-{len(self.orders) + 1}"
        if not form.get("contact"):
            return self._acg_fail("联系方式不能为空")
        if p is not None and p.delivery == "topup" and not form.get("game_account"):
            return self._acg_fail("请填写游戏账号")
        order = self._take(key, p, int(form.get("num") or 0), p.price if p else Decimal(0))
        if isinstance(order, str):
            return self._acg_fail("请勿重复提交订单" if "订单号" in order else order)  # request_no honoured
        fault = self._after_accepting()
        if fault:
            return fault
        secret = self._acg_secret(order) if self.settle_after == 0 else self.acg_manual_text
        return self._json({"code": 200, "msg": "success", "data": {
            "url": "", "amount": order["unit"] * order["num"], "tradeNo": order["id"], "secret": secret,
            "leave_message": "", "stock": p.stock}})

    def _acg_fail(self, message):
        return self._json({"code": 0, "msg": message})

    # kamen upstream
    def _kamen_auth(self):
        def nonce_seen(app_id, nonce):
            seen = (app_id, nonce) in self.nonces
            self.nonces.add((app_id, nonce))
            return seen

        try:
            verify(request.headers, request.method, request_target(request), request.get_data(),
                   self.kamen_stations.get, nonce_seen)
        except VerificationError as exc:
            return self._kamen_fail(exc.code, exc.message, 401)
        if self.error and self.failing():
            return self._kamen_fail(self.error.code, self.error.message, self.error.status)
        return None

    def _kamen_fail(self, code, message, status):
        return self._json(error_body(code, message), status)

    def kamen_products(self):
        refused = self._kamen_auth()
        if refused:
            return refused
        limit = request.args.get("limit", "200")
        if not limit.isdigit() or not 1 <= int(limit) <= 500:
            return self._kamen_fail("bad_request", "limit 应为 1-500", 400)
        products = sorted(self.products.values(), key=lambda p: p.code)
        if request.args.get("updated_after"):
            after = datetime.fromisoformat(request.args["updated_after"].replace("Z", ""))
            products = [p for p in products if p.updated_at > after]
        cursor = request.args.get("cursor")
        if cursor:
            products = [p for p in products if p.code > cursor]
        page = products[: int(limit)]
        more = len(products) > len(page)
        return self._json({"items": [self.kamen_product(p) for p in page],
                           "next_cursor": page[-1].code if more else None})

    def kamen_stock(self):
        refused = self._kamen_auth()
        if refused:
            return refused
        levels = {}
        for code in (request.get_json(silent=True) or {}).get("codes", []):
            p = self.products.get(code)
            levels[code] = ({"level": self._level(p), "qty": p.stock} if p and p.on_sale
                            else {"level": "OUT", "qty": 0})
        return self._json({"levels": levels})

    def kamen_balance(self):
        refused = self._kamen_auth()
        return refused or self._json({"balance": str(self.balance), "station": self.shop_name})


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@contextmanager
def serve(app):
    """Serve a WSGI app on a random localhost port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
