"""Paid orders forwarded from a kamen 分站 to a kamen 主站 (two real kamens), beside the 主站's order endpoint alone.

Issue 11 ("Benchmark"): N orders bought and paid (signed 易支付 notify) on a
分站 under gunicorn with RQ workers; each is forwarded by a worker to the
主站 (kamen under gunicorn: POST /api/upstream/v1/orders, paid from the
station's balance, a card code delivered at once) and the code comes back to
the 分站's order. Printed: forwarded orders/s, p50/p95 pay → delivered (the
分站's paid_at → delivered_at), and duplicates (主站 orders per 分站 order,
codes per order: must be 0). The baseline, measured first in the same run on
the same 主站: the same number of signed POST /orders sent straight to the
主站 by as many client threads as there are RQ workers (the ceiling
forwarding can reach).

    .venv/bin/python bench/station_forward_bench.py [--orders 1000] [--buyers 4] [--rq-workers 4] [--workers 2]

PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (db 15 unless
--redis-url); throwaway databases kamen_fwdbench_<pid> (分站) and
kamen_fwdbench_<pid>_main (主站) are dropped at the end. Loopback only.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import requests
import sqlalchemy as sa

from common import free_port, pg_database, start_gunicorn, wait_ready  # bench/ is on sys.path when run as a script
from checkout import KEY, PID, Buyer, Tickets, timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAIN_SECRET, SUB_SECRET = "forward-bench-main", "forward-bench-sub"
WARMUP = 20  # forwarded first, untimed: workers have imported, connected, and the 主站's workers are warm


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_fwdbench_"))
    sub_url, drop_sub = pg_database(args.pg_admin_url, f"kamen_fwdbench_{os.getpid()}")
    main_url, drop_main = pg_database(args.pg_admin_url, f"kamen_fwdbench_{os.getpid()}_main")
    servers, workers = [], []
    queue_name = f"kamen-fwdbench-{os.getpid()}"
    try:
        main_env = _env(main_url, MAIN_SECRET, tmp / "main")
        main_env.pop("REDIS_URL", None)  # the 主站: embedded jobs (its callbacks go out on its web threads)
        codes = 2 * args.orders + WARMUP + 10
        station = prepare_main(main_url, main_env, codes)
        main = start_gunicorn("wsgi:app", ROOT, main_env, tmp / "main.log", workers=args.workers)
        servers.append(main)
        wait_ready(main, "/admin/login")

        port = free_port()
        # KAMEN_PUBLIC_URL: the callback address the workers (no request at hand) give the 主站.
        sub_env = _env(sub_url, SUB_SECRET, tmp / "sub", REDIS_URL=args.redis_url, KAMEN_JOB_QUEUE=queue_name,
                       KAMEN_PUBLIC_URL=f"http://127.0.0.1:{port}")
        product_id, channel_id, price = prepare_sub(sub_url, sub_env, main.url, station)
        sub = start_gunicorn("wsgi:app", ROOT, sub_env, tmp / "sub.log", workers=args.workers, port=port)
        servers.append(sub)
        wait_ready(sub, f"/p/{product_id}")
        for n in range(args.rq_workers):
            log = open(tmp / f"rq-{n}.log", "w")
            workers.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("rq")), "worker", "-w", "jobs.worker.AppWorker", "--url",
                 args.redis_url, queue_name], cwd=ROOT, env=sub_env, stdout=log, stderr=subprocess.STDOUT))

        baseline = run_direct(main.url, station, args.orders, args.rq_workers)
        pay_orders(sub.port, product_id, channel_id, price, WARMUP, args.buyers, 0)
        wait_delivered(sub_url, WARMUP, args.timeout)
        started = time.perf_counter()
        paying = pay_orders(sub.port, product_id, channel_id, price, args.orders, args.buyers, WARMUP)
        forwarded = wait_delivered(sub_url, WARMUP + args.orders, args.timeout, first_id=WARMUP)
        forwarded["wall"] = time.perf_counter() - started
        duplicates = check(sub_url, main_url, WARMUP + args.orders)
        report(args, baseline, paying, forwarded, duplicates)
        return 0 if duplicates == 0 and forwarded["delivered"] == args.orders and paying["errors"] == 0 else 1
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in servers:
            server.stop()
        _clear_queue(args.redis_url, queue_name)
        drop_sub()
        drop_main()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000, help="paid orders forwarded (default 1000)")
    parser.add_argument("--buyers", type=int, default=4, help="concurrent buyers on the 分站 (default 4)")
    parser.add_argument("--rq-workers", type=int, default=4, help="rq workers forwarding (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per kamen (default 2)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every delivery")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser.parse_args()


def _env(db_url, secret, instance, **more):
    return dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=secret, KAMEN_INSTANCE_PATH=str(instance),
                KAMEN_PROXY_COUNT="1", **more)


def _app(db_url, env):
    """A kamen app in this process for one side (settings from its environment)."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "KAMEN_INSTANCE_PATH")})
    os.environ.pop("REDIS_URL", None)
    from kamen import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": env["SECRET_KEY"], "REDIS_URL": None,
                       "JOBS_SYNC": True})


