"""Supplier scorecards (货源评分) from seeded sync runs, forward attempts, orders, tickets and balance
samples, checked against figures worked out by hand; and 按货源评分排序备用货源 in forwarding."""
import itertools
from datetime import timedelta
from decimal import Decimal

import pytest

from kamen.extensions import db
from kamen.models import (
    AttemptStatus,
    BalanceSample,
    ForwardAttempt,
    Order,
    OrderStatus,
    Reservation,
    Supplier,
    SupplierKind,
    SyncRun,
)
from kamen.models.aftersales import Responsibility, Ticket, TicketKind, TicketStatus
from kamen.services import scorecards
from kamen.services.syncing import adapter_for_supplier, check_balance
from tests.forwarding_helpers import (  # noqa: F401
    CARD_CODE,
    add_source,
    attempts,
    buy_and_pay,
    channel,
    clock,
    fresh,
    fulu_supplier,
    supplier_product,
)
from tests.helpers import form_values, make_product
from tests.sync_fixtures import make_supplier, serving_simulator  # noqa: F401

SECOND_CODE = "1003"
_numbers = itertools.count(1)


def _supplier(code, name):
    supplier = Supplier(code=code, name=name, kind=SupplierKind.KAMEN, base_url="http://127.0.0.1:9")
    db.session.add(supplier)
    db.session.commit()
    return supplier


def _order(product, paid_at, delivered_seconds=None, status=OrderStatus.DELIVERED):
    n = next(_numbers)
    order = Order(order_no=f"S{n:08d}", status=status, product_id=product.id, product_name=product.name,
                  delivery_type="card", quantity=1, unit_price=Decimal("10.00"), amount=Decimal("10.00"),
                  cost=Decimal("9.00"), reservation=Reservation.NONE, contact="buyer@example.com",
                  client_ip="127.0.0.1", created_at=paid_at, expires_at=paid_at + timedelta(minutes=15),
                  paid_at=paid_at,
                  delivered_at=None if delivered_seconds is None else paid_at + timedelta(seconds=delivered_seconds))
    db.session.add(order)
    db.session.flush()
    return order


def _attempt(order, supplier, status, requested_at, answered_seconds=None, attempt_no=1):
    db.session.add(ForwardAttempt(
        order_id=order.id, attempt_no=attempt_no, supplier_id=supplier.id, code="X1",
        idempotency_key=f"{order.order_no}-{attempt_no}", status=status, max_unit_cost=Decimal("9.00"),
        requested_at=requested_at,
        answered_at=None if answered_seconds is None else requested_at + timedelta(seconds=answered_seconds)))


def _served(product, supplier, at, answered_seconds, delivered_seconds):
    """An order this supplier filled: answered success after ``answered_seconds``."""
    order = _order(product, at, delivered_seconds)
    _attempt(order, supplier, AttemptStatus.SUCCESS, at + timedelta(seconds=1), answered_seconds)
    return order


def _ticket(order, supplier, created_at, resolved_hours=None, responsibility=Responsibility.SUPPLIER):
    n = next(_numbers)
    db.session.add(Ticket(
        ticket_no=f"T{n:08d}", order_id=order.id, kind=TicketKind.INVALID_CODE, responsibility=responsibility,
        status=TicketStatus.RESOLVED if resolved_hours is not None else TicketStatus.SUPPLIER,
        supplier_id=supplier.id, created_at=created_at, first_response_due=created_at + timedelta(hours=2),
        resolve_due=created_at + timedelta(hours=24),
        resolved_at=None if resolved_hours is None else created_at + timedelta(hours=resolved_hours)))


def _run(supplier, status, started_at):
    db.session.add(SyncRun(supplier_id=supplier.id, mode="full", status=status, started_at=started_at,
                           finished_at=None if status == "running" else started_at + timedelta(seconds=30)))


