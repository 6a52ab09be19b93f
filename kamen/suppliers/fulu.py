"""Fulu-style gateway (福禄开放平台 and look-alikes): md5-signed ``method`` +
``biz_content`` envelopes POSTed as JSON to one URL. Protocol: docs/fulu.md.

Look-alike suppliers rename methods and fields: ``Dialect`` holds every name
this module uses, so a variant is a different ``Dialect``, not new code.
"""
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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
    RejectedItem,
    RemoteProduct,
    StockLevel,
    SupplierAdapter,
    SupplierError,
    Transient,
)
from kamen.suppliers.http import HttpClient, loads
from kamen.suppliers.parsing import (
    BadValue,
    buyer_field,
    collect,
    error_from_message,
    json_list,
    key_of,
    money,
    optional_money,
    optional_text,
    redact,
    reply_check,
    text,
    value,
)

log = logging.getLogger("kamen.suppliers.fulu")

GATEWAY_PATH = "/api/getway"  # sic
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Dialect:
    goods_list: str = "fulu.goods.list.get"
    goods_info: str = "fulu.goods.info.get"
    stock_check: str = "fulu.goods.stock.check"
    template_get: str = "fulu.goods.template.get"
    user_info: str = "fulu.user.info.get"
    product_id: str = "product_id"
    product_name: str = "product_name"
    product_type: str = "product_type"
    face_value: str = "face_value"
    purchase_price: str = "purchase_price"
    sales_status: str = "sales_status"
    stock_status: str = "stock_status"
    template_id: str = "template_id"
    buy_num: str = "buy_num"
    on_sale: str = "上架"
    product_types: dict = field(default_factory=lambda: {"卡密": Delivery.CARD, "直充": Delivery.TOPUP})
    stock_levels: dict = field(
        default_factory=lambda: {"充足": Level.IN, "警报": Level.LOW, "断货": Level.OUT}
    )
    balance: str = "balance"
    account_name: str = "name"
    account_open: str = "is_open"
    order_direct: str = "fulu.order.direct.add"
    order_card: str = "fulu.order.card.add"
    order_info: str = "fulu.order.info.get"


FULU = Dialect()


_NUMBER_MARK = re.compile(r'"\\u0000num:([-0-9.eE+]+)"')


def _compact(obj):
    """Compact JSON; a Decimal (a number we read from the wire) is written with its own digits."""
    text_ = json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                       default=lambda o: f"\0num:{o}" if isinstance(o, Decimal) else str(o))
    return _NUMBER_MARK.sub(r"\1", text_)


def _md5_sorted(payload, secret):
    return hashlib.md5(("".join(sorted(payload)) + secret).encode("utf-8")).hexdigest()


def sign(params, secret):
    """md5 of the sorted characters of the compact JSON of every param but ``sign``, + secret."""
    return _md5_sorted(_compact({k: v for k, v in params.items() if k != "sign"}), secret)


def reply_sign(result_text, secret):
    return _md5_sorted(result_text, secret)


def decrypt_card(ciphertext, secret):
    """A card number or password: base64 of AES-256-ECB/PKCS7, key = the app secret."""
    key = secret.encode("utf-8")
    if len(key) != 32:
        raise SupplierError("福禄密钥应为 32 个字符，无法解密卡密，请核对 AppSecret")
    try:
        decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        padded = decryptor.update(base64.b64decode(ciphertext, validate=True)) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise SupplierError("卡密解密失败：密文格式不对或密钥不匹配") from exc


# What the gateway says about an order (``order_state`` in replies,
# ``order_status`` in callbacks). ``untreated``: received, not yet worked on.
ORDER_STATES = {
    "success": OrderStatus.SUCCESS,
    "processing": OrderStatus.PROCESSING,
    "untreated": OrderStatus.ACCEPTED,
    "failed": OrderStatus.FAILED,
}

CARD_ORDER_TYPE = "3"  # order_type: 1 话费, 2 流量, 3 卡密, 4 直充

