"""Whole checkouts per second through kamen, beside the same transitions as plain SQL, in one run.

Issue 10 ("Buying", Benchmark): N concurrent buyers each doing the whole
checkout — create the order (card code reserved), the gateway's signed
notify (paid, code delivered), the order page showing the code — against
kamen under gunicorn on PostgreSQL. The floor is the same reservation and
payment transitions as plain SQL through psycopg in the same number of
threads, no HTTP, on the same database. Targets on a 2-core machine:
≥ 100 checkouts/s, p95 ≤ 250 ms, ≥ 0.25× the floor, 0 oversold.

    .venv/bin/python bench/order_bench.py [--checkouts 1500] [--buyers 8] [--workers 4]

Loopback only; a throwaway database kamen_orderbench_<pid> is dropped at the end.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import sqlalchemy as sa

from checkout import KEY, PID, Buyer, Tickets, timed  # bench/ is on sys.path when run as a script
from common import pg_database, start_gunicorn, wait_ready

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "order-bench-secret"
TARGET_RATE, TARGET_P95_MS, TARGET_RATIO = 100, 250, 0.25
WARMUP = 100  # untimed kamen checkouts first: every worker has imported, compiled templates and connected


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_orderbench_"))
    db_url, drop = pg_database(args.pg_admin_url, f"kamen_orderbench_{os.getpid()}")
    server = None
    try:
        env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=SECRET, KAMEN_INSTANCE_PATH=str(tmp / "instance"),
                   KAMEN_PROXY_COUNT="1")
        env.pop("REDIS_URL", None)
        product_id, floor_product_id, channel_id = prepare(db_url, env, args.checkouts)
        server = start_gunicorn("wsgi:app", ROOT, env, tmp / "gunicorn.log", workers=args.workers)
        wait_ready(server, f"/p/{product_id}")
        floor = run_floor(db_url, floor_product_id, args.checkouts, args.buyers)
        run_kamen(server.port, product_id, channel_id, WARMUP, args.buyers)
        cpu_before = worker_cpu_seconds(server.proc.pid)
        kamen = run_kamen(server.port, product_id, channel_id, args.checkouts, args.buyers, first=WARMUP)
        kamen["cpu_ms"] = (worker_cpu_seconds(server.proc.pid) - cpu_before) * 1000 / max(kamen["delivered"], 1)
        oversold = check(db_url, product_id, WARMUP + kamen["delivered"])
        report(args, kamen, floor, oversold)
        ok = (kamen["rate"] >= TARGET_RATE and kamen["p95"] <= TARGET_P95_MS
              and kamen["rate"] >= TARGET_RATIO * floor["rate"] and oversold == 0 and kamen["errors"] == 0)
        return 0 if ok else 1
    finally:
        if server:
            server.stop()
        drop()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", type=int, default=1500, help="checkouts per side (default 1500)")
    parser.add_argument("--buyers", type=int, default=8, help="concurrent buyers (default 8)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


def prepare(db_url, env, checkouts):
    """Schema, one card-code product per side with exactly ``checkouts`` codes, a payment channel."""
    os.environ.update(DATABASE_URL=db_url, SECRET_KEY=SECRET, KAMEN_INSTANCE_PATH=env["KAMEN_INSTANCE_PATH"])
    from kamen import create_app
    from kamen.extensions import db
    from kamen.models import PaymentChannel, Product, StockMode
    from kamen.secretbox import encrypt
    from kamen.services import card_codes
    from kamen.services.suppliers import default_supplier

    app = create_app()
    with app.app_context():
        db.create_all()
        supplier = default_supplier(db.session)
        ids = []
        for code, codes in (("BENCH-CARD", checkouts + WARMUP), ("FLOOR-CARD", checkouts)):
            product = Product(supplier_id=supplier.id, code=code, name=f"压测卡密 {code}", cost_price=Decimal("9.00"),
                              sale_price=Decimal("10.00"), stock_mode=StockMode.CARDS, stock=0, max_per_order=5)
            db.session.add(product)
            db.session.commit()
            card_codes.upload_text(db.session, product, "\n".join(f"{code}-{i:07d}" for i in range(codes)))
            ids.append(product.id)
        channel = PaymentChannel(name="压测通道", base_url="http://127.0.0.1:9", pid=PID, key_encrypted=encrypt(KEY),
                                 pay_types=["alipay"], is_enabled=True)
        db.session.add(channel)
        db.session.commit()
        channel_id = channel.id
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        db.engine.dispose()
    return ids[0], ids[1], channel_id


# -- kamen over HTTP -------------------------------------------------------------------------


def run_kamen(port, product_id, channel_id, checkouts, buyers, first=0):
    latencies, errors, delivered = [], [], []
    tickets = Tickets(checkouts, first)

    def buyer(n):
        me = Buyer(port, n + first)
        for i in tickets:
            started = time.perf_counter()
            order_no = me.buy_and_pay(product_id, channel_id, "10.00", i, errors)
            if order_no is None:
                continue
            status, _, page = me.request("GET", f"/order/{order_no}")
            if "BENCH-CARD-" not in page:
                errors.append(f"order page {status} without the code")
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            delivered.append(order_no)

    return timed(buyer, buyers, latencies, errors, delivered)


# -- the floor: the same transitions as plain SQL ----------------------------------------------


RESERVE = """
WITH picked AS (
  SELECT id FROM card_codes WHERE product_id = %(p)s AND status = 'available' ORDER BY id LIMIT 1
  FOR UPDATE SKIP LOCKED)
