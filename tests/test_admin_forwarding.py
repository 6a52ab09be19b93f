"""Back office for 一键代发: the order page's forwarding table and buttons, the 待人工处理
queue, 代发设置 and the supplier's price drift."""
from decimal import Decimal

from kamen.extensions import db
from kamen.models import AttemptStatus, OrderStatus, Supplier
from kamen.services import forwarding
from tests.forwarding_helpers import (  # noqa: F401
    CARD_CODE,
    attempts,
    buy_and_pay,
    channel,
    clock,
    events,
    fresh,
    fulu_supplier,
    supplier_product,
)
from tests.helpers import make_product


def test_order_page_shows_attempts_and_requery_delivers(app, client, auth, simulator, fulu_supplier, channel, clock):
    simulator.order_fault = "5xx"
    order = buy_and_pay(client, channel, supplier_product(fulu_supplier, simulator))
    auth.login()
    page = client.get(f"/admin/orders/{order.id}").text
    assert "一键代发" in page and "结果未知" in page and order.order_no in page
    assert "重新查询" in page and "改为人工处理" in page and f"/admin/orders/{order.id}/forward/next" not in page
    assert fulu_supplier.app_id not in page and simulator.fulu_secret not in page
    simulator.order_fault = None
    response = client.post(f"/admin/orders/{order.id}/forward/query", follow_redirects=True)
    assert "已向货源查询：成功" in response.text
    assert fresh(order).status is OrderStatus.DELIVERED and len(simulator.orders) == 1
    again = client.post(f"/admin/orders/{order.id}/forward/query", follow_redirects=True)
    assert "没有等待结果的货源订单" in again.text


def test_take_over_stops_polling_but_a_late_delivery_still_reaches_the_buyer(app, client, auth, simulator,
                                                                              fulu_supplier, channel, clock):
    simulator.settle_after = 5
    order = buy_and_pay(client, channel, supplier_product(fulu_supplier, simulator))
    auth.login()
    response = client.post(f"/admin/orders/{order.id}/forward/manual", follow_redirects=True)
    assert "已改为人工处理" in response.text and fresh(order).status is OrderStatus.MANUAL
    clock.advance(minutes=30)
    assert forwarding.poll_due(db.session) == 0  # nobody asks the supplier any more
    todo = client.get("/admin/orders", query_string={"status": "todo"}).text
    assert order.order_no in todo and "待人工处理（1）" in todo
    simulator.settle_after = 0
    client.post(f"/admin/orders/{order.id}/forward/query")  # the admin still may ask
    assert fresh(order).status is OrderStatus.DELIVERED
    assert client.post(f"/admin/orders/{order.id}/forward/manual", follow_redirects=True).status_code == 200
    assert fresh(order).status is OrderStatus.DELIVERED  # refused: nothing in flight


def test_resend_is_refused_unless_the_last_attempt_is_known_failed(app, client, auth, simulator, fulu_supplier,
                                                                   channel, clock):
    simulator.order_fault = "timeout"
    order = buy_and_pay(client, channel, supplier_product(fulu_supplier, simulator))
    auth.login()
    response = client.post(f"/admin/orders/{order.id}/forward/next", follow_redirects=True)
    assert "确认失败时才能重发" in response.text
    assert [a.status for a in attempts(order)] == [AttemptStatus.UNKNOWN] and len(simulator.orders) == 1


def test_manual_orders_are_delivered_by_hand_from_the_queue(app, client, auth, channel):
    order = buy_and_pay(client, channel, make_product(sale_price=Decimal("10.00")))
    auth.login()
    assert order.order_no in client.get("/admin/orders", query_string={"status": "todo"}).text
    client.post(f"/admin/orders/{order.id}/deliver", data={"content": "兑换码 ABC-123"})
    assert fresh(order).status is OrderStatus.DELIVERED
    assert order.order_no not in client.get("/admin/orders", query_string={"status": "todo"}).text


