"""Several sources per product: failover on "can't fill" answers only, and oversell
recovery (refund, apology coupon, delisting, one alert) when nobody can fill the order."""
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import AttemptStatus, Coupon, Notification, OrderStatus, Product, SupplierKind
from kamen.services import forwarding
from kamen.services.alerts import save_settings as save_alert_settings
from tests.forwarding_helpers import (  # noqa: F401
    CARD_CODE,
    add_source,
    attempts,
    buy_and_pay,
    channel,
    clock,
    events,
    fresh,
    fulu_supplier,
    note,
    placed,
    supplier_product,
)
from tests.sync_fixtures import mailbox, make_supplier, serving_simulator  # noqa: F401

SECOND_CODE = "1003"  # a card product of another 主站, sold to us through acg-faka: the second source


@pytest.fixture
def other():
    """A second remote supplier (another site, its own orders and stock)."""
    with serving_simulator() as sim:
        yield sim


@pytest.fixture
def two_sources(app, simulator, other, fulu_supplier):
    """A shop product filled by the Fulu supplier's 1001, then by the other 主站's 1003."""

    def build(second_price="9.60"):
        product = supplier_product(fulu_supplier, simulator)
        acg = make_supplier(other, SupplierKind.ACGFAKA, code="other-acg", name="第二货源")
        other.products[SECOND_CODE].price = Decimal(second_price)
        second = supplier_product(acg, other, SECOND_CODE, is_listed=False)
        add_source(product, second)
        return product, second

    return build


def test_out_of_stock_moves_to_the_next_source(app, client, simulator, other, two_sources, channel, clock):
    product, second = two_sources()
    simulator.products[CARD_CODE].stock = 0
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.DELIVERED
    first, filled = attempts(order)
    assert (first.status, first.code) == (AttemptStatus.REFUSED, CARD_CODE) and "库存不足" in first.message
    assert (filled.status, filled.code, filled.idempotency_key) == (AttemptStatus.SUCCESS, SECOND_CODE, order.order_no)
    assert placed(simulator, order) == [] and len(placed(other, order)) == 1 and "CARD0001" in note(order)
    assert db.session.get(Product, product.id).stock == 0  # the refusal is fresher news than the last sync


def test_a_source_above_the_cost_limit_is_skipped(app, client, simulator, other, two_sources, channel, clock):
    product, _second = two_sources(second_price="9.98")  # limit ¥9.97
    simulator.products[CARD_CODE].stock = 0
    order = buy_and_pay(client, channel, product)
    assert [a.status for a in attempts(order)] == [AttemptStatus.REFUSED, AttemptStatus.REFUSED]
    assert "高于" in attempts(order)[1].message
    assert fresh(order).status is OrderStatus.REFUNDED and simulator.orders == other.orders == {}


def test_no_failover_on_unknown(app, client, simulator, other, two_sources, channel, clock):
    product, _second = two_sources()
    simulator.order_fault = "5xx"
    order = buy_and_pay(client, channel, product)
    assert [a.status for a in attempts(order)] == [AttemptStatus.UNKNOWN]
    assert fresh(order).status is OrderStatus.FORWARDING and len(simulator.orders) == 1 and other.orders == {}


def test_failed_after_accepting_goes_to_the_admin_who_resends_to_the_next_source(app, client, simulator, other,
                                                                                  fulu_supplier, two_sources, channel,
                                                                                  clock):
    product, _second = two_sources()
    simulator.settle_after = 5
    order = buy_and_pay(client, channel, product)
    assert attempts(order)[0].status is AttemptStatus.PROCESSING
    try:
        forwarding.resend_next(db.session, order.id)
        raise AssertionError("resend must wait for a known failure")
    except forwarding.ForwardRefused:
        pass
    simulator.orders[order.order_no]["state"] = "failed"
    headers, body = simulator.fulu_callback(order.order_no, status="failed")
    answer = client.post(f"/api/suppliers/{fulu_supplier.id}/callback", data=body, headers=headers, csrf=False)
    assert answer.text == "success"
    order = fresh(order)
    assert order.status is OrderStatus.MANUAL and len(attempts(order)) == 1  # no automatic failover after accepting
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.kind == "forward_failed")) == 1
    simulator.settle_after = 0
    forwarding.resend_next(db.session, order.id)
    order = fresh(order)
    assert order.status is OrderStatus.DELIVERED
    assert [a.status for a in attempts(order)] == [AttemptStatus.FAILED, AttemptStatus.SUCCESS]
    assert len(placed(simulator, order)) == len(placed(other, order)) == 1


def test_nobody_can_fill_it_refund_coupon_delist_alert_and_mail(app, client, simulator, other, two_sources, channel,
                                                                 clock, mailbox):
    save_alert_settings(db.session, {"smtp_host": mailbox.host, "smtp_port": mailbox.port, "smtp_ssl": False,
                                     "email_to": "boss@example.com"})
    product, second = two_sources()
    simulator.products[CARD_CODE].stock = 0
    other.products[SECOND_CODE].stock = 0
    order = buy_and_pay(client, channel, product, contact="buyer@example.com")
    assert order.status is OrderStatus.REFUNDED and "缺货" in order.refund_reason
    assert simulator.orders == other.orders == {}
    coupon = db.session.get(Coupon, order.apology_coupon_id)
    assert coupon.value == Decimal("5.00") and coupon.max_uses == 1 and coupon.valid_to > order.paid_at
    product = db.session.get(Product, product.id)
    assert not product.is_listed and product.auto_delisted
    [alert] = db.session.scalars(sa.select(Notification).where(Notification.kind == "order_oversold")).all()
    assert order.order_no in alert.body and coupon.code in alert.body
    to_buyer = [m for m in mailbox.messages if m["To"] == "buyer@example.com"]
    assert len(to_buyer) == 1 and coupon.code in to_buyer[0].get_content()
    page = client.get(f"/order/{order.order_no}").text
    assert "已退款" in page and coupon.code in page and "缺货" in page
    kinds = [e.kind for e in events(order)]
    assert kinds.count("refunded") == 1 and "apology_coupon" in kinds and "mailed" in kinds
    # The coupon really works on the next order.
    assert coupon.is_enabled and coupon.used_count == 0



def test_a_ticket_on_a_failed_over_order_names_the_source_that_filled_it(app, client, auth, simulator, other,
                                                                         two_sources, channel, clock):
    """The product's own supplier refused; the second source filled the order. The 售后 goes to the
    second source, under the numbers it knows the order by, with its own product code."""
    from tests.ticket_helpers import last_ticket, ticket_form

    product, second = two_sources()
    simulator.products[CARD_CODE].stock = 0
    order = buy_and_pay(client, channel, product)
    _refused, filled = attempts(order)
    assert filled.supplier_order_id  # the second source's own number for our order
    response = client.post(f"/order/{order.order_no}/ticket", content_type="multipart/form-data",
                           data=ticket_form(kind="invalid_code", text="卡密提示已被使用，无法兑换"))
    assert response.status_code == 302
    ticket = last_ticket()
    assert (ticket.supplier_id, ticket.supplier_order_key, ticket.supplier_order_id) == (
        second.supplier_id, filled.idempotency_key, filled.supplier_order_id)
    assert ticket.forward_state == "manual"  # acg-faka has no ticket API: the admin sends the prepared message
    auth.login()
    page = client.get(f"/admin/tickets/{ticket.id}").text
    assert "第二货源" in page
    assert f"订单号：{filled.idempotency_key}" in page and f"贵方订单号：{filled.supplier_order_id}" in page
    assert f"编码 {SECOND_CODE}" in page and f"编码 {CARD_CODE}" not in page
