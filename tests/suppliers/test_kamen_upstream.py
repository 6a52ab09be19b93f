from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from kamen.suppliers import adapter_for, kamen_upstream
from kamen.suppliers.base import AuthFailed, Delivery, Level, RateLimited
from tests.suppliers.simulator import MISSING, SimError, Simulator, make_catalog, serve


def test_pages_follow_the_cursor(upstream, simulator):
    upstream.page_size = 3
    first = upstream.list_products()
    second = upstream.list_products(cursor=first.next_cursor)
    assert [p.code for p in first.items] == ["1001", "1002", "1003"]
    assert [p.code for p in second.items] == ["1004"] and second.next_cursor is None
    assert "limit=3" in simulator.requests[0][1]


def test_products_are_read_exactly(upstream):
    by_code = {p.code: p for p in upstream.list_products().items}
    card, topup = by_code["1001"], by_code["1002"]
    assert card.cost_price == Decimal("9.50") and card.face_value == Decimal("10.00")
    assert card.market_price == Decimal("10.00")
    assert card.category_path == ("游戏点卡", "腾讯")
    assert card.stock.level == Level.IN and card.stock.qty == 100
    assert card.updated_at == datetime(2024, 5, 1, 12, 0)
    assert topup.delivery == Delivery.TOPUP and topup.field_template[0]["name"] == "account"


@pytest.mark.parametrize("after", [
    datetime(2024, 5, 1, 12, 1, 30),
    datetime(2024, 5, 1, 20, 1, 30, tzinfo=timezone(timedelta(hours=8))),
])
def test_incremental_listing(upstream, after):
    assert [p.code for p in upstream.list_products(updated_after=after).items] == ["1003", "1004"]


def test_stock_in_batches(upstream, simulator, monkeypatch):
    monkeypatch.setattr(kamen_upstream, "MAX_STOCK_CODES", 2)
    simulator.products["1002"].stock = 3
    levels = upstream.get_stock(["1001", "1002", "gone"])
    assert levels["1001"].level == Level.IN
    assert (levels["1002"].level, levels["1002"].qty) == (Level.LOW, 3)
    assert (levels["gone"].level, levels["gone"].qty) == (Level.OUT, 0)
    assert sum(path.endswith("/stock") for _, path, _, _ in simulator.requests) == 2


def test_balance_and_connection(upstream):
    assert upstream.balance() == Decimal("1234.56")
    info = upstream.test_connection()
    assert info.name == "模拟主站" and "¥1,234.56" in info.message


def test_wrong_secret_shows_the_main_station_reason(upstream):
    upstream.secret = "wrong"
    with pytest.raises(AuthFailed, match="签名错误"):
        upstream.balance()


def test_error_codes_map_to_errors(upstream, simulator):
    simulator.error = SimError("分站已停用", code="station_disabled", status=403)
    with pytest.raises(AuthFailed, match="分站已停用"):
        upstream.balance()
    simulator.error = SimError("请求过于频繁", code="rate_limited", status=429)
    with pytest.raises(RateLimited, match="请求过于频繁"):
        upstream.balance()


def test_bad_products_are_rejected(upstream, simulator):
    simulator.overrides = {
        "1001": {"price": "-9.50"},
        "1002": {"name": MISSING},
        "1003": {"stock": {"level": "PLENTY", "qty": 1}},
        "1004": {"updated_at": "yesterday"},
    }
    page = upstream.list_products()
    assert page.items == []
    reasons = {r.code: r.reason for r in page.rejected}
    assert "负数" in reasons["1001"] and "name" in reasons["1002"]
    assert "PLENTY" in reasons["1003"] and "时间" in reasons["1004"]


def test_main_station_under_a_sub_path():
    """The signed path includes the prefix the main station is mounted under."""
    sim = Simulator(make_catalog(2))
    with serve(DispatcherMiddleware(sim.app(), {"/shop": sim.app()})) as url:
        client = adapter_for("kamen", {"base_url": f"{url}/shop/api/upstream/v1",
                                       "app_id": "station-1", "secret": "kamen-station-secret"})
        assert [p.code for p in client.list_products().items] == ["1001", "1002"]
    assert sim.requests[-1][1].startswith("/api/upstream/v1/products")
