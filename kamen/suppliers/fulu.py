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
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kamen.suppliers.base import (
    AuthFailed,
    ConnectionInfo,
    Delivery,
    Level,
    Page,
    ProductUnavailable,
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


FULU = Dialect()


def _compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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


def _pick(data, *names):
    """The first of these keys present (gateways differ in snake_case and PascalCase)."""
    for name in names:
        if data.get(name) not in (None, ""):
            return data[name]
    return None


def loads_object(text):
    try:
        data = loads(text)
    except ValueError:
        raise BadValue("模板内容不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise BadValue("模板内容应为对象")
    return data


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

    def call(self, method, biz=None):
        """Send one gateway method and return its decoded ``result``."""
        body = _compact(self.envelope(method, biz or {})).encode("utf-8")
        data = self.http.request("POST", GATEWAY_PATH, body=body,
                                 content_type="application/json; charset=utf-8")
        with reply_check():
            code = value(data, "code")
        if str(code) != "0":
            raise error_from_message(data.get("message"), code)
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
