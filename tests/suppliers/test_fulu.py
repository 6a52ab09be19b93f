import base64
import hashlib
import json
import logging
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kamen.suppliers import adapter_for
from kamen.suppliers.base import (
    AuthFailed,
    Delivery,
    InsufficientBalance,
    Level,
    OutOfStock,
    SupplierError,
    Transient,
)
from kamen.suppliers.fulu import decrypt_card, reply_sign, sign
from tests.suppliers.simulator import MISSING, SimError

SECRET = "0123456789abcdef0123456789abcdef"
PARAMS = {
    "app_key": "testkey",
    "method": "fulu.goods.info.get",
    "timestamp": "2024-05-01 12:00:00",
    "version": "2.0",
    "format": "json",
    "charset": "utf-8",
    "sign_type": "md5",
    "app_auth_token": "",
    "biz_content": '{"product_id":10000001,"note":"腾讯/QQ"}',
}
# The JSON of PARAMS written out by hand: non-ASCII and "/" as they are, biz_content escaped.
PARAMS_JSON = (
    '{"app_key":"testkey","method":"fulu.goods.info.get","timestamp":"2024-05-01 12:00:00",'
    '"version":"2.0","format":"json","charset":"utf-8","sign_type":"md5","app_auth_token":"",'
    '"biz_content":"{\\"product_id\\":10000001,\\"note\\":\\"腾讯/QQ\\"}"}'
)


def test_sign_matches_the_rule_computed_by_hand():
    chars = list(PARAMS_JSON)
    chars.sort()
    expected = hashlib.md5(("".join(chars) + SECRET).encode("utf-8")).hexdigest()
    assert sign(PARAMS, SECRET) == expected


def test_sign_fixed_vector_ignores_key_order_and_sign_field():
    shuffled = dict(reversed(list(PARAMS.items())), sign="whatever")
    assert sign(shuffled, SECRET) == "42f4ab8f0b0f0b010e80b63fb6e9534d"


def test_reply_sign_is_md5_of_sorted_result_and_secret():
    assert reply_sign('{"b":1}', "s") == hashlib.md5(('""1:b{}' + "s").encode()).hexdigest()


def test_requests_carry_the_whole_envelope(fulu, simulator):
    fulu.balance()
    method, path, content_type, body = simulator.requests[-1]
    params = json.loads(body)
    assert (method, path) == ("POST", "/api/getway")
    assert content_type.startswith("application/json")
    assert set(params) == {"app_key", "method", "timestamp", "version", "format", "charset",
                           "sign_type", "app_auth_token", "biz_content", "sign"}
    assert params["method"] == "fulu.user.info.get"
    assert params["biz_content"] == "{}"
    assert params["app_auth_token"] == ""
    assert len(params["timestamp"]) == 19 and params["timestamp"][10] == " "


def test_list_products(fulu, simulator):
    simulator.products["1001"].price = Decimal("9.4550000000000001")
    page = fulu.list_products()
    assert page.next_cursor is None and page.rejected == []
    by_code = {p.code: p for p in page.items}
    assert set(by_code) == {"1001", "1002", "1003", "1004"}
    card, topup = by_code["1001"], by_code["1002"]
    # Exact (never through float, which makes this 9.455 → 9.45), then half-up to the cent.
    assert card.cost_price == Decimal("9.46")
    assert card.face_value == Decimal("10.00")
    assert (card.delivery, card.available, card.stock.level) == (Delivery.CARD, True, Level.IN)
    assert card.field_template is None
    assert (topup.delivery, topup.field_template) == (Delivery.TOPUP, "tpl-account")


def test_stock_levels_and_unknown_product(fulu, simulator):
    simulator.products["1001"].stock = 2
    simulator.products["1002"].stock = 0
    levels = fulu.get_stock(["1001", "1002", "1003", "9999"])
    assert [levels[c].level for c in ("1001", "1002", "1003", "9999")] == [
        Level.LOW, Level.OUT, Level.IN, Level.OUT]
    assert levels["1001"].qty is None


def test_get_product_and_connection(fulu):
    assert fulu.get_product("1003").cost_price == Decimal("11.50")
    info = fulu.test_connection()
    assert info.balance == Decimal("1234.56") and info.name == "模拟主站"
    assert "连接成功" in info.message


def test_wrong_secret_is_auth_failed(simulator, fulu):
    fulu.secret = "x" * 32
    with pytest.raises(AuthFailed, match="签名"):
        fulu.balance()


