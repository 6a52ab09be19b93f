"""一键代发 throughput: paid orders forwarded by real RQ workers to a supplier under gunicorn,
beside the supplier's own order endpoint driven directly, in the same run.

Issue 11 ("Benchmark"). The supplier is the test suite's Fulu-style simulator
(bench/forward_supplier.py) under gunicorn, one process with threads; kamen's
side is PostgreSQL + Redis + ``rq worker -w jobs.worker.AppWorker`` processes.
The bench pays orders through ``ordering.apply_payment`` (what the gateway's
notify does) at full speed and waits for every order to be delivered. It
prints orders/s, p50/p95 pay-to-delivered, supplier orders per shop order
(must be exactly 1: 0 duplicates) and the floor: the same number of orders
placed straight at the supplier with the Fulu adapter from as many threads as
there are workers.

    .venv/bin/python bench/forward_bench.py [--orders 1000] [--workers 4]

Needs PostgreSQL on 127.0.0.1:5432 and Redis (KAMEN_BENCH_REDIS, default
redis://127.0.0.1:6379/1). Loopback only; the throwaway database
kamen_fwdbench_<pid> and the bench's queue are removed at the end.
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
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from common import pg_database, start_gunicorn, wait_ready  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "forward-bench-secret"
FULU_KEY, FULU_SECRET = "fulu-app-key", "0123456789abcdef0123456789abcdef"


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_fwdbench_"))
    db_url, drop = pg_database(args.pg_admin_url, f"kamen_fwdbench_{os.getpid()}")
    queue_name = f"kamen-fwdbench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=SECRET, KAMEN_INSTANCE_PATH=str(tmp / "instance"),
               REDIS_URL=args.redis_url, KAMEN_JOB_QUEUE=queue_name, PYTHONPATH=str(ROOT))
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "KAMEN_INSTANCE_PATH", "REDIS_URL",
                                           "KAMEN_JOB_QUEUE")})
    supplier = start_gunicorn("forward_supplier:app", ROOT / "bench", env, tmp / "supplier.log", workers=1, threads=8)
    workers = []
    try:
        wait_ready(supplier, "/_bench/orders")
        floor = run_floor(supplier.url, args.orders, args.workers)
        app, product_id = prepare(supplier.url)
        workers = [subprocess.Popen([str(Path(sys.executable).with_name("rq")), "worker", "-w", args.worker_class,
                                     "--url", args.redis_url, queue_name], cwd=ROOT, env=env,
                                    stdout=open(tmp / f"worker{i}.log", "w"), stderr=subprocess.STDOUT)
                   for i in range(args.workers)]
        time.sleep(3)  # the workers build the app before their first fork
        kamen = run_kamen(app, product_id, args.orders, args.timeout)
        counts = json.load(urllib.request.urlopen(f"{supplier.url}/_bench/orders", timeout=10))
        report(args, floor, kamen, counts)
        ok = kamen["delivered"] == args.orders and kamen["attempts"] == args.orders \
            and counts["orders"] - args.orders == args.orders and counts["distinct"] == counts["orders"]
        return 0 if ok else 1
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(10)
        supplier.stop()
        _drop_queue(args.redis_url, queue_name)
        drop()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000, help="paid orders to forward (default 1000)")
    parser.add_argument("--workers", type=int, default=4, help="rq worker processes (default 4)")
    parser.add_argument("--worker-class", default="jobs.worker.AppWorker",
                        help="rq worker class (default jobs.worker.AppWorker, what deploy/ runs)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds to wait for every delivery")
    parser.add_argument("--redis-url", default=os.environ.get("KAMEN_BENCH_REDIS", "redis://127.0.0.1:6379/1"))
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


def run_floor(url, orders, threads):
    """The supplier alone: the same orders placed straight through the adapter."""
    from kamen.suppliers.fulu import FuluAdapter

    adapter = FuluAdapter(url, FULU_KEY, FULU_SECRET, 30)
    latencies = []

    def place(n):
        started = time.perf_counter()
        result = adapter.place_order(f"FLOOR{n:07d}", "1001", 1, {}, Decimal("100"))
        latencies.append(time.perf_counter() - started)
        return result.status.value

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(place, range(orders)))
    elapsed = time.perf_counter() - started
    return {"rate": orders / elapsed, "p95": _p(latencies, 95), "ok": statuses.count("SUCCESS")}


def prepare(url):
    from kamen import create_app
    from kamen.extensions import db
    from kamen.models import DeliveryType, PaymentChannel, Product, StockMode, Supplier, SupplierKind
    from kamen.secretbox import encrypt

    app = create_app()
    with app.app_context():
        db.create_all()
        supplier = Supplier(code="bench-fulu", name="压测货源", kind=SupplierKind.FULU, base_url=url,
                            app_id=FULU_KEY, secret_encrypted=encrypt(FULU_SECRET))
        db.session.add(supplier)
        db.session.flush()
        product = Product(supplier_id=supplier.id, code="1001", name="压测代发卡密", cost_price=Decimal("9.50"),
                          sale_price=Decimal("10.50"), stock_mode=StockMode.UNLIMITED, stock=0,
                          delivery_type=DeliveryType.CARD)
        db.session.add(product)
        db.session.add(PaymentChannel(name="压测通道", base_url="http://127.0.0.1:9", pid="1001",
                                      key_encrypted=encrypt("k"), pay_types=["alipay"]))
        db.session.commit()
        return app, product.id


def run_kamen(app, product_id, orders, timeout):
    import sqlalchemy as sa

    from kamen.extensions import db
    from kamen.models import ForwardAttempt, Order, OrderStatus
    from kamen.services import ordering

    with app.app_context():
        numbers = [ordering.create_order(db.session, ordering.BuyRequest(
            product_id=product_id, quantity="1", contact=f"1380000{n:04d}"[:11], ip=f"10.0.{n // 250}.{n % 250}"))
            for n in range(orders)]
        ids = db.session.scalars(sa.select(Order.id).where(Order.order_no.in_(numbers))).all()
        started = time.perf_counter()
        for order_id in ids:  # the gateway's notify, as fast as the bench can send them
            order = db.session.get(Order, order_id)
            ordering.apply_payment(db.session, order_id, None, f"T{order.order_no}", order.amount, "notify", {})
        paid_seconds = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            db.session.rollback()
            done = db.session.scalar(sa.select(sa.func.count()).select_from(Order)
                                     .where(Order.status == OrderStatus.DELIVERED))
            if done >= orders:
                break
            time.sleep(0.2)
        db.session.rollback()
        rows = db.session.execute(sa.select(Order.paid_at, Order.delivered_at)
                                  .where(Order.status == OrderStatus.DELIVERED)).all()
        first_paid = min(r.paid_at for r in rows)
        last_delivered = max(r.delivered_at for r in rows)
        attempts = db.session.scalar(sa.select(sa.func.count()).select_from(ForwardAttempt))
        waits = [(r.delivered_at - r.paid_at).total_seconds() for r in rows]
    return {"delivered": len(rows), "attempts": attempts, "paid_seconds": paid_seconds,
            "rate": len(rows) / max((last_delivered - first_paid).total_seconds(), 1e-3),
            "p50": statistics.median(waits), "p95": _p(waits, 95)}


def _p(values, pct):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def _drop_queue(redis_url, queue_name):
    from redis import Redis
    from rq import Queue

    Queue(queue_name, connection=Redis.from_url(redis_url)).delete(delete_jobs=True)


def report(args, floor, kamen, counts):
    print(f"一键代发 bench: {args.orders} paid orders, {args.workers} rq workers, supplier simulator under gunicorn")
    print(f"  supplier alone : {floor['rate']:7.1f} orders/s, p95 {floor['p95'] * 1000:6.0f} ms "
          f"({floor['ok']} SUCCESS, {args.workers} threads)")
    print(f"  kamen forwarded: {kamen['rate']:7.1f} orders/s, pay→delivered p50 {kamen['p50'] * 1000:6.0f} ms, "
          f"p95 {kamen['p95'] * 1000:6.0f} ms ({kamen['delivered']} delivered, payments took "
          f"{kamen['paid_seconds']:.1f} s)")
    print(f"  ratio          : {kamen['rate'] / floor['rate']:.2f}x the supplier alone")
    shop_orders = counts["orders"] - args.orders
    print(f"  duplicates     : supplier orders for shop orders {shop_orders} / {args.orders}, attempts "
          f"{kamen['attempts']}, repeated keys {counts['orders'] - counts['distinct']}")


if __name__ == "__main__":
    sys.exit(main())