@pytest.fixture
def seeded(app, clock):
    """Supplier A's last 30 days (plus older rows that only the 90-day view counts), and a supplier B
    whose rows must never leak into A's card."""
    now = clock.now
    a, b = _supplier("a", "货源甲"), _supplier("b", "货源乙")
    product = make_product(supplier_id=a.id)
    day = timedelta(days=1)

    for status in ("succeeded", "succeeded", "succeeded", "failed", "running"):
        _run(a, status, now - 3 * day)
    _run(a, "succeeded", now - 40 * day)
    _run(b, "failed", now - day)

    served = [_served(product, a, now - (i + 2) * day, answered, delivered)
              for i, (answered, delivered) in enumerate([(10, 15), (20, 25), (30, 35), (110, 115)])]
    _attempt(_order(product, now - day, status=OrderStatus.REFUNDED), a, AttemptStatus.REFUSED, now - day, 2)
    _attempt(_order(product, now - day, status=OrderStatus.REFUNDED), a, AttemptStatus.FAILED, now - day, 5)
    _attempt(_order(product, now - day, status=OrderStatus.PAID), a, AttemptStatus.PROCESSING, now - day)
    _served(product, a, now - 40 * day, 1000, 1000)
    for i in range(3):
        _served(product, b, now - day, 5, 5)

    _ticket(served[0], a, now - day, resolved_hours=2)
    _ticket(served[1], a, now - day, resolved_hours=4)
    _ticket(served[2], a, now - day)  # still with the supplier
    _ticket(served[3], a, now - day, resolved_hours=1, responsibility=Responsibility.BUYER)  # not theirs

    for days_ago, balance in ((40, "200.00"), (20, "100.00"), (10, "80.00"), (1, "50.00")):
        db.session.add(BalanceSample(supplier_id=a.id, balance=Decimal(balance), checked_at=now - days_ago * day))
    db.session.commit()
    return a, b


def test_scorecard_figures_match_the_hand_worked_ones(seeded):
    a, b = seeded
    card = scorecards.scorecard(db.session, a.id, 30)
    # 3 of 4 finished runs succeeded (the running one and the one 40 days ago do not count).
    assert (card.sync_runs, card.sync_succeeded, card.sync_rate) == (4, 3, Decimal("75.0"))
    # 4 successes, 1 refused, 1 failed; the processing one waits outside the rate.
    assert (card.attempts, card.attempts_filled, card.attempts_open, card.order_rate) == (6, 4, 1, Decimal("66.7"))
    # Answers after 10/20/30/110 s: median 25 s; p95 = 30 + 0.85 × 80 = 98 s.
    assert (card.answer_time.count, card.answer_time.median) == (4, pytest.approx(25))
    assert card.answer_time.p95 == pytest.approx(98)
    # Paid → delivered after 15/25/35/115 s: median 30 s; p95 = 35 + 0.85 × 80 = 103 s.
    assert (card.delivery_time.count, card.delivery_time.median) == (4, pytest.approx(30))
    assert card.delivery_time.p95 == pytest.approx(103)
    # 3 supplier tickets over the 4 orders it filled; resolved in 2 h and 4 h: median 3 h.
    assert (card.orders, card.tickets, card.tickets_resolved, card.tickets_per_100) == (4, 3, 2, Decimal("75.0"))
    assert card.resolution_time.median == pytest.approx(3 * 3600)
    assert [b for _, b in card.balances] == [Decimal("100.00"), Decimal("80.00"), Decimal("50.00")]
    assert card.balance_change == Decimal("-50.00")

    longer = scorecards.scorecard(db.session, a.id, 90)
    assert (longer.sync_runs, longer.sync_rate) == (5, Decimal("80.0"))
    assert (longer.attempts, longer.attempts_filled) == (7, 5)
    assert longer.answer_time.median == pytest.approx(30)
    assert longer.balances[0][1] == Decimal("200.00")

    other = scorecards.scorecard(db.session, b.id, 30)
    assert (other.sync_rate, other.order_rate, other.tickets, other.balances) == (Decimal("0.0"), Decimal("100.0"), 0, [])


def test_supplier_page_shows_the_scorecard_for_the_chosen_period(seeded, client, auth):
    a, _ = seeded
    auth.login()
    page = client.get(f"/admin/suppliers/{a.id}")
    assert page.status_code == 200 and "货源评分" in page.text
    text = page.text
    assert 'data-score="sync_rate">75.0%' in text and 'data-score="order_rate">66.7%' in text
    assert "中位 25 秒 · 95% 在 1 分 38 秒 内" in text
    assert "中位 30 秒 · 95% 在 1 分 43 秒 内" in text
    assert "每 100 单 75.0 张" in text and "中位 3 小时" in text
    assert "¥100.00 → ¥50.00" in text and "减少 ¥50.00" in text
    assert "另有 1 次还在等结果" in text

    longer = client.get(f"/admin/suppliers/{a.id}", query_string={"days": "90"}).text
    assert 'data-score="sync_rate">80.0%' in longer and "¥200.00 → ¥50.00" in longer
    # Any other period falls back to 30 days rather than failing.
    assert 'data-score="sync_rate">75.0%' in client.get(f"/admin/suppliers/{a.id}?days=abc").text