@pytest.mark.parametrize("message, error", [
    ("账户余额不足", InsufficientBalance),
    ("商品库存不足", OutOfStock),
    ("系统繁忙，请稍后再试", Transient),
    ("奇怪的错误", SupplierError),
])
def test_gateway_errors_are_classified(fulu, simulator, message, error):
    simulator.error = SimError(message)
    with pytest.raises(error) as caught:
        fulu.list_products()
    assert message in str(caught.value) and "2000" in str(caught.value)


def test_a_reply_with_a_wrong_signature_is_refused(fulu, simulator, caplog):
    simulator.bad_reply_sign = True
    with caplog.at_level(logging.WARNING, logger="kamen.suppliers.fulu"), pytest.raises(AuthFailed, match="签名不正确"):
        fulu.list_products()
    assert "signature mismatch" in caplog.text


def test_the_reply_sign_check_can_be_switched_off_for_a_gateway_that_signs_differently(simulator, caplog):
    simulator.bad_reply_sign = True
    lenient = adapter_for("fulu", {"base_url": simulator.url, "app_key": simulator.fulu_app_key,
                                   "secret": simulator.fulu_secret, "verify_reply_sign": False})
    with caplog.at_level(logging.WARNING, logger="kamen.suppliers.fulu"):
        assert len(lenient.list_products().items) == 4
    assert "signature mismatch" in caplog.text  # still logged


def test_a_reply_without_a_signature_is_used(fulu, simulator):
    original = simulator._json
    simulator._json = lambda obj, status=200: original({k: v for k, v in obj.items() if k != "sign"}, status)
    assert len(fulu.list_products().items) == 4


def test_bad_products_are_rejected_the_rest_kept(fulu, simulator):
    simulator.overrides = {
        "1001": {"purchase_price": Decimal("-1.00")},
        "1002": {"product_name": MISSING},
        "1003": {"product_type": "礼品"},
    }
    page = fulu.list_products()
    assert [p.code for p in page.items] == ["1004"]
    reasons = {r.code: r.reason for r in page.rejected}
    assert "负数" in reasons["1001"]
    assert "product_name" in reasons["1002"]
    assert "礼品" in reasons["1003"]


def _encrypt(plain, key):
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key.encode()), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def test_decrypt_card():
    assert decrypt_card(_encrypt("CARD-2024-卡密", SECRET), SECRET) == "CARD-2024-卡密"
    with pytest.raises(SupplierError, match="解密失败"):
        decrypt_card(_encrypt("x", SECRET), "f" * 32)
    with pytest.raises(SupplierError, match="32"):
        decrypt_card("AAAA", "short")


def test_top_up_goods_get_their_buyer_fields_from_the_template(fulu, simulator):
    page = fulu.list_products()
    by_code = {p.code: p for p in page.items}
    assert by_code["1002"].buyer_fields == [
        {"key": "charge_account", "label": "充值手机号", "pattern": r"^1[3-9]\d{9}$", "hint": "11 位手机号"}]
    assert by_code["1001"].buyer_fields is None  # card goods have no template
    methods = [json.loads(body)["method"] for *_, body in simulator.requests]
    assert methods.count("fulu.goods.template.get") == 1  # one call per template, not per product


def test_an_unreadable_template_rejects_its_goods_only(fulu, simulator):
    simulator.fulu_templates = {}
    page = fulu.list_products()
    assert sorted(p.code for p in page.items) == ["1001", "1003"]
    assert sorted(r.code for r in page.rejected) == ["1002", "1004"]
    assert "tpl-account" in page.rejected[0].reason and "模板不存在" in page.rejected[0].reason


def test_documented_signature_examples():
    """docs/fulu.md "Worked example" and "Reply", as fixed vectors."""
    params = {"app_key": "fulu-demo-key", "method": "fulu.goods.info.get", "timestamp": "2026-11-25 10:00:00",
              "version": "2.0", "format": "json", "charset": "utf-8", "sign_type": "md5", "app_auth_token": "",
              "biz_content": '{"product_id":10000001}'}
    secret = "0123456789abcdef0123456789abcdef"
    assert sign(params, secret) == "d701189cf9da0d192c919a42bff3e924"
    assert sign(dict(reversed(params.items())), secret) == "d701189cf9da0d192c919a42bff3e924"  # order-free
    assert reply_sign('{"product_id":10000001,"purchase_price":9.5}', secret) == "a1179b693fffea4d98b826946129257e"
