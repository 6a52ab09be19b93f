"""Shop page throughput against a bare Flask + SQLAlchemy page, in one run.

Issue 3 ("Fast pages") sets the target: kamen's home, category and product
pages under gunicorn (2 sync workers) reach at least 70% of the req/s of a
bare page rendering the same 30 products. Measuring both in the same run on
the same database keeps the ratio honest on whatever machine runs it.

    .venv/bin/python bench/shop_bench.py [--seconds 5] [--db sqlite|postgresql]

Everything runs on loopback in a throwaway database, for a bounded time.
"""
import argparse
import http.client
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from common import pg_database, start_gunicorn, wait_ready  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # seed with the same checkout that gunicorn serves (cwd=ROOT)
TARGET = 0.70
LIST_SIZE = 30
CATEGORY = "话费充值"  # the category page under test, filled up to LIST_SIZE products
CONNECTIONS = 4  # two per worker keeps both sync workers busy without piling up a queue


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_bench_"))
    servers = []
    drop_db = None
    try:
        try:
            db_url, drop_db = create_database(args.db, tmp, args.pg_admin_url)
            env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY="bench-secret", KAMEN_INSTANCE_PATH=str(tmp / "instance"))
            category_id, category_ids, product_id = prepare_database(env)
            kamen = start_gunicorn("wsgi:app", ROOT, env, tmp / "kamen.log")
            servers.append(kamen)
            bare_env = dict(env, BENCH_CATEGORY_IDS=",".join(map(str, category_ids)))
            bare = start_gunicorn("bare_app:app", BENCH_DIR, bare_env, tmp / "bare.log")
            servers.append(bare)
            pages = [
                ("bare", bare, "/"),
                ("home", kamen, "/"),
                ("category", kamen, f"/c/{category_id}"),
                ("product", kamen, f"/p/{product_id}"),
            ]
            sizes = {name: wait_ready(server, path) for name, server, path in pages}
        except Exception as exc:  # noqa: BLE001 - any setup failure ends the run with a message
            detail = getattr(exc, "stderr", None) or ""  # a failed `flask db upgrade` says why here
            print(f"setup failed: {exc}\n{detail}", file=sys.stderr)
            return 1
        tool = "wrk" if shutil.which("wrk") else "python"
        print(f"db={args.db}  gunicorn -w 2 sync  load tool={tool} ({CONNECTIONS} connections)  "
              f"{args.seconds} s per page after 1 s warm-up, in 1 s slices taken in turn")
        report(pages, sizes, measure(tool, pages, args.seconds))
        return 0
    finally:
        for server in servers:
            server.stop()
        if drop_db:
            drop_db()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per page (default 5)")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--pg-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="server where --db postgresql creates and drops its temporary database",
    )
    args = parser.parse_args()
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    return args


def create_database(kind, tmp, pg_admin_url):
    """A fresh database URL and a callable that drops it (None for a temp-dir SQLite file)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    return pg_database(pg_admin_url, f"kamen_bench_{os.getpid()}")


def prepare_database(env):
    """Migrate, seed the demo catalog, fill the test category; return the ids to request."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "kamen", "db", "upgrade"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], SECRET_KEY=env["SECRET_KEY"], KAMEN_INSTANCE_PATH=env["KAMEN_INSTANCE_PATH"])
    from kamen import create_app
    from kamen.extensions import db
    from kamen.models import Category, Product
    from kamen.services.demo import seed_demo

    app = create_app()
    with app.app_context():
        seed_demo(db.session)
        root_id = db.session.scalar(
            sa.select(Category.id).where(Category.name == CATEGORY, Category.parent_id.is_(None))
        )
        children = dict(db.session.execute(sa.select(Category.name, Category.id).where(Category.parent_id == root_id)).all())
        category_ids = [root_id, *children.values()]
        add_topup_products(db.session, children, category_ids)
        product_id = db.session.scalar(
            sa.select(Product.id).where(Product.category_id.in_(category_ids)).order_by(Product.id)
        )
        db.engine.dispose()
    return root_id, category_ids, product_id


