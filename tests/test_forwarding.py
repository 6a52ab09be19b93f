"""一键代发 against the supplier simulator over real HTTP: every order ends right, with
exactly one supplier order per shop order, and is delivered once."""
import threading
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import AttemptStatus, Notification, OrderStatus, Supplier
from kamen.services import forwarding
from kamen.suppliers import adapter_for
from tests.forwarding_helpers import (  # noqa: F401
    CARD_CODE,
    TOPUP_CODE,
    attempts,
    buy,
    buy_and_pay,
    channel,
    clock,
    events,
    fresh,
    fulu_supplier,
    note,
    pay,
    placed,
    supplier_product,
)
from tests.order_helpers import notify_params


def _poll_after(clock, minutes=1):
    clock.advance(minutes=minutes)
    return forwarding.poll_due(db.session)


def test_a_paid_card_order_is_placed_once_and_its_cards_reach_the_buyer(app, client, simulator, fulu_supplier,
                                                                         channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product, quantity=2)
    assert order.status is OrderStatus.DELIVERED
    [sent] = placed(simulator, order)
    assert sent["num"] == 2 and sent["key"] == order.order_no
    text = note(order)
    assert "CARD000100" in text and "PWD-1-1-密" in text
    [attempt] = attempts(order)
    assert attempt.status is AttemptStatus.SUCCESS and attempt.supplier_order_id == sent["id"]
    assert attempt.max_unit_cost == Decimal("9.97")  # ¥9.50 priced with + 5 % drift, rounded down
    page = client.get(f"/order/{order.order_no}")
    assert "PWD-1-0-密" in page.text and "PWD-1-1-密" in page.text
    kinds = [e.kind for e in events(order)]
    assert kinds == ["created", "paid", "forwarding", "forward_sent", "delivered"]
    exchanges = str([e.data for e in events(order)])
    assert "PWD-1-" not in exchanges and "CARD0001" not in exchanges  # the cards live encrypted, never in the timeline
    assert simulator.fulu_secret not in exchanges and "order_state" in exchanges  # the reply is there, redacted
    assert _poll_after(clock, 10) == 0  # nothing left to ask about


def test_slow_success_is_polled_with_backoff_until_delivered(app, client, simulator, fulu_supplier, channel, clock):
    simulator.settle_after = 2  # two queries answer "processing"
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.FORWARDING
    assert attempts(order)[0].status is AttemptStatus.PROCESSING
    assert forwarding.poll_due(db.session) == 0  # not due yet
    assert _poll_after(clock, 0.5) == 1 and fresh(order).status is OrderStatus.FORWARDING  # 30 s after the reply
    assert _poll_after(clock, 0.5) == 0  # backoff: the next query waits a minute
    assert _poll_after(clock, 0.5) == 1 and fresh(order).status is OrderStatus.FORWARDING
    assert _poll_after(clock, 1) == 0  # then two minutes
    assert _poll_after(clock, 1) == 1 and fresh(order).status is OrderStatus.DELIVERED
    assert "CARD0001" in note(order) and len(placed(simulator, order)) == 1


def _unknown_then_resolved(client, simulator, fault, supplier, channel, clock):
    simulator.order_fault = fault
    product = supplier_product(supplier, simulator)
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.FORWARDING
    [attempt] = attempts(order)
    assert attempt.status is AttemptStatus.UNKNOWN
    simulator.order_fault = None
    _poll_after(clock, 3)
    assert fresh(order).status is OrderStatus.DELIVERED
    assert len(placed(simulator, order)) == 1 and "CARD0001" in note(order)
    return order


def test_timeout_after_accepting_is_queried_never_placed_again(app, client, simulator, fulu_supplier, channel, clock):
    _unknown_then_resolved(client, simulator, "timeout", fulu_supplier, channel, clock)


def test_5xx_after_accepting_is_queried(app, client, simulator, fulu_supplier, channel, clock):
    _unknown_then_resolved(client, simulator, "5xx", fulu_supplier, channel, clock)


def test_malformed_answer_after_accepting_is_queried(app, client, simulator, fulu_supplier, channel, clock):
    order = _unknown_then_resolved(client, simulator, "malformed", fulu_supplier, channel, clock)
    assert any("结果未知" in e.message for e in events(order))