def prepare_main(db_url, env, codes):
    """The 主站: a card product with enough codes, one 分站 key with balance for every order."""
    from kamen.extensions import db
    from kamen.models import Product, StockMode
    from kamen.services import card_codes, stations
    from kamen.services.suppliers import default_supplier

    app = _app(db_url, env)
    with app.app_context():
        db.create_all()
        supplier = default_supplier(db.session)
        product = Product(supplier_id=supplier.id, code="FWD-CARD", name="压测卡密", cost_price=Decimal("9.00"),
                          sale_price=Decimal("10.00"), stock_mode=StockMode.CARDS, stock=0, max_per_order=5)
        db.session.add(product)
        db.session.commit()
        card_codes.upload_text(db.session, product, "\n".join(f"FWD-{i:07d}" for i in range(codes)))
        station, secret = stations.create_station(db.session, "压测分站", Decimal("0"), Decimal("0"))
        stations.top_up(db.session, station, str(Decimal("9.00") * codes))
        key = {"app_id": station.app_id, "secret": secret, "code": stations.public_code(product)}
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        db.engine.dispose()
    return key


def prepare_sub(db_url, env, main_url, station):
    """The 分站: the 主站 as a kamen supplier, synced (its product listed), a payment channel."""
    from kamen.extensions import db
    from kamen.models import PaymentChannel, Product, Supplier, SupplierKind
    from kamen.secretbox import encrypt
    from kamen.services import syncing

    app = _app(db_url, env)
    with app.app_context():
        db.create_all()
        supplier = Supplier(code="main", name="主站", kind=SupplierKind.KAMEN, base_url=main_url,
                            app_id=station["app_id"], secret_encrypted=encrypt(station["secret"]), auto_list=True,
                            markup_percent=Decimal("10"))
        channel = PaymentChannel(name="压测通道", base_url="http://127.0.0.1:9", pid=PID, key_encrypted=encrypt(KEY),
                                 pay_types=["alipay"], is_enabled=True)
        db.session.add_all([supplier, channel])
        db.session.commit()
        run = syncing.request_sync(db.session, supplier, "full")
        syncing.run_sync(db.session, run.id)
        product = db.session.scalar(sa.select(Product).where(Product.supplier_id == supplier.id,
                                                             Product.code == station["code"]))
        if product is None or not product.is_listed:
            raise RuntimeError("the 分站 did not list the 主站's product after the sync")
        ids = product.id, channel.id, f"{product.sale_price:.2f}"
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        db.engine.dispose()
    return ids


def run_direct(main_url, station, n, threads):
    """The baseline: signed POST /orders straight to the 主站, one keep-alive session per thread."""
    from kamen.suppliers.kamen_signing import sign_headers

    latencies, errors, delivered = [], [], []
    tickets = Tickets(n)
    target = "/api/upstream/v1/orders"

    def client(_n):
        http = requests.Session()
        for i in tickets:
            body = json.dumps({"order_no": f"DIRECT-{i:07d}", "code": station["code"], "quantity": 1}).encode()
            headers = {**sign_headers(station["app_id"], station["secret"], "POST", target, body),
                       "Content-Type": "application/json"}
            started = time.perf_counter()
            resp = http.post(main_url + target, data=body, headers=headers, timeout=60)
            if resp.status_code != 201 or resp.json().get("status") != "success":
                errors.append(f"{resp.status_code} {resp.text[:60]}")
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            delivered.append(i)

    return timed(client, threads, latencies, errors, delivered)


def pay_orders(port, product_id, channel_id, price, n, buyers, first):
    """Buyers on the 分站: buy, then the gateway's signed notify (paid → forwarding job)."""
    latencies, errors, delivered = [], [], []
    tickets = Tickets(n, first)

    def buyer(k):
        me = Buyer(port, k + first)
        for i in tickets:
            started = time.perf_counter()
            order_no = me.buy_and_pay(product_id, channel_id, price, i, errors)
            if order_no is not None:
                latencies.append((time.perf_counter() - started) * 1000)
                delivered.append(order_no)

    return timed(buyer, buyers, latencies, errors, delivered)


