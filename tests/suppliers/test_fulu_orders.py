"""Fulu-style ordering against the simulator: place, query, callbacks, faults."""
import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kamen.suppliers.base import (
    AuthFailed,
    InsufficientBalance,
    InvalidAccount,
    OrderStatus,
    OutOfStock,
    PriceAboveLimit,
    ProductUnavailable,
    Transient,
)
from kamen.suppliers.fulu import GATEWAY_ERRORS, decrypt_card, gateway_error

CARD, TOPUP = "1001", "1002"  # make_catalog: 1001 card at 9.50, 1002 top-up at 10.50
LIMIT = Decimal("20.00")


def sent(simulator, method):
    """biz_content of every request of this method the simulator received."""
    out = []
    for _, path, _, body in simulator.requests:
        params = json.loads(body) if path == "/api/getway" else {}
        if params.get("method") == method:
            out.append(json.loads(params["biz_content"]))
    return out


def test_card_order_success_decrypts_cards_and_echoes_the_key(fulu, simulator):
    result = fulu.place_order("K100", CARD, 2, {}, LIMIT)
    assert result.status is OrderStatus.SUCCESS
    assert result.idempotency_key == "K100"
    assert result.supplier_order_id == simulator.orders["K100"]["id"]
    assert [c["number"] for c in result.cards] == ["CARD000100", "CARD000101"]
    assert [c["password"] for c in result.cards] == ["PWD-1-0-密", "PWD-1-1-密"]
    assert result.cost == Decimal("9.50")
    (biz,) = sent(simulator, "fulu.order.card.add")
    assert biz == {"product_id": 1001, "customer_order_no": "K100", "buy_num": 2, "customer_price": 20.00}
    assert simulator.products[CARD].stock == 98
    # The timeline copy holds no card secret and no key.
    flat = json.dumps(result.raw, ensure_ascii=False)
    assert "PWD-1-0" not in flat and simulator.fulu_app_key not in flat and simulator.fulu_secret not in flat
    assert result.raw["reply"]["cards"][0]["card_pwd"] == "***"


def test_topup_order_goes_to_direct_add_with_charge_fields(fulu, simulator):
    result = fulu.place_order("K101", TOPUP, 1, {"charge_account": "13800138000", "charge_password": "pw",
                                                 "unknown": "x"}, LIMIT)
    assert result.status is OrderStatus.SUCCESS and result.cards == []
    (biz,) = sent(simulator, "fulu.order.direct.add")
    assert biz["charge_account"] == "13800138000" and biz["charge_password"] == "pw" and "unknown" not in biz
    assert result.raw["request"]["biz_content"]["charge_password"] == "***"


def test_topup_without_account_is_refused_before_sending(fulu, simulator):
    with pytest.raises(InvalidAccount):
        fulu.place_order("K102", TOPUP, 1, {}, LIMIT)
    assert sent(simulator, "fulu.order.direct.add") == [] and simulator.orders == {}


def test_known_price_above_limit_is_refused_before_paying(fulu, simulator):
    balance = simulator.balance
    with pytest.raises(PriceAboveLimit):
        fulu.place_order("K103", CARD, 1, {}, Decimal("9.49"))
    assert sent(simulator, "fulu.order.card.add") == [] and simulator.balance == balance


def test_gateway_price_check_through_customer_price(fulu, simulator, monkeypatch):
    # The price moves between our check and the order: the gateway refuses on customer_price.
    real = fulu.get_product

    def stale(code):
        product = real(code)
        product.cost_price = Decimal("5.00")
        return product

    monkeypatch.setattr(fulu, "get_product", stale)
    with pytest.raises(PriceAboveLimit):
        fulu.place_order("K104", CARD, 1, {}, Decimal("9.00"))
    assert simulator.orders == {}


@pytest.mark.parametrize("setup, error", [
    (lambda sim: setattr(sim.products[CARD], "stock", 1), OutOfStock),
    (lambda sim: setattr(sim, "balance", Decimal("1.00")), InsufficientBalance),
])
def test_refusals_map_to_contract_errors(fulu, simulator, setup, error):
    setup(simulator)
    with pytest.raises(error):
        fulu.place_order("K105", CARD, 2, {}, LIMIT)
    assert simulator.orders == {}


