"""Ordering through the upstream API, as a 分站 sees it and as the 主站 records it:
paid from the station's balance, fulfilled like any paid order, idempotent on
the station's order number, refunded to the balance, and the signed callback."""
import hashlib
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import CardCode, DownstreamStation, Order, OrderEvent, OrderStatus, Product
from kamen.services import ordering, station_orders
from kamen.suppliers.kamen_signing import signature, verify
from kamen.timeutil import utcnow
from tests.helpers import ROOT
from tests.forwarding_helpers import fulu_supplier  # noqa: F401
from tests.upstream_helpers import make_station, signed_call, station_balance

ORDERS = "/api/upstream/v1/orders"


@pytest.fixture
def station(app):
    return make_station(balance="200")


def _order(client, station, **body):
    payload = {"order_no": "S0001", "code": "self.WY100", "quantity": 1, **body}
    return signed_call(client, station, "POST", ORDERS, payload)


def _codes_left(code="WY100"):
    product = db.session.scalar(sa.select(Product).filter_by(code=code))
    return db.session.scalar(sa.select(sa.func.count()).select_from(CardCode)
                             .where(CardCode.product_id == product.id, CardCode.status == "available"))


def _orders():
    return db.session.scalars(sa.select(Order).order_by(Order.id)).all()


def test_a_card_order_is_paid_from_the_balance_and_delivered_at_once(client, station):
    response = _order(client, station, max_unit_cost="99.85")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    # WY100: cost 95.00 × 1.05 + 0.10 = 99.85, taken from the balance of 200.00.
    assert (body["status"], body["unit_price"], body["amount"], body["order_no"]) == ("success", "99.85", "99.85", "S0001")
    assert len(body["cards"]) == 1 and body["cards"][0]["password"].startswith("WY100-DEMO-")
    assert station_balance(station.id) == Decimal("100.15")
    assert _codes_left() == 2

    order = db.session.scalar(sa.select(Order).where(Order.order_no == body["order_id"]))
    assert (order.status, order.station_id, order.station_order_no) == (OrderStatus.DELIVERED, station.id, "S0001")
    assert order.paid_amount == Decimal("99.85") and order.channel_id is None
    kinds = [e.kind for e in ordering.timeline(db.session, order.id)]
    assert kinds == ["created", "paid", "delivered"]

    queried = signed_call(client, station, "GET", f"{ORDERS}/S0001")
    assert queried.status_code == 200 and queried.get_json() == body


def test_the_same_order_number_twice_returns_the_first_order(client, station):
    first = _order(client, station).get_json()
    again = _order(client, station)
    assert again.status_code == 200 and again.get_json() == first
    assert len(_orders()) == 1 and station_balance(station.id) == Decimal("100.15") and _codes_left() == 2

    other = _order(client, station, quantity=2)
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "duplicate_order"
    assert "已用于另一笔订单" in other.get_json()["error"]["message"]
    assert len(_orders()) == 1


def test_a_refused_number_can_be_used_again_once_the_balance_allows(client, station):
    first = _order(client, station, quantity=3)  # 3 × 99.85 = 299.55 > 200.00
    assert first.status_code == 402
    error = first.get_json()["error"]
    assert error["code"] == "insufficient_balance" and "余额不足" in error["message"] and "299.55" in error["message"]
    assert _orders() == [] and station_balance(station.id) == Decimal("200.00") and _codes_left() == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OrderEvent)) == 0
    retry = _order(client, station, quantity=2)
    assert retry.status_code == 201 and station_balance(station.id) == Decimal("0.30")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"max_unit_cost": "99.84"}, 409, "price_above_limit"),
    ({"code": "self.STEAM-100"}, 409, "out_of_stock"),
    ({"code": "self.NOPE"}, 409, "product_unavailable"),
    ({"code": "self.QB10", "fields": {"account": "abc"}}, 409, "invalid_account"),
    ({"code": "self.QB10"}, 409, "invalid_account"),
    ({"quantity": 0}, 400, "bad_request"),
    ({"quantity": 101}, 400, "bad_request"),
    ({"order_no": "有空格 的号"}, 400, "bad_request"),
    ({"max_unit_cost": "NaN"}, 400, "bad_request"),
    ({"notify_url": "http://169.254.169.254/latest"}, 400, "bad_request"),
    ({"notify_url": "ftp://example.com/x"}, 400, "bad_request"),
])
def test_refusals_take_nothing(client, station, body, status, code):
    response = _order(client, station, **body)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert _orders() == [] and station_balance(station.id) == Decimal("200.00") and _codes_left() == 3


def test_the_price_limit_is_inclusive_and_field_messages_are_the_shops(client, station):
    response = _order(client, station, code="self.QB10", fields={"account": "12345"}, max_unit_cost="10.18")
    assert response.status_code == 201
    assert _order(client, station, order_no="S2", code="self.QB10", fields={"account": "abc"}).get_json()[
        "error"]["message"] == "QQ号格式不正确（5-12 位数字）"


