"""同步商品库 throughput: a 分站 syncing 20,000 products from a real kamen 主站.

Issue 5 ("Benchmark") sets the targets on PostgreSQL: a full sync of 20,000
products over HTTP (paged) in at most 20 s; an incremental sync with nothing
changed in at most 2 s, writing no product row.

    .venv/bin/python bench/sync_bench.py [--products 20000] [--baseline 2000]

Two throwaway databases on 127.0.0.1:5432 (``kamen_syncbench_<pid>`` for the
分站, ``…_main`` for the 主站), dropped at the end. The 主站 is kamen itself
(``wsgi:app`` under gunicorn, one sync worker) with its catalogue inserted
through Core; the 分站 runs ``kamen.services.syncing`` in this process, with
the adapter it builds for the supplier row. Rows written are counted twice:
the rowcount of every INSERT/UPDATE/DELETE the 分站 sends, and the
pg_stat_user_tables deltas once the connections have closed.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from common import pg_database, start_gunicorn, wait_ready  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout gunicorn serves (cwd=ROOT)

from kamen import create_app  # noqa: E402
from kamen.extensions import db  # noqa: E402
from kamen.models import Category, DeliveryType, Product, StockMode, Supplier, SupplierKind, SyncRun  # noqa: E402
from kamen.secretbox import encrypt  # noqa: E402
from kamen.services import stations, syncing  # noqa: E402
from kamen.services.suppliers import default_supplier  # noqa: E402
from kamen.timeutil import utcnow  # noqa: E402

SECRET_KEY = "sync-bench-secret"
FULL_TARGET_S = 20.0
INCREMENTAL_TARGET_S = 2.0
_WRITE = re.compile(r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_syncbench_"))
    names = [f"kamen_syncbench_{os.getpid()}", f"kamen_syncbench_{os.getpid()}_main"]
    server, drops = None, []
    try:
        shop_url, main_url = (_database(args.pg_admin_url, name, drops) for name in names)
        app_id, secret = fill_main_station(main_url, args.products)
        server = start_main_station(main_url, tmp)
        print(f"主站: kamen (gunicorn -w 1) on {server.url}, {args.products:,} products, PostgreSQL 127.0.0.1")
        return 0 if run_bench(shop_url, server.url, app_id, secret, args) else 1
    finally:
        if server:
            server.stop()
        for drop in drops:
            drop()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000, help="catalogue size (default 20000)")
    parser.add_argument("--baseline", type=int, default=2_000, help="rows for the naive baseline (default 2000)")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="server where the temporary databases are created and dropped")
    return parser.parse_args()


def _database(admin_url, name, drops):
    url, drop = pg_database(admin_url, name)
    drops.append(drop)
    return url


def make_app(db_url):
    return create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": SECRET_KEY,
                       "REDIS_URL": None, "JOBS_SYNC": True})


# --- the 主站 -----------------------------------------------------------------

def fill_main_station(db_url, count):
    """Schema, 20 categories, ``count`` listed products (last changed yesterday) and one 分站 key."""
    app = make_app(db_url)
    with app.app_context():
        db.create_all()
        supplier_id = default_supplier(db.session).id
        roots = [Category(name=name) for name in ("游戏点卡", "话费充值")]
        db.session.add_all(roots)
        db.session.flush()
        leaves = [Category(name=f"{root.name}{n}", parent_id=root.id) for root in roots for n in range(10)]
        db.session.add_all(leaves)
        db.session.commit()
        yesterday = utcnow() - timedelta(days=1)
        rows = []
        for n in range(count):
            card = n % 2 == 0
            face = Decimal(10 + n % 50)
            rows.append({
                "supplier_id": supplier_id, "code": f"G{n:06d}", "name": f"基准商品 {n} {face}元",
                "category_id": leaves[n % len(leaves)].id, "face_value": face, "market_price": face,
                "cost_price": face * Decimal("0.95"), "sale_price": face * Decimal("0.98"),
                "stock_mode": StockMode.SYNCED if card else StockMode.UNLIMITED, "stock": 50 + n % 500,
                "delivery_type": DeliveryType.CARD if card else DeliveryType.TOPUP,
                "buyer_fields": [] if card else [{"key": "account", "label": "充值账号", "pattern": "", "hint": ""}],
                "is_listed": True, "created_at": yesterday, "updated_at": yesterday,
            })
        for start in range(0, count, 5000):
            db.session.execute(sa.insert(Product.__table__), rows[start:start + 5000])
        db.session.commit()
        station, secret = stations.create_station(db.session, "基准分站", Decimal("2"), Decimal("0"))
        app_id = station.app_id
        db.engine.dispose()
    return app_id, secret


def start_main_station(db_url, tmp):
    env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=SECRET_KEY, KAMEN_INSTANCE_PATH=str(tmp / "instance"))
    env.pop("REDIS_URL", None)
    server = start_gunicorn("wsgi:app", ROOT, env, tmp / "main.log", workers=1)
    # Any HTTP answer (the API refuses unsigned requests) means it is up.
    wait_ready(server, "/api/upstream/v1/balance", any_status=True)
    return server


# --- the 分站 -----------------------------------------------------------------

class WriteCounter:
    """Rows written per table, from each write statement's rowcount."""

    def __init__(self, engine):
        self.rows = Counter()
        sa.event.listen(engine, "after_cursor_execute", self.after)

    def after(self, conn, cursor, statement, parameters, context, executemany):
        match = _WRITE.match(statement)
        if match and cursor.rowcount > 0:
            self.rows[(match.group(1).split()[0].upper(), match.group(2))] += cursor.rowcount

    def take(self):
        rows, self.rows = self.rows, Counter()
        return rows