def test_empty_scorecard_says_so(app, client, auth):
    auth.login()
    supplier = _supplier("new", "新货源")
    text = client.get(f"/admin/suppliers/{supplier.id}").text
    assert 'data-score="order_rate">—' in text and "这段时间没有查询过余额" in text


def test_balance_checks_leave_a_sample(app, simulator, fulu_supplier):
    supplier = db.session.get(Supplier, fulu_supplier.id)
    supplier.balance_alert_below = Decimal("1.00")
    db.session.commit()
    balance = check_balance(db.session, supplier, adapter_for_supplier(supplier))
    samples = db.session.query(BalanceSample).filter_by(supplier_id=supplier.id).all()
    assert [s.balance for s in samples] == [balance]


@pytest.fixture
def other():
    """A second remote supplier (another site, its own orders and stock)."""
    with serving_simulator() as sim:
        yield sim


def _history(supplier, filled, refused, clock):
    product = make_product(supplier_id=supplier.id)
    for _ in range(filled):
        _served(product, supplier, clock.now - timedelta(days=2), 20, 25)
    for _ in range(refused):
        _attempt(_order(product, clock.now - timedelta(days=2), status=OrderStatus.REFUNDED), supplier,
                 AttemptStatus.REFUSED, clock.now - timedelta(days=2), 1)
    db.session.commit()


def _score_sources(client, on):
    values = form_values(client.get("/admin/settings/forwarding").text)
    values.pop("score_sources", None)
    if on:
        values["score_sources"] = "y"
    assert client.post("/admin/settings/forwarding", data=values).status_code == 302


def test_failover_by_score_tries_the_better_supplier_first(app, client, auth, simulator, other, fulu_supplier,
                                                           channel, clock):
    auth.login()
    product = supplier_product(fulu_supplier, simulator)
    acg = make_supplier(other, SupplierKind.ACGFAKA, code="other-acg", name="第二货源")
    other.products[SECOND_CODE].price = Decimal("9.60")  # within the product's allowed cost
    second = supplier_product(acg, other, SECOND_CODE, is_listed=False)
    add_source(product, second)
    # Over 30 days the product's own supplier filled 1 in 4, the second source 3 in 3.
    _history(fulu_supplier, 1, 3, clock)
    _history(acg, 3, 0, clock)

    page = client.get("/admin/settings/forwarding").text
    assert "按货源评分排序备用货源" in page
    order = buy_and_pay(client, channel, product)  # off: the product's own supplier first
    assert fresh(order).status is OrderStatus.DELIVERED and [a.code for a in attempts(order)] == [CARD_CODE]

    _score_sources(client, True)
    shown = client.get(f"/admin/products/{product.id}/sources").text
    assert "按货源评分排序备用货源" in shown and f"1. {SECOND_CODE} → 2. {CARD_CODE}" in shown
    order = buy_and_pay(client, channel, product)
    assert fresh(order).status is OrderStatus.DELIVERED and [a.code for a in attempts(order)] == [SECOND_CODE]

    _score_sources(client, False)
    order = buy_and_pay(client, channel, product)
    assert [a.code for a in attempts(order)] == [CARD_CODE]


def test_score_ties_go_to_the_faster_supplier_and_unscored_ones_come_last(app, clock):
    fast, slow, new = _supplier("fast", "快"), _supplier("slow", "慢"), _supplier("new", "新")
    for supplier, seconds in ((fast, 5), (slow, 50)):
        product = make_product(supplier_id=supplier.id)
        for _ in range(2):
            _served(product, supplier, clock.now - timedelta(days=1), seconds, seconds)
    db.session.commit()
    scores = scorecards.ranking(db.session, {fast.id, slow.id, new.id})
    assert scores == {fast.id: (1.0, pytest.approx(5)), slow.id: (1.0, pytest.approx(50))}

    from kamen.services import sources

    own = make_product(supplier_id=new.id)
    chain = sources.ordered(own, own, [make_product(supplier_id=slow.id), make_product(supplier_id=fast.id)], scores)
    assert [p.supplier_id for p in chain] == [fast.id, slow.id, new.id]
