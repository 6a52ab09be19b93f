"""Many buyers at once, through real servers: no oversell, each code once, exactly-once payment.

PostgreSQL behind gunicorn with 4 worker processes; SQLite (embedded) behind
one gunicorn worker with threads, as ./scripts/run serves it.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bench.common import start_gunicorn, wait_ready
from kamen import create_app
from kamen.extensions import db
from kamen.models import CardCode, Order, OrderStatus, Product, StockMode
from tests.conftest import throwaway_pg_database
from tests.helpers import make_product
from tests.order_helpers import make_card_product, make_channel, notify_params

BUYERS = 200
STOCK = 10
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def shop_server(request, tmp_path):
    """A shop served by gunicorn; yields (server URL, app for reading the database)."""
    if request.param == "sqlite":
        url, workers, threads = f"sqlite:///{tmp_path / 'shop.db'}", 1, 8
        yield from _serve(url, workers, threads, tmp_path)
    else:
        with throwaway_pg_database("kamen_buy") as url:
            yield from _serve(url, 4, 1, tmp_path)


def _serve(url, workers, threads, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "SECRET_KEY": "concurrency-secret",
           "KAMEN_INSTANCE_PATH": str(tmp_path / "instance"), "KAMEN_PROXY_COUNT": "1"}
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": env["SECRET_KEY"],
                      "INSTANCE_PATH": env["KAMEN_INSTANCE_PATH"]})
    with app.app_context():
        db.create_all()
        server = start_gunicorn("wsgi:app", ROOT, env, tmp_path / "gunicorn.log", workers=workers, threads=threads)
        try:
            wait_ready(server, "/")
            yield server.url, app
        finally:
            server.stop()
            db.session.remove()
            db.engine.dispose()


def _buy(base, product_id, n, contact=None, ip=None):
    """One buyer: open the product page, then buy one from it."""
    http = requests.Session()
    headers = {"X-Forwarded-For": ip or f"10.{n // 250}.{n % 250}.1"}
    assert f"/p/{product_id}/buy" in http.get(f"{base}/p/{product_id}", headers=headers, timeout=60).text
    resp = http.post(f"{base}/p/{product_id}/buy", allow_redirects=False, timeout=60,
                     headers={**headers, "Origin": base}, data={"quantity": "1", "contact": contact or f"1380000{n:04d}"})
    return resp.status_code, resp.text if resp.status_code != 302 else resp.headers["Location"]


def _crowd(base, product_id, buyers=BUYERS, **same):
    """``buyers`` buy at once; ``same`` (contact= or ip=) is what they share."""
    start = threading.Barrier(buyers)

    def one(n):
        start.wait()
        return _buy(base, product_id, n, **same)

    with ThreadPoolExecutor(buyers) as pool:
        return list(pool.map(one, range(buyers)))


@pytest.mark.parametrize("kind", ["cards", "synced"])
def test_two_hundred_buyers_for_ten_items(shop_server, kind):
    base, app = shop_server
    with app.app_context():
        channel = make_channel()
        if kind == "cards":
            product = make_card_product(codes=STOCK, sale_price=Decimal("10.00"))
        else:
            product = make_product(stock_mode=StockMode.SYNCED, stock=STOCK, sale_price=Decimal("10.00"))
        product_id, channel_id = product.id, channel.id

    results = _crowd(base, product_id)
    statuses = [s for s, _ in results]
    assert 500 not in statuses
    assert statuses.count(302) == STOCK, statuses
    refused = [text for s, text in results if s != 302]
    assert len(refused) == BUYERS - STOCK and all("库存不足" in text for text in refused)

    with app.app_context():
        orders = db.session.scalars(sa.select(Order).where(Order.product_id == product_id)).all()
        assert len(orders) == STOCK and {o.status for o in orders} == {OrderStatus.PENDING}
        assert db.session.get(Product, product_id).stock == 0
        numbers = [o.order_no for o in orders]

    def pay(order_no):
        return requests.get(f"{base}/pay/notify/{channel_id}", params=notify_params(order_no, "10"), timeout=60).text

    with ThreadPoolExecutor(STOCK * 2) as pool:
        answers = list(pool.map(pay, numbers * 2))  # every notify twice, at once
    assert answers == ["success"] * (STOCK * 2)

    with app.app_context():
        db.session.expire_all()
        orders = db.session.scalars(sa.select(Order).where(Order.product_id == product_id)).all()
        expected = OrderStatus.DELIVERED if kind == "cards" else OrderStatus.PAID
        assert {o.status for o in orders} == {expected}
        product = db.session.get(Product, product_id)
        assert product.sales_count == STOCK and product.stock == 0
        if kind == "cards":
            owners = db.session.execute(sa.select(CardCode.order_id, CardCode.status)
                                        .where(CardCode.product_id == product_id)).all()
            assert sorted(o for o, _ in owners) == sorted(o.id for o in orders)  # each code to one order
            assert {s for _, s in owners} == {"sold"}


def test_notify_storm_delivers_once(shop_server):
    base, app = shop_server
    with app.app_context():
        channel = make_channel()
        product = make_card_product(codes=2, sale_price=Decimal("10.00"))
        product_id, channel_id = product.id, channel.id
    status, location = _buy(base, product_id, 1)
    assert status == 302
    order_no = location.rsplit("/", 1)[1]
    params = notify_params(order_no, "10.00")
    url = f"{base}/pay/notify/{channel_id}"

    def storm(_):
        http = requests.Session()
        return [http.get(url, params=params, timeout=60).text for _ in range(50)]

    with ThreadPoolExecutor(20) as pool:
        answers = [a for batch in pool.map(storm, range(20)) for a in batch]
    assert len(answers) == 1000 and set(answers) == {"success"}
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.order_no == order_no))
        assert order.status is OrderStatus.DELIVERED
        sold = db.session.scalars(sa.select(CardCode.order_id).where(CardCode.status == "sold")).all()
        assert sold == [order.id]
        assert db.session.get(Product, product_id).sales_count == 1


@pytest.mark.parametrize("same", [{"contact": "13900139000"}, {"ip": "10.9.9.9"}], ids=["contact", "ip"])
def test_unpaid_order_limit_holds_under_parallel_orders(shop_server, same):
    """20 orders at once from one contact (or one address): exactly the limit (3) are created."""
    base, app = shop_server
    with app.app_context():
        product_id = make_product(stock_mode=StockMode.SYNCED, stock=100, sale_price=Decimal("10.00")).id

    results = _crowd(base, product_id, buyers=20, **same)
    statuses = [s for s, _ in results]
    assert statuses.count(302) == 3, statuses
    refused = [text for s, text in results if s != 302]
    assert {s for s in statuses if s != 302} == {400}
    assert all("3 笔未支付的订单" in text for text in refused)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)
                                 .where(Order.product_id == product_id)) == 3
        assert db.session.get(Product, product_id).stock == 97  # refused orders reserved nothing