def pg_stat_writes():
    """(inserted, updated, deleted) rows per table as PostgreSQL counted them."""
    db.session.commit()  # hand the session's connection back, so dispose closes it too
    db.engine.dispose()  # closed backends flush their counters
    time.sleep(0.5)
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"))
        return {name: (ins, upd, dele) for name, ins, upd, dele in rows}


class TimedAdapter:
    """The supplier's own adapter, timing the time spent waiting for the 主站."""

    def __init__(self, adapter):
        self.adapter, self.waited = adapter, 0.0

    def list_products(self, **kwargs):
        start = time.perf_counter()
        try:
            return self.adapter.list_products(**kwargs)
        finally:
            self.waited += time.perf_counter() - start


def run_bench(shop_url, main_url, app_id, secret, args):
    app = make_app(shop_url)
    with app.app_context():
        db.create_all()
        supplier = Supplier(code="main", name="基准主站", kind=SupplierKind.KAMEN, base_url=main_url,
                            app_id=app_id, secret_encrypted=encrypt(secret), auto_list=True)
        db.session.add(supplier)
        db.session.commit()
        writes = WriteCounter(db.engine)

        results = []
        for label, mode in (("full sync", "full"), ("incremental, nothing changed", "incremental"),
                            ("full re-sync, nothing changed", "full")):
            results.append(timed_sync(label, supplier, mode, writes))
        results.append(naive_baseline(supplier, args.baseline, args.products))
        return report(results, args.products)


def timed_sync(label, supplier, mode, writes):
    before = pg_stat_writes()
    writes.take()
    adapter = TimedAdapter(syncing.adapter_for_supplier(supplier))
    start = time.perf_counter()
    run = syncing.request_sync(db.session, supplier, mode)
    syncing.run_sync(db.session, run.id, adapter)
    elapsed = time.perf_counter() - start
    rows = writes.take()
    after = pg_stat_writes()
    run = db.session.get(SyncRun, run.id)
    if run.status != "succeeded":
        raise RuntimeError(f"{label}: {run.status} {run.message}")
    stat = {t: tuple(a - b for a, b in zip(after[t], before.get(t, (0, 0, 0)))) for t in after}
    return {
        "label": label, "mode": mode, "seconds": elapsed, "seen": run.seen, "pages": run.pages,
        "waited": adapter.waited, "counts": (run.created, run.changed, run.unchanged, run.delisted, run.failed),
        "product_rows": sum(n for (_, table), n in rows.items() if table == "products"),
        "other_rows": sum(n for (_, table), n in rows.items() if table != "products"),
        "stat_products": sum(stat.get("products", (0, 0, 0))),
        "stat_other": sum(sum(v) for t, v in stat.items() if t != "products"),
    }


def naive_baseline(supplier, size, total):
    """Per-row ORM select-then-add over the first ``size`` remote items (HTTP included),
    into a separate supplier; one commit per page, as the real sync."""
    baseline = Supplier(code="naive", name="基准（逐行）", kind=SupplierKind.KAMEN, base_url=supplier.base_url,
                        app_id=supplier.app_id, secret_encrypted=supplier.secret_encrypted, auto_list=True)
    db.session.add(baseline)
    db.session.commit()
    adapter = syncing.adapter_for_supplier(baseline)
    done, cursor = 0, None
    start = time.perf_counter()
    while done < size:
        page = adapter.list_products(cursor=cursor)
        categories = syncing.category_context(db.session)
        for item in page.items[: size - done]:
            product = db.session.scalar(sa.select(Product).filter_by(supplier_id=baseline.id, code=item.code))
            if product is None:
                db.session.add(Product(**syncing._new_row(baseline, item, categories)))
            done += 1
        db.session.commit()
        cursor = page.next_cursor
        if not cursor:
            break
    elapsed = time.perf_counter() - start
    return {"label": f"baseline: naive per-row ORM, {done:,} rows, extrapolated to {total:,}",
            "seconds": elapsed * total / done, "measured": elapsed, "rows": done}


def report(results, total):
    print()
    for r in results:
        if "measured" in r:
            print(f"{r['label']}\n    {r['seconds']:7.2f} s  {total / r['seconds']:8,.0f} products/s"
                  f"   (measured {r['measured']:.2f} s for {r['rows']:,})")
            continue
        created, changed, unchanged, delisted, failed = r["counts"]
        rate = r["seen"] / r["seconds"] if r["seen"] else 0
        print(f"{r['label']}\n    {r['seconds']:7.2f} s  {rate:8,.0f} products/s   {r['seen']:,} seen in "
              f"{r['pages']} pages (waiting for the 主站 {r['waited']:.2f} s)\n"
              f"    created {created:,} changed {changed:,} unchanged {unchanged:,} delisted {delisted:,} "
              f"failed {failed:,}\n"
              f"    rows written: products {r['product_rows']:,} (pg_stat {r['stat_products']:,}), "
              f"bookkeeping {r['other_rows']:,} (pg_stat {r['stat_other']:,})")
    full, incremental = results[0], results[1]
    full_ok = full["seconds"] <= FULL_TARGET_S and full["seen"] == total
    incr_ok = incremental["seconds"] <= INCREMENTAL_TARGET_S and incremental["product_rows"] == 0 \
        and incremental["stat_products"] == 0
    print(f"\ntargets: full ≤ {FULL_TARGET_S:g} s: {full['seconds']:.2f} s {'OK' if full_ok else 'MISSED'}; "
          f"unchanged incremental ≤ {INCREMENTAL_TARGET_S:g} s with 0 product rows written: "
          f"{incremental['seconds']:.2f} s, {incremental['product_rows']} rows {'OK' if incr_ok else 'MISSED'}")
    return full_ok and incr_ok


if __name__ == "__main__":
    sys.exit(main())