# The one table from a gateway error reply (code or message words) to the
# contract's error, for every method. Rows are checked in order; a row matches
# on its code or on any word of the message. Errors no row matches fall back to
# the shared message rules (parsing.error_from_message). docs/fulu.md, "Errors".
GATEWAY_ERRORS = (
    # (error, gateway codes, message words)
    (AuthFailed, ("1001", "1002"), ("app_key", "签名", "密钥", "商户", "白名单", "授权", "token")),
    (DuplicateOrder, (), ("订单号重复", "订单已存在", "外部订单号已存在", "重复提交", "重复下单")),
    ("not found", (), ("订单不存在", "订单号不存在", "未查询到订单", "无此订单")),
    (PriceAboveLimit, (), ("外部销售价", "销售价", "customer_price", "价格高于", "高于限价", "价格变动")),
    (InsufficientBalance, (), ("余额不足", "余额不够")),
    (OutOfStock, (), ("库存不足", "缺货", "断货", "无库存")),
    (InvalidAccount, (), ("充值账号", "账号格式", "账号错误", "账号不存在", "手机号")),
    (ProductUnavailable, (), ("商品不存在", "停售", "下架", "维护", "未上架", "不存在")),
    (RateLimited, (), ("频繁", "频率", "限流")),
    (Transient, (), ("繁忙", "系统异常", "稍后", "超时")),
)


class OrderNotFound(SupplierError):
    """The gateway has no order under that number (yet)."""


def gateway_error(message, code):
    """The contract error for a gateway error reply (GATEWAY_ERRORS)."""
    code, text_ = str(code), str(message or "").strip()
    lowered = text_.lower()
    for error, codes, words in GATEWAY_ERRORS:
        if code in codes or any(word in lowered for word in words):
            error = OrderNotFound if error == "not found" else error
            return error(f"货源返回错误：{text_ or '未知错误'}（代码 {code}）")
    return error_from_message(text_, code)


def _pick(data, *names):
    """The first of these keys present (gateways differ in snake_case and PascalCase)."""
    for name in names:
        if data.get(name) not in (None, ""):
            return data[name]
    return None