UPDATE card_codes SET status = 'reserved', order_id = %(o)s FROM picked
WHERE card_codes.id = picked.id AND card_codes.status = 'available' RETURNING card_codes.id"""
NEW_ORDER = """
INSERT INTO orders (order_no, status, product_id, product_name, delivery_type, quantity, unit_price, discount,
  amount, cost, reservation, contact, buyer_fields, client_ip, created_at, expires_at, query_attempts, delivery_note)
VALUES (%(no)s, 'pending', %(p)s, 'floor', 'card', 1, 10, 0, 10, 9, 'codes', %(contact)s, '{}', '10.0.0.1',
  now(), now() + interval '15 minutes', 0, '') RETURNING id"""
EVENT = "INSERT INTO order_events (order_id, at, kind, message, data) VALUES (%s, now(), %s, %s, '{}')"


def run_floor(db_url, product_id, checkouts, threads):
    dsn = sa.engine.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    latencies, errors, delivered = [], [], []
    tickets = Tickets(checkouts)

    def worker(_n):
        with psycopg.connect(dsn) as conn:
            for i in tickets:
                started = time.perf_counter()
                with conn.transaction():
                    order_id = conn.execute(NEW_ORDER, {"no": f"F{i:09d}", "p": product_id,
                                                        "contact": f"138{i:08d}"}).fetchone()[0]
                    if conn.execute(RESERVE, {"p": product_id, "o": order_id}).fetchone() is None:
                        raise RuntimeError("floor out of codes")
                    conn.execute("UPDATE products SET stock = stock - 1 WHERE id = %s AND stock >= 1", (product_id,))
                    conn.execute(EVENT, (order_id, "created", "下单"))
                with conn.transaction():
                    paid = conn.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = %s AND "
                                        "status = 'pending'", (order_id,)).rowcount
                    if paid != 1:
                        errors.append("floor paid twice")
                    conn.execute(EVENT, (order_id, "paid", "已支付"))
                    conn.execute("UPDATE card_codes SET status = 'sold' WHERE order_id = %s AND status = 'reserved'",
                                 (order_id,))
                    conn.execute("UPDATE orders SET status = 'delivered', delivered_at = now() WHERE id = %s AND "
                                 "status = 'paid'", (order_id,))
                    conn.execute("UPDATE products SET sales_count = sales_count + 1 WHERE id = %s", (product_id,))
                    conn.execute(EVENT, (order_id, "delivered", "已发货"))
                conn.execute("SELECT secret_encrypted FROM card_codes WHERE order_id = %s", (order_id,)).fetchall()
                conn.commit()
                latencies.append((time.perf_counter() - started) * 1000)
                delivered.append(order_id)

    return timed(worker, threads, latencies, errors, delivered)


def worker_cpu_seconds(master_pid):
    """CPU time (user + system) of the gunicorn workers so far, from /proc: a number the machine's load cannot inflate."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def check(db_url, product_id, delivered):
    """Oversold = codes given to more orders than exist, or more deliveries than codes."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        sold = conn.execute(sa.text("SELECT count(*), count(DISTINCT order_id) FROM card_codes "
                                    "WHERE product_id = :p AND status = 'sold'"), {"p": product_id}).one()
        orders = conn.execute(sa.text("SELECT count(*) FROM orders WHERE product_id = :p AND status = 'delivered'"),
                              {"p": product_id}).scalar()
        stock = conn.execute(sa.text("SELECT stock FROM products WHERE id = :p"), {"p": product_id}).scalar()
    engine.dispose()
    return abs(sold[0] - sold[1]) + abs(orders - delivered) + (1 if stock < 0 else 0)


def report(args, kamen, floor, oversold):
    ratio = kamen["rate"] / floor["rate"] if floor["rate"] else 0
    print(f"PostgreSQL, gunicorn -w {args.workers} sync, {args.buyers} concurrent buyers, "
          f"{args.checkouts} checkouts per side")
    for name, r in (("kamen (HTTP: buy → notify → codes page)", kamen), ("floor (plain SQL via psycopg)", floor)):
        print(f"  {name:42s} {r['rate']:7.1f} checkouts/s  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  "
              f"errors {r['errors']} {r['error_sample'] or ''}")
    cores = os.cpu_count() or 1
    print(f"  kamen workers used {kamen['cpu_ms']:.1f} ms CPU per checkout: at most "
          f"{1000 * cores / kamen['cpu_ms'] if kamen['cpu_ms'] else 0:.0f} checkouts/s on {cores} idle cores "
          f"(load average now {os.getloadavg()[0]:.1f})")
    print(f"  ratio kamen/floor {ratio:.2f}x (target ≥ {TARGET_RATIO}x)   oversold {oversold} (target 0)   "
          f"targets: ≥ {TARGET_RATE} checkouts/s, p95 ≤ {TARGET_P95_MS} ms")


if __name__ == "__main__":
    sys.exit(main())
