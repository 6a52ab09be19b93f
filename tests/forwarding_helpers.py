"""一键代发 in tests: a Fulu-style supplier on the simulator, a shop product it fills, paid orders.

Import the fixtures you use into the test module. Orders are bought through the
shop and paid by a signed 易支付 notify, exactly as a buyer's order is.
"""
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import (
    DeliveryType,
    ForwardAttempt,
    Order,
    OrderEvent,
    ProductSource,
    StockMode,
    SupplierKind,
)
from kamen.services import ordering
from kamen.timeutil import utcnow
from tests.helpers import make_product
from tests.order_helpers import buy_form, make_channel, notify_params
from tests.sync_fixtures import make_supplier

CARD_CODE, TOPUP_CODE = "1001", "1002"  # simulator: 1001 card ¥9.50, 1002 top-up ¥10.50


class Clock:
    """The order clock (ORDER_CLOCK): polling and deadlines move with it, no sleeps."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock(app):
    clock = Clock()
    app.config["ORDER_CLOCK"] = clock
    return clock


@pytest.fixture
def fulu_supplier(app, simulator):
    # The simulator sleeps 3 s when told to time out after accepting: answers wait 1 s at most.
    app.config["FORWARD_TIMEOUT_SECONDS"] = 1
    return make_supplier(simulator, SupplierKind.FULU, code="sim-fulu")


@pytest.fixture
def channel(app):
    return make_channel()


def supplier_product(supplier, sim, code=CARD_CODE, **values):
    """A shop product filled by the simulator's product ``code``, priced at its cost."""
    remote = sim.products[code]
    card = remote.delivery == "card"
    fields = {
        "supplier_id": supplier.id, "code": code, "name": remote.name, "cost_price": remote.price,
        "sale_price": remote.price + Decimal("1.00"), "stock_mode": StockMode.SYNCED if card else StockMode.UNLIMITED,
        "stock": 50, "delivery_type": DeliveryType.CARD if card else DeliveryType.TOPUP,
        "buyer_fields": [] if card else [{"key": "charge_account", "label": "充值手机号", "pattern": "", "hint": ""}],
    }
    fields.update(values)
    return make_product(**fields)


def add_source(product, source, position=1):
    db.session.add(ProductSource(product_id=product.id, source_id=source.id, position=position))
    db.session.commit()


def buy(client, product, quantity=1, **form):
    if product.delivery_type is DeliveryType.TOPUP:
        form.setdefault("f_charge_account", "13800138000")
    response = client.post(f"/p/{product.id}/buy", data=buy_form(quantity=str(quantity), **form))
    assert response.status_code == 302, response.get_data(as_text=True)
    return db.session.scalars(sa.select(Order).order_by(Order.id.desc())).first()


def pay(client, channel, order):
    answer = client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, order.amount))
    assert answer.text == "success"
    return fresh(order)


def buy_and_pay(client, channel, product, quantity=1, **form):
    return pay(client, channel, buy(client, product, quantity, **form))


def fresh(order):
    db.session.expire_all()
    return db.session.get(Order, order.id)


def attempts(order):
    db.session.expire_all()
    return db.session.scalars(sa.select(ForwardAttempt).where(ForwardAttempt.order_id == order.id)
                              .order_by(ForwardAttempt.attempt_no)).all()


def events(order):
    db.session.expire_all()
    return db.session.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order.id)
                              .order_by(OrderEvent.id)).all()


def placed(sim, order):
    """Supplier orders the simulator holds for this shop order (any of its keys)."""
    return [o for key, o in sim.orders.items() if key.split("-")[0] == order.order_no]


def note(order):
    return ordering.delivery_note(fresh(order))