def test_a_duplicate_order_answer_is_that_order_not_a_new_one(app, client, simulator, fulu_supplier, channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    order = buy(client, product)
    # Our number already reached the supplier (a request whose answer was lost).
    fulu = adapter_for("fulu", {"base_url": simulator.url, "app_key": simulator.fulu_app_key,
                                "secret": simulator.fulu_secret})
    fulu.place_order(order.order_no, CARD_CODE, 1, {}, Decimal("10"))
    order = pay(client, channel, order)
    assert order.status is OrderStatus.DELIVERED and len(placed(simulator, order)) == 1


def test_callbacks_deliver_once_and_forged_ones_change_nothing(app, client, simulator, fulu_supplier, channel, clock):
    simulator.settle_after = 5  # only the callback says it is done
    product = supplier_product(fulu_supplier, simulator, TOPUP_CODE)
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.FORWARDING
    url = f"/api/suppliers/{fulu_supplier.id}/callback"

    headers, body = simulator.fulu_callback(order.order_no, forge=True)
    answer = client.post(url, data=body, headers=headers, csrf=False)
    assert answer.status_code == 403 and fresh(order).status is OrderStatus.FORWARDING

    headers, body = simulator.fulu_callback(order.order_no, transport="form")
    assert client.post(url, data=body, headers=headers, csrf=False).text == "success"
    assert fresh(order).status is OrderStatus.DELIVERED
    _, query = simulator.fulu_callback(order.order_no, transport="query")
    again = client.get(url, query_string=query.decode())  # the gateway retries, here as a GET
    assert again.text == "success" and fresh(order).status is OrderStatus.DELIVERED
    kinds = [e.kind for e in events(order)]
    assert kinds.count("delivered") == 1 and kinds.count("forward_duplicate") == 1
    assert len(placed(simulator, order)) == 1
    assert client.post(f"/api/suppliers/{fulu_supplier.id + 99}/callback", data=body, headers=headers, csrf=False).status_code == 404


def test_a_callback_before_the_order_reply_delivers_and_the_late_reply_is_ignored(app, client, simulator,
                                                                                   fulu_supplier, channel, clock):
    app.config["FORWARD_TIMEOUT_SECONDS"] = 2
    simulator.order_fault = "timeout"  # the order is recorded, its reply comes 3 s later
    product = supplier_product(fulu_supplier, simulator, TOPUP_CODE)
    order = buy(client, product)
    notify = notify_params(order.order_no, order.amount)
    url = f"/pay/notify/{channel.id}"
    paying = threading.Thread(target=lambda: app.test_client().get(url, query_string=notify))
    paying.start()
    for _ in range(200):
        if simulator.orders:
            break
        threading.Event().wait(0.01)
    headers, body = simulator.fulu_callback(order.order_no)
    assert app.test_client().post(f"/api/suppliers/{fulu_supplier.id}/callback", data=body,
                                  headers=headers, csrf=False).text == "success"
    paying.join(10)
    order = fresh(order)
    assert order.status is OrderStatus.DELIVERED
    assert [a.status for a in attempts(order)] == [AttemptStatus.SUCCESS]
    assert len(placed(simulator, order)) == 1


def test_no_callback_and_no_answer_alerts_once_after_the_deadline(app, client, simulator, fulu_supplier, channel, clock):
    simulator.order_fault = "5xx"
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product)
    simulator.http_status = 503  # the supplier stays down: every query fails
    for _ in range(6):
        _poll_after(clock, 10)
    order = fresh(order)
    assert order.status is OrderStatus.UNCERTAIN and order.refunded_at is None
    alerts = db.session.scalars(sa.select(Notification).where(Notification.kind == "forward_unknown")).all()
    assert len(alerts) == 1 and order.order_no in alerts[0].body
    simulator.http_status = None
    _poll_after(clock, 10)
    assert fresh(order).status is OrderStatus.DELIVERED and len(placed(simulator, order)) == 1


def test_partial_delivers_what_came_and_refunds_the_rest(app, client, simulator, fulu_supplier, channel, clock):
    simulator.short_cards = 1
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product, quantity=3)
    assert order.status is OrderStatus.DELIVERED
    assert order.refund_amount == (order.amount / 3).quantize(Decimal("0.01"))
    assert note(order).count("卡密：") == 2
    page = client.get(f"/order/{order.order_no}").text
    assert "2/3" in page and "已退款" in page
    from kamen.services import order_reports

    totals = order_reports.period_totals(db.session, order_reports.OrderFilters())
    assert totals.revenue == order.amount - order.refund_amount  # the refunded part is not income


