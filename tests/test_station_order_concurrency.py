"""分站 orders at once through a real gunicorn: one order per order number, and
the station's balance never below zero (PostgreSQL: 4 worker processes;
SQLite as embedded mode serves it: threads)."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Order, OrderStatus
from kamen.suppliers.kamen_signing import sign_headers
from tests.helpers import gunicorn_server
from tests.upstream_helpers import make_station, station_balance

TARGET = "/api/upstream/v1/orders"
QB10 = Decimal("10.18")  # 9.60 × 1.05 + 0.10


@pytest.fixture
def served(app, db_url, backend, tmp_path):
    workers, threads = (4, 1) if backend == "postgresql" else (1, 8)
    with gunicorn_server(db_url, tmp_path, workers=workers, threads=threads) as base:
        yield base


def _create(base, station, order_no):
    body = json.dumps({"order_no": order_no, "code": "self.QB10", "quantity": 1,
                       "fields": {"account": "12345"}}).encode()
    headers = {**sign_headers(station.app_id, station.secret, "POST", TARGET, body),
               "Content-Type": "application/json"}
    resp = requests.post(base + TARGET, data=body, headers=headers, timeout=120)
    return resp.status_code, resp.json()


def _at_once(n, work):
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_the_same_order_number_sent_forty_times_at_once_makes_one_order(app, served):
    station = make_station(balance="100")
    answers = _at_once(40, lambda _i: _create(served, station, "DUP-1"))
    statuses = sorted(s for s, _ in answers)
    assert statuses == [200] * 39 + [201], answers
    assert len({body["order_id"] for _, body in answers}) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 1
    assert station_balance(station.id) == Decimal("100.00") - QB10


def test_sixty_orders_against_a_balance_for_ten(app, served):
    station = make_station(balance=str(QB10 * 10))
    answers = _at_once(60, lambda i: _create(served, station, f"B-{i:03d}"))
    statuses = [s for s, _ in answers]
    assert statuses.count(201) == 10 and statuses.count(402) == 50, statuses
    assert {body["error"]["code"] for s, body in answers if s == 402} == {"insufficient_balance"}
    assert station_balance(station.id) == Decimal("0.00")
    orders = db.session.scalars(sa.select(Order)).all()
    assert len(orders) == 10 and {o.status for o in orders} == {OrderStatus.PAID}
    assert sum(o.amount for o in orders) == QB10 * 10