def test_query_names_only_the_stations_own_orders(client, app, station):
    _order(client, station)
    other = make_station(balance="10", name="另一个分站", seed=False)
    assert signed_call(client, other, "GET", f"{ORDERS}/S0001").get_json()["error"]["code"] == "not_found"
    missing = signed_call(client, station, "GET", f"{ORDERS}/S9999")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_a_topup_order_waits_and_a_refund_goes_back_to_the_balance(client, station, notify_receiver):
    url = f"{notify_receiver.url}/api/suppliers/7/callback?x=1"
    body = _order(client, station, code="self.QB10", fields={"account": "12345"}, notify_url=url).get_json()
    assert (body["status"], body["cards"]) == ("processing", [])
    assert station_balance(station.id) == Decimal("189.82")
    assert notify_receiver.posts == []  # not final yet: nothing to tell

    order = db.session.scalar(sa.select(Order).where(Order.order_no == body["order_id"]))
    ordering.refund(db.session, order.id, "上游无货")
    assert station_balance(station.id) == Decimal("200.00")
    db.session.refresh(order)
    assert order.status is OrderStatus.REFUNDED and order.station_notified_status == "refunded"

    # The callback went out at once (jobs run synchronously here), signed as requests are.
    [(target, headers, raw)] = notify_receiver.posts
    assert target == "/api/suppliers/7/callback?x=1"
    assert verify(headers, "POST", target, raw, lambda _: station.secret, lambda *_: False) == station.app_id
    sent = json.loads(raw)
    assert (sent["order_no"], sent["status"], sent["refunded"]) == ("S0001", "failed", True)
    assert "已退款 ¥10.18 到分站余额" in sent["message"] and "上游无货" in sent["message"]
    assert signed_call(client, station, "GET", f"{ORDERS}/S0001").get_json() == sent
    messages = [e.message for e in ordering.timeline(db.session, order.id)]
    assert "已退款：¥10.18 退回分站余额。上游无货" in messages
    assert any(m.startswith("回调分站（第 1 次，failed）：分站已确认") for m in messages)


def test_a_hand_delivery_is_sent_and_a_failed_callback_is_retried_with_backoff(client, app, station, notify_receiver):
    clock = {"now": utcnow()}
    app.config["ORDER_CLOCK"] = lambda: clock["now"]
    notify_receiver.answers = ["error", "success"]
    url = f"{notify_receiver.url}/cb"
    body = _order(client, station, code="self.QB10", fields={"account": "12345"}, notify_url=url).get_json()
    order = db.session.scalar(sa.select(Order).where(Order.order_no == body["order_id"]))
    ordering.deliver_by_hand(db.session, order.id, "已充值到 12345")

    db.session.refresh(order)
    assert len(notify_receiver.posts) == 1 and order.station_notified_status is None
    assert order.station_notify_attempts == 1
    assert order.station_notify_next_at == clock["now"] + timedelta(seconds=15)
    clock["now"] += timedelta(seconds=14)  # not due yet: the tick's sweep sends nothing
    assert station_orders.enqueue_due(db.session) == 0 and len(notify_receiver.posts) == 1
    clock["now"] += timedelta(seconds=1)
    assert station_orders.enqueue_due(db.session) == 1
    # A doubled job for an attempt already made sends nothing.
    assert station_orders.deliver_callback(db.session, order.id) is None
    assert len(notify_receiver.posts) == 2
    db.session.refresh(order)
    assert order.station_notified_status == "delivered" and order.station_notify_next_at is None
    sent = json.loads(notify_receiver.posts[-1][2])
    assert (sent["status"], sent["note"], sent["cards"]) == ("success", "已充值到 12345", [])
    messages = [e.message for e in ordering.timeline(db.session, order.id) if e.kind == "station_notify"]
    assert messages == ["回调分站（第 1 次，success）：失败，15 秒后重试", "回调分站（第 2 次，success）：分站已确认"]


def test_the_last_failed_callback_stops_the_retries(client, station, notify_receiver):
    notify_receiver.answers = ["nope"]
    body = _order(client, station, notify_url=f"{notify_receiver.url}/cb").get_json()
    order_id = db.session.scalar(sa.select(Order.id).where(Order.order_no == body["order_id"]))
    at = utcnow()
    for _ in station_orders.NOTIFY_BACKOFF_SECONDS:
        at += timedelta(days=1)
        assert station_orders.deliver_callback(db.session, order_id, now=at) is False
    order = db.session.get(Order, order_id)
    db.session.refresh(order)
    assert order.station_notify_next_at is None and order.station_notify_attempts == 9
    assert len(notify_receiver.posts) == 9
    last = [e.message for e in ordering.timeline(db.session, order_id)][-1]
    assert last == "回调分站（第 9 次，success）：失败，已停止重试（分站仍可查询订单）"


def test_the_admin_sees_station_orders_marked(client, auth, station):
    _order(client, station)
    auth.login()
    page = client.get("/admin/orders").get_data(as_text=True)
    assert "分站：分站" in page
    order_id = db.session.scalar(sa.select(Order.id))
    detail = client.get(f"/admin/orders/{order_id}").get_data(as_text=True)
    assert "分站：分站" in detail and "S0001" in detail
    refunded = client.post(f"/admin/orders/{order_id}/refund", data={"reason": "卡密有误"}, follow_redirects=True)
    assert "货款已退回分站余额" in refunded.get_data(as_text=True)
    assert station_balance(station.id) == Decimal("200.00")