def test_delisted_product_is_refused(fulu, simulator):
    simulator.products[CARD].on_sale = False
    with pytest.raises(ProductUnavailable):
        fulu.place_order("K106", CARD, 1, {}, LIMIT)


def test_duplicate_order_answer_reports_the_existing_order(fulu, simulator):
    first = fulu.place_order("K107", CARD, 1, {}, LIMIT)
    again = fulu.place_order("K107", CARD, 1, {}, LIMIT)
    assert len(simulator.orders) == 1 and simulator.products[CARD].stock == 99
    assert again.status is OrderStatus.SUCCESS
    assert again.supplier_order_id == first.supplier_order_id
    assert [c["number"] for c in again.cards] == [c["number"] for c in first.cards]


@pytest.mark.parametrize("fault", ["timeout", "5xx", "malformed"])
def test_trouble_after_accepting_is_unknown_never_failed(fulu, simulator, fault):
    simulator.order_fault = fault
    result = fulu.place_order("K108", CARD, 1, {}, LIMIT)
    assert result.status is OrderStatus.UNKNOWN
    assert "K108" in simulator.orders  # it did go through
    simulator.order_fault = None
    later = fulu.query_order("K108")
    assert later.status is OrderStatus.SUCCESS and len(later.cards) == 1
    assert len(sent(simulator, "fulu.order.card.add")) == 1  # queried, not placed again


def test_trouble_before_sending_is_transient(simulator):
    from kamen.suppliers import adapter_for
    dead = adapter_for("fulu", {"base_url": "http://127.0.0.1:9", "app_key": "k",
                                "secret": simulator.fulu_secret, "timeout": 1})
    with pytest.raises(Transient):
        dead.place_order("K109", CARD, 1, {}, LIMIT)


def test_slow_success_processing_then_success(fulu, simulator):
    simulator.settle_after = 2
    assert fulu.place_order("K110", CARD, 1, {}, LIMIT).status is OrderStatus.PROCESSING
    assert fulu.query_order("K110").status is OrderStatus.PROCESSING
    assert fulu.query_order("K110").status is OrderStatus.PROCESSING
    done = fulu.query_order("K110")
    assert done.status is OrderStatus.SUCCESS and len(done.cards) == 1


def test_fewer_cards_than_bought_is_partial(fulu, simulator):
    simulator.short_cards = 1
    result = fulu.place_order("K111", CARD, 3, {}, LIMIT)
    assert result.status is OrderStatus.PARTIAL and len(result.cards) == 2


def test_query_of_an_unknown_order_is_unknown_not_failed(fulu):
    assert fulu.query_order("NEVER").status is OrderStatus.UNKNOWN


@pytest.mark.parametrize("transport", ["json", "form", "query"])
def test_callback_in_each_transport(fulu, simulator, transport):
    fulu.place_order("K112", TOPUP, 1, {"charge_account": "13800138000"}, LIMIT)
    headers, body = simulator.fulu_callback("K112", transport)
    result = fulu.parse_callback(headers, body)
    assert (result.status, result.idempotency_key) == (OrderStatus.SUCCESS, "K112")
    assert result.supplier_order_id == simulator.orders["K112"]["id"]
    assert result.cost == Decimal("10.50")
    # Delivered twice: the same answer twice (the caller's one transition takes it once).
    assert fulu.parse_callback(headers, body) == result


def test_failed_callback(fulu, simulator):
    fulu.place_order("K113", CARD, 1, {}, LIMIT)
    assert fulu.parse_callback(*simulator.fulu_callback("K113", status="failed")).status is OrderStatus.FAILED


@pytest.mark.parametrize("transport", ["json", "form"])
def test_forged_or_tampered_callback_is_refused(fulu, simulator, transport):
    fulu.place_order("K114", CARD, 1, {}, LIMIT)
    with pytest.raises(AuthFailed):
        fulu.parse_callback(*simulator.fulu_callback("K114", transport, forge=True))
    headers, body = simulator.fulu_callback("K114", transport, status="failed")
    with pytest.raises(AuthFailed):
        fulu.parse_callback(headers, body.replace(b"failed", b"success"))
    with pytest.raises(AuthFailed):
        fulu.parse_callback(headers, b"")