def add_topup_products(session, carrier_ids, category_ids):
    """Phone top-ups (fast and 72-hour slow, all carriers) until the category lists LIST_SIZE products."""
    from kamen.models import DeliveryType, Product, StockMode
    from kamen.services.demo import PHONE
    from kamen.services.suppliers import default_supplier

    supplier = default_supplier(session)
    listed = sa.select(sa.func.count()).where(Product.category_id.in_(category_ids), Product.is_listed.is_(True))
    missing = LIST_SIZE - session.scalar(listed)
    codes = set(session.scalars(sa.select(Product.code)))
    prefixes = {"中国移动": "YD", "中国联通": "LT", "中国电信": "DX"}
    candidates = [
        (carrier, face, slow)
        for slow in (False, True)
        for face in (10, 20, 30, 50, 100, 200, 300, 500)
        for carrier in prefixes
    ]
    for n, (carrier, face, slow) in enumerate(candidates):
        code = f"{prefixes[carrier]}{face}" + ("-SLOW" if slow else "")
        if missing <= 0:
            break
        if code in codes:
            continue
        cost, sale = (Decimal("0.95"), Decimal("0.965")) if slow else (Decimal("0.97"), Decimal("0.988"))
        name = f"{carrier}话费 {face}元" + (" 慢充72小时" if slow else "")
        session.add(Product(
            supplier_id=supplier.id, code=code, name=name, category_id=carrier_ids[carrier],
            face_value=Decimal(face), tier_label=f"{face}元",
            cost_price=(face * cost).quantize(Decimal("0.01")), market_price=Decimal(face),
            sale_price=(face * sale).quantize(Decimal("0.01")),
            stock_mode=StockMode.UNLIMITED, delivery_type=DeliveryType.TOPUP, buyer_fields=PHONE,
            delivery_minutes=4320 if slow else 60, sales_count=(n * 53) % 400,
            description=f"{name}，全国通用，{'72 小时内' if slow else '1 小时内'}到账。",
        ))
        missing -= 1
    session.commit()


def measure(tool, pages, seconds):
    """{page: (req/s, failed)}. The pages take 1 s turns, so a neighbour's CPU
    burst on a shared machine hits every page alike instead of skewing one ratio."""
    urls = {name: f"http://127.0.0.1:{server.port}{path}" for name, server, path in pages}
    for url in urls.values():
        load(tool, url, 1)
    slices = {name: [] for name in urls}
    for _ in range(seconds):
        for name, url in urls.items():
            slices[name].append(load(tool, url, 1))
    return {name: (sum(r for r, _ in s) / seconds, sum(f for _, f in s)) for name, s in slices.items()}


def load(tool, url, seconds):
    """(req/s, failed requests) for ``url`` over ``seconds``."""
    return wrk(url, seconds) if tool == "wrk" else python_load(url, seconds)


def wrk(url, seconds):
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(CONNECTIONS), "-d", f"{seconds}s", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    failed += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return rate, failed


def python_load(url, seconds):
    """Fallback load: CONNECTIONS processes, each looping keep-alive GETs until a shared deadline."""
    with multiprocessing.Pool(CONNECTIONS) as pool:
        start = time.time()
        counts = pool.starmap(_client_loop, [(url, start + seconds)] * CONNECTIONS)
        elapsed = time.time() - start
    return sum(c[0] for c in counts) / elapsed, sum(c[1] for c in counts)


def _client_loop(url, deadline):
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    ok = failed = 0
    while time.time() < deadline:
        try:
            conn.request("GET", "/" + path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                ok += 1
            else:
                failed += 1
        except (OSError, http.client.HTTPException):
            conn.close()  # the next request reconnects
            failed += 1
    conn.close()
    return ok, failed


def report(pages, sizes, results):
    bare_rate = results["bare"][0]
    for name, _server, path in pages:
        rate, failed = results[name]
        ratio = "" if name == "bare" else f"{rate / bare_rate:5.2f}x bare"
        errors = f"  {failed} failed" if failed else ""
        print(f"{name:<9} {rate:7.0f} req/s  {ratio:<11}  {path:<8} {sizes[name]:>6} B{errors}")
    print(f"target ≥ {TARGET:.2f}x bare")


if __name__ == "__main__":
    sys.exit(main())