def test_price_above_the_limit_is_never_paid(app, client, simulator, fulu_supplier, channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    simulator.products[CARD_CODE].price = Decimal("10.00")  # above ¥9.50 + 5 %
    balance = simulator.balance
    order = buy_and_pay(client, channel, product)
    assert placed(simulator, order) == [] and simulator.balance == balance
    assert fresh(order).status is OrderStatus.REFUNDED
    [attempt] = attempts(order)
    assert attempt.status is AttemptStatus.REFUSED and "高于" in attempt.message


def test_manual_supplier_goods_wait_for_the_admin(app, client, channel):
    from tests.helpers import make_product

    product = make_product(sale_price=Decimal("10.00"))  # the shop's own (自营) goods
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.PAID and attempts(order) == []


def test_an_inactive_supplier_is_not_ordered_from(app, client, simulator, fulu_supplier, channel):
    product = supplier_product(fulu_supplier, simulator)
    db.session.get(Supplier, fulu_supplier.id).is_active = False
    db.session.commit()
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.PAID and simulator.orders == {}


def test_an_order_paid_while_the_queue_was_away_is_forwarded_by_the_tick(app, client, simulator, fulu_supplier,
                                                                          channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    app.config.update(REDIS_URL="redis://127.0.0.1:9/0", JOBS_SYNC=False)  # a closed port: Redis is away
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.FORWARDING and attempts(order) == [] and simulator.orders == {}
    app.config.update(REDIS_URL=None, JOBS_SYNC=True)  # back (in-process here)
    app.extensions.pop("kamen_redis", None)
    assert _poll_after(clock, 1) == 0 and attempts(order) == []  # just asked for: give the job its chance
    _poll_after(clock, 2)
    assert fresh(order).status is OrderStatus.DELIVERED and len(placed(simulator, order)) == 1


def test_adapters_learn_the_callback_address(app, simulator, fulu_supplier):
    with app.test_request_context("/", base_url="https://shop.example"):
        adapter = forwarding.adapter_for(fulu_supplier)
        assert adapter.callback_url == f"https://shop.example/api/suppliers/{fulu_supplier.id}/callback"
    app.config["PUBLIC_URL"] = "https://kamen.example/"
    assert forwarding.adapter_for(fulu_supplier).callback_url == \
        f"https://kamen.example/api/suppliers/{fulu_supplier.id}/callback"
    app.config["PUBLIC_URL"] = ""
    assert forwarding.adapter_for(fulu_supplier).callback_url is None  # a job without a request: polling only


def test_a_card_orders_callback_fetches_the_cards_at_once(app, client, simulator, fulu_supplier, channel, clock):
    simulator.settle_after = 5
    order = buy_and_pay(client, channel, supplier_product(fulu_supplier, simulator))
    assert order.status is OrderStatus.FORWARDING
    simulator.settle_after = 0  # the supplier is done: its callback carries no cards, its query does
    headers, body = simulator.fulu_callback(order.order_no)
    answer = client.post(f"/api/suppliers/{fulu_supplier.id}/callback", data=body, headers=headers, csrf=False)
    assert answer.text == "success" and fresh(order).status is OrderStatus.DELIVERED
    assert "CARD0001" in note(order) and len(placed(simulator, order)) == 1


def test_a_supplier_switched_off_after_payment_leaves_the_order_to_the_admin(app, client, simulator, fulu_supplier,
                                                                             channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    app.config.update(REDIS_URL="redis://127.0.0.1:9/0", JOBS_SYNC=False)  # the job waits
    order = buy_and_pay(client, channel, product)
    app.config.update(REDIS_URL=None, JOBS_SYNC=True)
    app.extensions.pop("kamen_redis", None)
    db.session.get(Supplier, fulu_supplier.id).is_active = False
    db.session.commit()
    forwarding.forward(db.session, order.id)
    order = fresh(order)
    assert order.status is OrderStatus.MANUAL and order.refunded_at is None and simulator.orders == {}


def test_a_crashing_job_is_written_on_the_order(app, client, simulator, fulu_supplier, channel, clock, monkeypatch):
    from jobs.forwarding import forward_order

    product = supplier_product(fulu_supplier, simulator)
    app.config.update(REDIS_URL="redis://127.0.0.1:9/0", JOBS_SYNC=False)  # the job waits
    order = buy_and_pay(client, channel, product)
    app.config.update(REDIS_URL=None, JOBS_SYNC=True)
    app.extensions.pop("kamen_redis", None)

    def broken(*_args):
        raise RuntimeError("database went away")

    monkeypatch.setattr(forwarding, "sources_for", broken)
    try:
        forward_order(order.id)
        raise AssertionError("the job must fail")
    except RuntimeError:
        pass
    assert any(e.kind == "forward_error" for e in events(order)) and simulator.orders == {}
    assert fresh(order).status is OrderStatus.FORWARDING  # the tick asks for the job again


def test_unreadable_supplier_settings_wait_for_the_admin_without_placing(app, client, simulator, fulu_supplier,
                                                                        channel, clock):
    product = supplier_product(fulu_supplier, simulator)
    supplier = db.session.get(Supplier, fulu_supplier.id)
    good = supplier.secret_encrypted
    supplier.secret_encrypted = "not a sealed secret"
    db.session.commit()
    order = buy_and_pay(client, channel, product)
    [attempt] = attempts(order)
    assert attempt.status is AttemptStatus.RETRY and "货源设置有误" in attempt.message and simulator.orders == {}
    db.session.get(Supplier, fulu_supplier.id).secret_encrypted = good  # the admin saves the secret again
    db.session.commit()
    _poll_after(clock, 1)
    assert fresh(order).status is OrderStatus.DELIVERED and len(placed(simulator, order)) == 1