def wait_delivered(db_url, total, timeout, first_id=0):
    """Until ``total`` 分站 orders are delivered (or settled otherwise); pay → delivered of orders after ``first_id``."""
    engine = sa.create_engine(db_url)
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while True:
            open_orders = conn.execute(sa.text("SELECT count(*) FROM orders WHERE status IN "
                                               "('paid', 'forwarding', 'pending')")).scalar()
            done = conn.execute(sa.text("SELECT count(*) FROM orders WHERE status NOT IN "
                                        "('paid', 'forwarding', 'pending')")).scalar()
            conn.commit()
            if done >= total and open_orders == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = conn.execute(sa.text(
            "SELECT paid_at, delivered_at FROM orders WHERE id > :first AND status = 'delivered' ORDER BY id"),
            {"first": first_id}).all()
        statuses = dict(conn.execute(sa.text("SELECT status, count(*) FROM orders GROUP BY status")).all())
    engine.dispose()
    waits = sorted((d - p).total_seconds() * 1000 for p, d in rows)
    span = (max(d for _, d in rows) - min(p for p, _ in rows)).total_seconds() if rows else 0
    return {"delivered": len(rows), "rate": len(rows) / span if span else 0,
            "p50": statistics.median(waits) if waits else 0,
            "p95": waits[int(len(waits) * 0.95) - 1] if waits else 0, "statuses": statuses}


def check(sub_url, main_url, total):
    """Duplicates: 分站 orders forwarded more than once, 主站 orders per 分站 order, codes per order."""
    sub, main = sa.create_engine(sub_url), sa.create_engine(main_url)
    with sub.connect() as conn:
        attempts = conn.execute(sa.text("SELECT count(*), count(DISTINCT order_id) FROM forward_attempts")).one()
    with main.connect() as conn:
        station = conn.execute(sa.text("SELECT count(*), count(DISTINCT station_order_no) FROM orders "
                                       "WHERE station_order_no NOT LIKE 'DIRECT-%'")).one()
        codes = conn.execute(sa.text("SELECT count(*), count(DISTINCT order_id) FROM card_codes "
                                     "WHERE status = 'sold'")).one()
        balance_ok = conn.execute(sa.text("SELECT min(balance) >= 0 FROM downstream_stations")).scalar()
    sub.dispose()
    main.dispose()
    return ((attempts[0] - attempts[1]) + (station[0] - station[1]) + abs(station[0] - total)
            + (codes[0] - codes[1]) + (0 if balance_ok else 1))


def report(args, baseline, paying, forwarded, duplicates):
    print(f"PostgreSQL + Redis; 分站 and 主站 each gunicorn -w {args.workers} sync; {args.rq_workers} rq workers "
          f"forwarding; {args.orders} orders (after {WARMUP} untimed)")
    print(f"  主站 POST /orders alone ({args.rq_workers} clients)       {baseline['rate']:7.1f} orders/s  "
          f"p50 {baseline['p50']:6.1f} ms  p95 {baseline['p95']:6.1f} ms  errors {baseline['errors']} "
          f"{baseline['error_sample'] or ''}")
    print(f"  分站 buy + pay ({args.buyers} buyers)                     {paying['rate']:7.1f} orders/s  "
          f"p50 {paying['p50']:6.1f} ms  p95 {paying['p95']:6.1f} ms  errors {paying['errors']} "
          f"{paying['error_sample'] or ''}")
    print(f"  forwarded pay → delivered                       {forwarded['rate']:7.1f} orders/s  "
          f"p50 {forwarded['p50']:6.1f} ms  p95 {forwarded['p95']:6.1f} ms  delivered {forwarded['delivered']}"
          f"/{args.orders}  (wall {forwarded['wall']:.1f} s)")
    ratio = forwarded["rate"] / baseline["rate"] if baseline["rate"] else 0
    print(f"  ratio forwarded/主站 alone {ratio:.2f}x   duplicates {duplicates} (target 0)   "
          f"分站 orders by status {forwarded['statuses']}   load average {os.getloadavg()[0]:.1f}")


def _clear_queue(redis_url, queue_name):
    from redis import Redis
    from rq import Queue

    try:
        conn = Redis.from_url(redis_url)
        Queue(queue_name, connection=conn).empty()
        conn.close()
    except Exception as exc:  # noqa: BLE001 - cleanup only
        print(f"could not empty queue {queue_name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