def _documented_example():
    doc = (ROOT / "docs" / "upstream-api.md").read_text(encoding="utf-8")
    example = doc[doc.index("### Worked example", doc.index("## Orders")):]
    blocks = re.findall(r"```\n(POST \S+)\n(.+?)\n```", example)
    hashes = re.findall(r"`([0-9a-f]{64})`", example)
    return example, blocks, hashes


def test_the_documented_order_example(client, app):
    """docs/upstream-api.md's order and callback example: the vectors, and what the 主站 answers to that body."""
    example, [(create_line, create_body), (callback_line, callback_body)], hashes = _documented_example()
    assert create_line == "POST /api/upstream/v1/orders" and callback_line == "POST /api/suppliers/3/callback"
    secret = "s3cret-from-the-main-station"
    assert hashes == [
        hashlib.sha256(create_body.encode()).hexdigest(),
        signature(secret, "POST", "/api/upstream/v1/orders", "1764036000", "n0nce-0rder-01", create_body.encode()),
        hashlib.sha256(callback_body.encode()).hexdigest(),
        signature(secret, "POST", "/api/suppliers/3/callback", "1764036005", "cb-n0nce-0001", callback_body.encode()),
    ]
    # The callback body is exactly how the 主站 serializes an order.
    assert station_orders.callback_body(json.loads(callback_body)).decode() == callback_body

    station = make_station(balance="100", markup_percent="2", markup_fixed="0")
    response = signed_call(client, station, "POST", ORDERS, json.loads(create_body))
    assert response.status_code == 201
    answer = response.get_json()
    assert (answer["status"], answer["unit_price"], answer["amount"]) == ("processing", "9.79", "9.79")
    assert station_balance(station.id) == Decimal("90.21")
    assert set(answer) == set(json.loads(callback_body))  # the documented fields, no more, no fewer


@pytest.mark.backends("postgresql")  # RQ workers run beside PostgreSQL in production
def test_the_minute_tick_retries_a_due_callback_on_a_real_worker(app, client, station, redis_url, db_url,
                                                                  notify_receiver):
    import uuid

    from kamen import queue
    from tests.helpers import burst_worker

    notify_receiver.answers = ["busy", "success"]
    body = _order(client, station, notify_url=f"{notify_receiver.url}/cb").get_json()
    assert len(notify_receiver.posts) == 1  # the first attempt, at once, refused
    order_id = db.session.scalar(sa.select(Order.id).where(Order.order_no == body["order_id"]))
    db.session.execute(sa.update(Order).where(Order.id == order_id)
                       .values(station_notify_next_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    assert queue.enqueue("jobs.tick.every_minute").backend == "rq"
    result = burst_worker(app, db_url, redis_url, queue_name)
    assert result.returncode == 0, result.stderr
    assert len(notify_receiver.posts) == 2
    [(target, headers, raw)] = notify_receiver.posts[1:]
    assert verify(headers, "POST", target, raw, lambda _: station.secret, lambda *_: False) == station.app_id
    order = db.session.get(Order, order_id)
    db.session.refresh(order)
    assert order.station_notified_status == "delivered" and order.station_notify_attempts == 2


def test_a_station_order_for_supplier_goods_is_forwarded_further_up(client, station, simulator, fulu_supplier,
                                                                     notify_receiver):
    """Chains: the 主站 fills a 分站's order from its own supplier; a partial fill gives the rest back."""
    from kamen.services.stations import station_price
    from tests.forwarding_helpers import supplier_product

    product = supplier_product(fulu_supplier, simulator)  # cost ¥9.50, card goods of the simulator
    unit = station_price(db.session.get(DownstreamStation, station.id), product.cost_price)
    url = f"{notify_receiver.url}/cb"
    body = _order(client, station, code=f"sim-fulu.{product.code}", quantity=2, notify_url=url).get_json()
    # The supplier's codes reach the station as cards (the 主站 keeps them as its delivery text).
    assert body["status"] == "success" and len(body["cards"]) == 2 and body["note"] == "", body
    assert all(card["password"] for card in body["cards"])
    assert [k for k, o in simulator.orders.items() if k.startswith(body["order_id"])]  # placed upstream
    assert station_balance(station.id) == Decimal("200.00") - unit * 2
    assert json.loads(notify_receiver.posts[-1][2])["status"] == "success"

    simulator.short_cards = 1
    partial = _order(client, station, order_no="S0002", code=f"sim-fulu.{product.code}", quantity=2,
                     notify_url=url).get_json()
    assert partial["status"] == "success" and partial["refunded_amount"] == str(unit)
    assert len(partial["cards"]) == 1 and "已退回分站余额" in partial["message"]
    assert station_balance(station.id) == Decimal("200.00") - unit * 3
    assert json.loads(notify_receiver.posts[-1][2])["refunded_amount"] == str(unit)