def test_error_table_rows():
    cases = {"外部订单号已存在": "DuplicateOrder", "订单不存在": "OrderNotFound", "库存不足": "OutOfStock",
             "商品进价高于外部销售价，下单失败": "PriceAboveLimit", "充值账号格式错误": "InvalidAccount",
             "余额不足": "InsufficientBalance", "签名验证失败": "AuthFailed", "系统繁忙": "Transient",
             "商品已下架": "ProductUnavailable", "请求过于频繁": "RateLimited"}
    for message, name in cases.items():
        assert type(gateway_error(message, 9999)).__name__ == name, message
    assert type(gateway_error("随便", 1001)).__name__ == "AuthFailed"
    assert len({row[0] if isinstance(row[0], str) else row[0].__name__ for row in GATEWAY_ERRORS}) == len(GATEWAY_ERRORS)


# Worked example pinned for docs/fulu.md ("Cards"): key = the app secret's UTF-8 bytes.
DOC_SECRET = "0123456789abcdef0123456789abcdef"
DOC_CIPHERTEXT = "86AsK+5BgaLhEECF4yqPBQ=="


def test_card_decryption_worked_example():
    padder = padding.PKCS7(128).padder()
    plain = padder.update("卡密-ABC123".encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(DOC_SECRET.encode()), modes.ECB()).encryptor()
    expected = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    assert expected == DOC_CIPHERTEXT
    assert decrypt_card(DOC_CIPHERTEXT, DOC_SECRET) == "卡密-ABC123"


def test_callback_sign_worked_example():
    """docs/fulu.md "Order callback"."""
    from kamen.suppliers.fulu import sign
    params = {"order_id": "19052317001", "charge_finish_time": "2024-05-01 12:00:05",
              "customer_order_no": "K20240501001", "order_status": "success", "recharge_description": "充值成功",
              "product_id": "10000001", "price": "9.5000", "buy_num": "1", "operator_serial_number": ""}
    assert sign(params, DOC_SECRET) == "88cb939dcdcf78d589566dda1092cd01"


def test_json_callback_with_numbers_is_signed_over_their_digits(fulu):
    import hashlib
    fields = ('"order_id":"1","customer_order_no":"K9","order_status":"success","price":9.5000,"buy_num":2,'
              '"charge_finish_time":"","recharge_description":"","product_id":1001,"operator_serial_number":""')
    good = hashlib.md5(("".join(sorted("{" + fields + "}")) + fulu.secret).encode()).hexdigest()
    result = fulu.parse_callback({"Content-Type": "application/json"}, f'{{{fields},"sign":"{good}"}}'.encode())
    assert (result.status, result.cost) == (OrderStatus.SUCCESS, Decimal("9.50"))
    with pytest.raises(AuthFailed):  # 9.5 instead of 9.5000: not what was signed
        fulu.parse_callback({}, f'{{{fields.replace("9.5000", "9.5")},"sign":"{good}"}}'.encode())


def test_limit_equal_to_the_price_is_ordered(fulu, simulator):
    assert fulu.place_order("K115", CARD, 1, {}, Decimal("9.50")).status is OrderStatus.SUCCESS
    (biz,) = sent(simulator, "fulu.order.card.add")
    assert biz["customer_price"] == 9.5


def test_card_order_success_without_cards_yet_is_processing(fulu, simulator):
    simulator.short_cards = 1
    result = fulu.place_order("K116", CARD, 1, {}, LIMIT)
    assert result.status is OrderStatus.PROCESSING and result.cards == []


def test_duplicate_answer_whose_query_fails_is_unknown(fulu, simulator):
    fulu.place_order("K117", CARD, 1, {}, LIMIT)
    simulator.healthy_requests = len(simulator.requests) + 2  # goods info and the add answer; the query fails
    simulator.http_status = 503
    result = fulu.place_order("K117", CARD, 1, {}, LIMIT)
    assert result.status is OrderStatus.UNKNOWN and len(simulator.orders) == 1