def test_forwarding_settings_and_supplier_drift(app, client, auth, simulator, fulu_supplier, channel, clock):
    auth.login()
    page = client.get("/admin/settings/forwarding")
    assert page.status_code == 200 and "缺货致歉优惠券金额" in page.text
    bad = client.post("/admin/settings/forwarding", data={"unknown_alert_minutes": "0", "apology_coupon_amount": "5",
                                                         "apology_coupon_days": "30"})
    assert bad.status_code == 400 and "1 分钟到 7 天" in bad.text
    assert forwarding.forwarding_settings(db.session)["unknown_alert_minutes"] == 30
    ok = client.post("/admin/settings/forwarding", data={"unknown_alert_minutes": "15", "apology_coupon_amount": "8.80",
                                                        "apology_coupon_days": "7"})
    assert ok.status_code == 302
    saved = forwarding.forwarding_settings(db.session)
    assert (saved["unknown_alert_minutes"], saved["apology_coupon_amount"], saved["apology_coupon_days"]) == (
        15, Decimal("8.80"), 7)
    supplier = db.session.get(Supplier, fulu_supplier.id)
    supplier.order_price_drift_percent = Decimal("10")
    db.session.commit()
    product = supplier_product(fulu_supplier, simulator)
    simulator.products[CARD_CODE].price = Decimal("10.40")  # ¥9.50 + 10 % = ¥10.45
    order = buy_and_pay(client, channel, product)
    assert fresh(order).status is OrderStatus.DELIVERED and attempts(order)[0].max_unit_cost == Decimal("10.45")


def test_supplier_form_sets_the_order_price_drift(app, client, auth):
    import sqlalchemy as sa

    from tests.test_admin_suppliers import BASE

    auth.login()
    form = {**BASE, "kind": "manual", "code": "drift"}
    refused = client.post("/admin/suppliers/new", data={**form, "order_price_drift_percent": "150"})
    assert refused.status_code == 400 and "0% 到 100%" in refused.text
    assert db.session.scalar(sa.select(Supplier).filter_by(code="drift")) is None
    assert client.post("/admin/suppliers/new", data={**form, "order_price_drift_percent": "8"}).status_code == 302
    assert db.session.scalar(sa.select(Supplier).filter_by(code="drift")).order_price_drift_percent == Decimal("8")
    page = client.get(f"/admin/suppliers/{db.session.scalar(sa.select(Supplier.id).filter_by(code='drift'))}/edit")
    assert "下单进价最多高出" in page.text


def test_low_balance_after_forwarding_alerts_once_and_shows_on_the_supplier_page(app, client, auth, simulator,
                                                                                  fulu_supplier, channel, clock):
    import sqlalchemy as sa

    from kamen.models import Notification

    supplier = db.session.get(Supplier, fulu_supplier.id)
    supplier.balance_alert_below = simulator.balance  # the first order takes it below
    db.session.commit()
    product = supplier_product(fulu_supplier, simulator)
    for contact in ("13800000001", "13800000002"):
        buy_and_pay(client, channel, product, contact=contact)
        forwarding.poll_due(db.session)
    alerts = db.session.scalars(sa.select(Notification).where(Notification.kind == "low_balance")).all()
    assert len(alerts) == 1
    auth.login()
    page = client.get(f"/admin/suppliers/{supplier.id}").text
    assert "当前余额已低于告警线" in page and "成功 2" in page


def test_a_late_delivery_after_a_refund_alerts_the_admin(app, client, auth, simulator, fulu_supplier, channel, clock):
    import sqlalchemy as sa

    from kamen.models import Notification

    simulator.settle_after = 5
    order = buy_and_pay(client, channel, supplier_product(fulu_supplier, simulator, "1002"))
    auth.login()
    client.post(f"/admin/orders/{order.id}/forward/manual")
    client.post(f"/admin/orders/{order.id}/refund", data={"reason": "买家不要了"})
    assert fresh(order).status is OrderStatus.REFUNDED
    headers, body = simulator.fulu_callback(order.order_no)
    assert client.post(f"/api/suppliers/{fulu_supplier.id}/callback", data=body, headers=headers,
                       csrf=False).text == "success"
    assert fresh(order).status is OrderStatus.REFUNDED
    [alert] = db.session.scalars(sa.select(Notification).where(Notification.kind == "forward_late")).all()
    assert order.order_no in alert.body and "forward_late" in [e.kind for e in events(order)]