def loads_object(text, what="模板内容"):
    try:
        data = loads(text)
    except ValueError:
        raise BadValue(f"{what}不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise BadValue(f"{what}应为对象")
    return data


# Buyer fields fulu.order.direct.add takes (PROTOCOLS.md); others are not sent.
CHARGE_FIELDS = ("charge_account", "charge_password", "charge_ip", "charge_game_name", "charge_game_region",
                 "charge_game_srv", "charge_type", "charge_game_role", "contact_qq", "contact_tel")


def _callback_params(headers, body):
    """The order callback's fields from a JSON body, a form body or a query string."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = (body or "").strip()
    content_type = {k.lower(): v for k, v in dict(headers or {}).items()}.get("content-type", "")
    if "json" in content_type or body.startswith("{"):
        try:
            return loads_object(body, "货源订单回调")
        except BadValue as exc:
            raise AuthFailed(f"{exc}，已拒绝") from None
    return dict(parse_qsl(body, keep_blank_values=True))


class FuluAdapter(SupplierAdapter):
    kind = "fulu"

    def __init__(self, base_url, app_key, secret, timeout=None, *, time_zone="Asia/Shanghai",
                 dialect=FULU, verify_reply_sign=True, session=None):
        base_url = base_url.rstrip("/")
        if base_url.endswith(GATEWAY_PATH):  # admins often paste the full gateway URL
            base_url = base_url[: -len(GATEWAY_PATH)]
        self.http = HttpClient(base_url, timeout, session=session)
        self.app_key = app_key
        self.secret = secret
        self.zone = ZoneInfo(time_zone)
        self.dialect = dialect
        self.verify_reply_sign = verify_reply_sign

    def envelope(self, method, biz):
        params = {
            "app_key": self.app_key,
            "method": method,
            "timestamp": datetime.now(self.zone).strftime(TIMESTAMP_FORMAT),
            "version": "2.0",
            "format": "json",
            "charset": "utf-8",
            "sign_type": "md5",
            "app_auth_token": "",
            "biz_content": _compact(biz),
        }
        params["sign"] = sign(params, self.secret)
        return params

    def call(self, method, biz=None, *, once=False):
        """Send one gateway method and return its decoded ``result``.

        ``once``: an order; after sending, a reply we cannot trust is Ambiguous
        (an error reply with a code is an answer, not ambiguous)."""
        body = _compact(self.envelope(method, biz or {})).encode("utf-8")
        data = self.http.request("POST", GATEWAY_PATH, body=body,
                                 content_type="application/json; charset=utf-8", once=once)
        try:
            return self._result(method, data)
        except (Transient, AuthFailed) as exc:
            if once and not getattr(exc, "from_code", False):
                raise Ambiguous(f"{exc.message}；订单可能已提交，需查询确认") from exc
            raise

    def _result(self, method, data):
        with reply_check():
            code = value(data, "code")
        if str(code) != "0":
            error = gateway_error(data.get("message"), code)
            error.from_code = True  # the gateway answered: nothing is ambiguous
            raise error
        result_text = data.get("result")
        if not isinstance(result_text, str):
            raise Transient("货源返回数据有误：result 应为 JSON 字符串")
        their_sign = data.get("sign")
        if their_sign and not hmac.compare_digest(str(their_sign), reply_sign(result_text, self.secret)):
            log.warning("fulu reply signature mismatch for %s from %s", method, self.http.host)
            if self.verify_reply_sign:
                raise AuthFailed("货源回复的签名不正确，已拒绝使用该回复：请核对 AppSecret；若该货源文档说明其回复签名方式不同，"
                                 "可在货源设置中关闭“校验货源回复签名”")
        try:
            return loads(result_text)
        except ValueError:
            raise Transient("货源返回数据有误：result 不是合法的 JSON") from None

    # --- ordering ---------------------------------------------------------
    def place_order(self, idempotency_key, code, qty, fields, max_unit_cost):
        d = self.dialect
        product_id = self._product_id(code)
        goods = self.get_product(code)  # before paying: its kind, status and current price
        if not goods.available:
            raise ProductUnavailable(f"货源商品“{goods.name}”当前未上架，无法下单")
        limit = Decimal(max_unit_cost) if max_unit_cost is not None else None
        if limit is not None and goods.cost_price > limit:
            raise PriceAboveLimit(f"货源进价 ¥{goods.cost_price} 高于允许的最高成本 ¥{limit}，未下单")
        biz = {d.product_id: product_id, "customer_order_no": str(idempotency_key), d.buy_num: int(qty)}
        if goods.delivery is Delivery.TOPUP:
            biz.update(self._charge_fields(fields))
            method = d.order_direct
        else:
            method = d.order_card
        if limit is not None:
            biz["customer_price"] = limit  # the gateway refuses the order if its price is above
        request = {"method": method, "biz_content": biz}
        try:
            reply = self.call(method, biz, once=True)
        except DuplicateOrder as exc:
            # This order number is already there: that order is ours. Report it, never place again.
            try:
                return self.query_order(idempotency_key)
            except SupplierError as query_error:
                return OrderResult(OrderStatus.UNKNOWN, idempotency_key=str(idempotency_key),
                                   message=f"{exc.message}；查询该订单失败：{query_error.message}",
                                   raw=redact({"request": request}))
        except Ambiguous as exc:
            return OrderResult(OrderStatus.UNKNOWN, message=exc.message, idempotency_key=str(idempotency_key),
                               raw=redact({"request": request}))
        return self._order_result(reply, {"request": request}, fallback=OrderStatus.ACCEPTED,
                                  key=idempotency_key)

    def query_order(self, idempotency_key, supplier_order_id=None):
        request = {"method": self.dialect.order_info, "biz_content": {"customer_order_no": str(idempotency_key)}}
        try:
            reply = self.call(self.dialect.order_info, request["biz_content"])
        except OrderNotFound as exc:
            # Not proof of failure: the order reply may still be on its way. The caller decides after its deadline.
            return OrderResult(OrderStatus.UNKNOWN, message=f"{exc.message}：货源暂查无此订单号",
                               idempotency_key=str(idempotency_key), raw={"request": request})
        return self._order_result(reply, {"request": request}, fallback=None, key=idempotency_key)

    def parse_callback(self, headers, body):
        params = _callback_params(headers, body)
        their = str(params.get("sign") or "")
        if not their or not hmac.compare_digest(their.lower(), sign(params, self.secret)):
            raise AuthFailed("货源订单回调签名不正确，已拒绝（可能是伪造的通知，或 AppSecret 不一致）")
        status = ORDER_STATES.get(str(params.get("order_status", "")).strip().lower())
        if status not in (OrderStatus.SUCCESS, OrderStatus.FAILED):
            raise Transient(f"货源订单回调状态无法识别：{params.get('order_status')!r}")
        cost = None
        if params.get("price") not in (None, ""):
            with reply_check():
                cost = money(params, "price")
        return OrderResult(status, supplier_order_id=optional_text(params, "order_id"),
                           message=optional_text(params, "recharge_description") or "",
                           cost=cost, idempotency_key=optional_text(params, "customer_order_no"),
                           raw=redact({"callback": params}))

    def _charge_fields(self, fields):
        fields = {k: str(v).strip() for k, v in (fields or {}).items() if v not in (None, "")}
        if not fields.get("charge_account"):
            raise InvalidAccount("直充商品需要充值账号（charge_account），订单未提交")
        return {k: v for k, v in fields.items() if k in CHARGE_FIELDS}

    def _order_result(self, reply, raw, fallback, key):
        if not isinstance(reply, dict):
            return OrderResult(OrderStatus.UNKNOWN, message="货源回复的订单数据有误", idempotency_key=str(key),
                               raw=redact({**raw, "reply": reply}))
        raw = redact({**raw, "reply": reply})
        status = ORDER_STATES.get(str(reply.get("order_state", "")).strip().lower(), fallback)
        if status is None:
            return OrderResult(OrderStatus.UNKNOWN, message=f"货源订单状态无法识别：{reply.get('order_state')!r}",
                               idempotency_key=str(key), raw=raw)
        try:
            cost = optional_money(reply, "order_price")
            cards = [self._card(c) for c in json_list(reply.get("cards"), "卡密列表")]
        except (BadValue, SupplierError) as exc:
            return OrderResult(OrderStatus.UNKNOWN, message=f"货源回复的订单数据有误：{exc}",
                               idempotency_key=str(key), raw=raw)
        message = optional_text(reply, "recharge_description") or ""
        buy_num = str(reply.get("buy_num"))
        if status is OrderStatus.SUCCESS and str(reply.get("order_type")) == CARD_ORDER_TYPE and buy_num.isdigit() \
                and len(cards) < int(buy_num):
            # A card order is delivered by its cards: none yet is still to come, some is partial.
            status, message = (OrderStatus.PARTIAL, message) if cards else (OrderStatus.PROCESSING, "卡密尚未返回，稍后查询")
        return OrderResult(status, supplier_order_id=optional_text(reply, "order_id"), cards=cards,
                           message=message, cost=cost,
                           idempotency_key=optional_text(reply, "customer_order_no") or str(key), raw=raw)

    def _card(self, card):
        if not isinstance(card, dict):
            raise BadValue("卡密应为对象")
        number, password = card.get("card_number"), card.get("card_pwd")
        return {"number": decrypt_card(number, self.secret) if number else None,
                "password": decrypt_card(password, self.secret) if password else None,
                "expires": optional_text(card, "card_deadline")}

    def list_products(self, cursor=None, updated_after=None):
        rows = self.call(self.dialect.goods_list)
        if not isinstance(rows, list):
            raise Transient("货源返回数据有误：商品列表应为数组")
        items, rejected = collect(rows, self._product, lambda row: key_of(row, self.dialect.product_id))
        items, unreadable = self._with_templates(items)
        return Page(items=items, next_cursor=None, rejected=rejected + unreadable)

    def _with_templates(self, items):
        """Fill each product's buyer fields from its template, one call per template.

        A template we cannot read rejects its products (kept, not delisted): a
        guessed generic field would let buyers order with the wrong details."""
        templates, kept, rejected = {}, [], []
        for item in items:
            template_id = item.field_template
            if not template_id:
                kept.append(item)
                continue
            if template_id not in templates:
                try:
                    templates[template_id] = self.template_fields(template_id)
                except (SupplierError, BadValue) as exc:
                    templates[template_id] = exc
            fields = templates[template_id]
            if isinstance(fields, Exception):
                rejected.append(RejectedItem(item.code, f"读取买家填写模板 {template_id} 失败：{fields}"))
            else:
                item.buyer_fields = fields
                kept.append(item)
        return kept, rejected

    def template_fields(self, template_id):
        """Buyer fields of a goods template (docs/fulu.md, "Buyer-field templates")."""
        data = self.call(self.dialect.template_get, {"template_id": template_id})
        element = _pick(data, "element_info", "ElementInfo") if isinstance(data, dict) else None
        if isinstance(element, str):
            element = loads_object(element)
        inputs = json_list(_pick(element, "inputs", "Inputs") if isinstance(element, dict) else None, "模板输入项")
        inputs = sorted((i for i in inputs if isinstance(i, dict)), key=lambda i: str(_pick(i, "sort_id", "SortId") or 0))
        return [buyer_field(_pick(i, "id", "Id"), _pick(i, "name", "Name"), _pick(i, "regex", "Regex"),
                            _pick(i, "placeholder", "Placeholder", "tips", "Tips")) for i in inputs]

    def get_product(self, code):
        row = self.call(self.dialect.goods_info, {self.dialect.product_id: self._product_id(code)})
        with reply_check():
            return self._product(row)

    def get_stock(self, codes):
        levels = {}
        for code in codes:
            try:
                row = self.call(self.dialect.stock_check,
                                {self.dialect.product_id: self._product_id(code), self.dialect.buy_num: 1})
            except ProductUnavailable:
                levels[code] = StockLevel(Level.OUT)
                continue
            levels[code] = self._stock(row if isinstance(row, dict) else {})
        return levels

    def balance(self):
        return self._account()[1]

    def test_connection(self):
        return ConnectionInfo.connected(*self._account())

    def _account(self):
        d = self.dialect
        data = self.call(d.user_info)
        with reply_check():
            balance = money(data, d.balance, signed=True)
        if str(data.get(d.account_open, "1")).lower() in ("0", "false"):
            raise AuthFailed("货源账户未开通或已停用，请联系货源")
        return optional_text(data, d.account_name), balance

    def _product_id(self, code):
        if not str(code).isdigit():
            raise ProductUnavailable(f"商品编码“{code}”不是福禄商品 ID（应为数字）")
        return int(code)

    def _stock(self, row):
        return StockLevel(self.dialect.stock_levels.get(optional_text(row, self.dialect.stock_status),
                                                        Level.UNKNOWN))

    def _product(self, row):
        d = self.dialect
        kind = text(row, d.product_type)
        if kind not in d.product_types:
            raise BadValue(f"未知的商品类型“{kind}”")
        return RemoteProduct(
            code=text(row, d.product_id),
            name=text(row, d.product_name),
            category_path=(),
            face_value=optional_money(row, d.face_value),
            cost_price=money(row, d.purchase_price),
            market_price=None,
            stock=self._stock(row),
            available=text(row, d.sales_status) == d.on_sale,
            delivery=d.product_types[kind],
            field_template=optional_text(row, d.template_id),
            raw=row,
        )
