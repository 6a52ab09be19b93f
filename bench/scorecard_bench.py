"""Supplier scorecards on a busy shop: one supplier's card (aggregate SQL, percentile_cont) beside the
naive way (load that supplier's attempts and orders as objects and count in Python), same run.

Issue 14 ("Supplier scorecards"). Seeds ``--suppliers`` suppliers with ``--orders`` delivered orders
each (one successful forward attempt per order, every tenth refused, a ticket per fifty orders,
a sync run and a balance sample per day), then times ``scorecards.scorecard`` for one supplier over
30 and 90 days, and ``scorecards.ranking`` for a failover chain of three suppliers (what one forwarded
order pays when 按货源评分排序备用货源 is on).

    .venv/bin/python bench/scorecard_bench.py [--suppliers 20] [--orders 5000]

PostgreSQL on 127.0.0.1:5432; the throwaway database kamen_scorebench_<pid> is dropped at the end.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from common import pg_database  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=20)
    parser.add_argument("--orders", type=int, default=5000, help="orders per supplier (default 5000)")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


def seed(db, models, suppliers, orders):
    import sqlalchemy as sa

    from kamen.models.aftersales import Responsibility, TicketKind, TicketStatus
    from kamen.timeutil import utcnow

    now = utcnow()
    ids = []
    for s in range(suppliers):
        supplier = models.Supplier(code=f"b{s}", name=f"货源{s}", kind=models.SupplierKind.KAMEN,
                                   base_url="http://127.0.0.1:9")
        db.session.add(supplier)
        db.session.flush()
        product = models.Product(supplier_id=supplier.id, code=f"B{s}", name=f"压测商品 {s}",
                                 cost_price=Decimal("9"), sale_price=Decimal("10"))
        db.session.add(product)
        db.session.flush()
        ids.append((supplier.id, product.id))
    db.session.commit()
    n = 0
    for supplier_id, product_id in ids:
        order_rows, attempt_rows, ticket_rows = [], [], []
        for i in range(orders):
            n += 1
            paid = now - timedelta(minutes=(i * 90 * 24 * 60) // orders + 1)
            refused = i % 10 == 0
            order_rows.append(dict(
                id=n, order_no=f"B{n:010d}", product_id=product_id, product_name="压测商品", delivery_type="card",
                quantity=1, unit_price=Decimal("10"), amount=Decimal("10"), cost=Decimal("9"),
                reservation=models.Reservation.NONE, contact="bench@example.com", client_ip="127.0.0.1",
                created_at=paid, expires_at=paid + timedelta(minutes=15), paid_at=paid,
                status=models.OrderStatus.REFUNDED if refused else models.OrderStatus.DELIVERED,
                delivered_at=None if refused else paid + timedelta(seconds=5 + (i * 37) % 300)))
            attempt_rows.append(dict(
                order_id=n, attempt_no=1, supplier_id=supplier_id, code="B", idempotency_key=f"B{n:010d}",
                status=models.AttemptStatus.REFUSED if refused else models.AttemptStatus.SUCCESS,
                max_unit_cost=Decimal("9"), requested_at=paid + timedelta(seconds=1),
                answered_at=paid + timedelta(seconds=2 + (i * 37) % 290)))
            if i % 50 == 1:
                ticket_rows.append(dict(
                    ticket_no=f"BT{n:010d}", order_id=n, kind=TicketKind.INVALID_CODE,
                    responsibility=Responsibility.SUPPLIER, status=TicketStatus.RESOLVED, supplier_id=supplier_id,
                    created_at=paid, first_response_due=paid, resolve_due=paid,
                    resolved_at=paid + timedelta(hours=1 + i % 20)))
        for table, rows in ((models.Order, order_rows), (models.ForwardAttempt, attempt_rows),
                            (models.Ticket, ticket_rows)):
            for start in range(0, len(rows), 5000):
                db.session.execute(sa.insert(table), rows[start:start + 5000])
        for day in range(90):
            at = now - timedelta(days=day)
            db.session.add(models.SyncRun(supplier_id=supplier_id, mode="full",
                                          status="failed" if day % 7 == 0 else "succeeded",
                                          started_at=at, finished_at=at + timedelta(seconds=20)))
            db.session.add(models.BalanceSample(supplier_id=supplier_id, balance=Decimal(1000 + day), checked_at=at))
        db.session.commit()
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()
    return [s for s, _ in ids]


def naive(session, models, supplier_id, days):
    """The baseline: every attempt of the supplier in the period as an object, its order loaded, Python sums."""
    import sqlalchemy as sa

    from kamen.services.ordering import now

    since = now() - timedelta(days=days)
    rows = session.scalars(sa.select(models.ForwardAttempt).where(
        models.ForwardAttempt.supplier_id == supplier_id, models.ForwardAttempt.requested_at >= since)).all()
    filled = [a for a in rows if a.status is models.AttemptStatus.SUCCESS]
    answer = sorted((a.answered_at - a.requested_at).total_seconds() for a in filled)
    delivery = sorted((o.delivered_at - o.paid_at).total_seconds()
                      for o in (session.get(models.Order, a.order_id) for a in filled) if o.delivered_at)
    return len(filled) / len(rows), statistics.median(answer), statistics.median(delivery)


def timed(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main():
    args = parse_args()
    db_url, drop = pg_database(args.pg_admin_url, f"kamen_scorebench_{os.getpid()}")
    try:
        os.environ.update(DATABASE_URL=db_url, SECRET_KEY="score-bench",
                          KAMEN_INSTANCE_PATH=tempfile.mkdtemp(prefix="scorebench"))
        from kamen import create_app
        from kamen import models
        from kamen.extensions import db
        from kamen.services import scorecards

        app = create_app()
        with app.app_context():
            db.create_all()
            start = time.perf_counter()
            supplier_ids = seed(db, models, args.suppliers, args.orders)
            print(f"seeded {args.suppliers} suppliers × {args.orders} orders in {time.perf_counter() - start:.1f} s")
            target = supplier_ids[len(supplier_ids) // 2]
            for days in (30, 90):
                card_s, card = timed(lambda: scorecards.scorecard(db.session, target, days))
                db.session.expunge_all()
                naive_s, (rate, answer, delivery) = timed(lambda: (db.session.expunge_all(),
                                                                   naive(db.session, models, target, days))[1], 2)
                assert abs(float(card.order_rate) - rate * 100) < 0.1 and abs(card.answer_time.median - answer) < 1e-3
                assert abs(card.delivery_time.median - delivery) < 1e-3
                print(f"{days:>2} days: {card.attempts} attempts; scorecard {card_s * 1000:.1f} ms, "
                      f"naive {naive_s * 1000:.1f} ms, ratio {naive_s / card_s:.1f}x faster")
            chain = supplier_ids[:3]
            rank_s, _ = timed(lambda: scorecards.ranking(db.session, chain))
            print(f"ranking of a 3-source chain (per forwarded order with the setting on): {rank_s * 1000:.1f} ms")
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
