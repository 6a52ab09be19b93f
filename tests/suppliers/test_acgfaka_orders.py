"""acg-faka 共享店铺 ordering against the simulator: trade, query polling, faults."""
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from kamen.suppliers import base as contract
from kamen.suppliers.base import OrderStatus

CARD, TOPUP = "1001", "1002"  # make_catalog: 1001 card at 9.50, 1002 top-up (hand-delivered) at 10.50
LIMIT = Decimal("20.00")


def trades(simulator):
    return [dict(parse_qsl(body.decode())) for _, path, _, body in simulator.requests
            if path == "/shared/commodity/trade"]


def test_trade_success_reads_card_codes_from_secret(acg, simulator):
    result = acg.place_order("A100", CARD, 2, {}, LIMIT)
    assert result.status is OrderStatus.SUCCESS
    assert [c["number"] for c in result.cards] == ["CARD000100", "CARD000101"]
    assert result.supplier_order_id == simulator.orders["A100"]["id"]
    assert result.cost == Decimal("9.50") and result.idempotency_key == "A100"
    assert simulator.balance == Decimal("1234.56") - Decimal("19.00")
    (form,) = trades(simulator)
    assert (form["shared_code"], form["num"], form["request_no"], form["contact"]) == (CARD, "2", "A100", "A100")
    assert result.raw["reply"]["secret"] == "***" and "app_key" not in str(result.raw)


def test_widget_fields_are_sent_by_name_and_pending_text_is_processing(acg, simulator):
    result = acg.place_order("A101", TOPUP, 1, {"game_account": "player_01", "server": "微信1区",
                                                "contact": "a@example.com"}, LIMIT)
    assert result.status is OrderStatus.PROCESSING and result.cards == []
    (form,) = trades(simulator)
    assert (form["game_account"], form["server"], form["contact"]) == ("player_01", "微信1区", "a@example.com")


def test_missing_widget_field_is_invalid_account(acg, simulator):
    with pytest.raises(contract.InvalidAccount):
        acg.place_order("A102", TOPUP, 1, {}, LIMIT)
    assert simulator.orders == {}


def test_price_above_limit_refused_before_trading(acg, simulator):
    with pytest.raises(contract.PriceAboveLimit):
        acg.place_order("A103", CARD, 1, {}, Decimal("9.49"))
    assert trades(simulator) == [] and simulator.balance == Decimal("1234.56")


def test_out_of_stock_refused_before_trading(acg, simulator):
    simulator.products[CARD].stock = 1
    with pytest.raises(contract.OutOfStock):
        acg.place_order("A104", CARD, 2, {}, LIMIT)
    assert trades(simulator) == []


def test_stock_gone_at_trade_time_is_out_of_stock(acg, simulator, monkeypatch):
    real = acg.call

    def stock_vanishes(path, params=None, **kw):
        if path.endswith("/trade"):
            simulator.products[CARD].stock = 0
        return real(path, params, **kw)

    monkeypatch.setattr(acg, "call", stock_vanishes)
    with pytest.raises(contract.OutOfStock):
        acg.place_order("A105", CARD, 1, {}, LIMIT)


def test_low_balance_is_insufficient_balance(acg, simulator):
    simulator.balance = Decimal("5")
    with pytest.raises(contract.InsufficientBalance):
        acg.place_order("A106", CARD, 1, {}, LIMIT)


def test_unknown_product_is_unavailable(acg):
    with pytest.raises(contract.ProductUnavailable):
        acg.place_order("A107", "NOPE", 1, {}, LIMIT)


@pytest.mark.parametrize("fault", ["timeout", "5xx", "malformed"])
def test_trouble_after_trading_is_unknown(acg, simulator, fault):
    simulator.order_fault = fault
    result = acg.place_order("A108", CARD, 1, {}, LIMIT)
    assert result.status is OrderStatus.UNKNOWN and "A108" in simulator.orders
    # Without the tradeNo acg-faka cannot be asked: still UNKNOWN, never FAILED.
    assert acg.query_order("A108").status is OrderStatus.UNKNOWN


def test_trouble_before_sending_is_transient(acg, simulator):
    simulator.http_status = 503  # the price check fails first: nothing traded
    with pytest.raises(contract.Transient):
        acg.place_order("A109", CARD, 1, {}, LIMIT)
    assert simulator.orders == {}


def test_duplicate_request_no_is_unknown_not_a_second_order(acg, simulator):
    acg.place_order("A110", CARD, 1, {}, LIMIT)
    again = acg.place_order("A110", CARD, 1, {}, LIMIT)
    assert again.status is OrderStatus.UNKNOWN and len(simulator.orders) == 1


def test_slow_delivery_polled_by_trade_no(acg, simulator):
    simulator.settle_after = 1
    placed = acg.place_order("A111", CARD, 1, {}, LIMIT)
    assert placed.status is OrderStatus.PROCESSING
    assert acg.query_order("A111", placed.supplier_order_id).status is OrderStatus.PROCESSING
    done = acg.query_order("A111", placed.supplier_order_id)
    assert done.status is OrderStatus.SUCCESS and [c["number"] for c in done.cards] == ["CARD000100"]


def test_query_of_unknown_trade_no_is_unknown(acg):
    assert acg.query_order("A112", "SIM999999").status is OrderStatus.UNKNOWN


def test_fewer_codes_than_bought_is_partial(acg, simulator):
    simulator.short_cards = 1
    result = acg.place_order("A113", CARD, 2, {}, LIMIT)
    assert result.status is OrderStatus.PARTIAL and len(result.cards) == 1


def test_no_callbacks(acg):
    with pytest.raises(contract.SupplierError, match="不发送订单回调"):
        acg.parse_callback({}, b"tradeNo=1")


def test_limit_is_checked_against_what_we_pay_not_the_retail_price(acg, simulator):
    # user_price/factory_price 9.50 is what we pay; items' price (retail) is 10.00.
    assert acg.place_order("A114", CARD, 1, {}, Decimal("9.50")).status is OrderStatus.SUCCESS


def test_hand_delivered_goods_poll_from_pending_text_to_the_delivery(acg, simulator):
    placed = acg.place_order("A115", TOPUP, 1, {"game_account": "player_01"}, LIMIT)
    assert placed.status is OrderStatus.PROCESSING and placed.message.startswith("正在发货中")
    assert acg.query_order("A115", placed.supplier_order_id).status is OrderStatus.PROCESSING
    simulator.acg_deliver("A115", "已充值到账，单号 T123")
    done = acg.query_order("A115", placed.supplier_order_id)
    assert done.status is OrderStatus.SUCCESS and done.cards[0]["number"] == "已充值到账，单号 T123"
