"""Batch import (批量导入) of a 100,000-row supplier price list on PostgreSQL, against a naive importer.

Issue 8 ("Benchmark") sets the targets on a 2-core machine: upload → preview
ready ≤ 6 s for xlsx and ≤ 4 s for CSV, committed ≤ 5 s, the worker's peak
RSS ≤ 300 MB, at least 5× a naive importer (openpyxl normal mode + validation
and one ORM insert per row) measured in the same run, and the shop stays
responsive meanwhile. Each run prints where the preview's time goes (upload,
read, map, validate, stage).

    .venv/bin/python bench/import_bench.py [--rows 100000] [--baseline-rows 10000]

The price lists are written at run time (xlsx with openpyxl write_only, CSV in
GBK): a title row, a contact row, a blank row, the header, ~2% bad rows (bad
prices, duplicate codes, negative stock), notes and a total after the data.
Each file is imported fresh (all creates), then again with ~10% of the prices
changed (updates), each import in its own worker process (spawned, so its
peak RSS is its own) while the shop home page, served by gunicorn from the
same database, is requested every 0.5 s. Everything runs in a throwaway
database kamen_importbench_<pid>, dropped at the end.
"""
import argparse
import csv
import gc
import http.client
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import pg_database, start_gunicorn, wait_ready  # noqa: E402  (bench/ is on sys.path when run as a script)

PREVIEW_TARGET_S = {"xlsx": 6, "csv": 4}
COMMIT_TARGET_S = 5
RSS_TARGET_MB = 300
SPEEDUP_TARGET = 5
BAD_SHARE = 0.02
REPRICED_SHARE = 0.10
SAMPLE_EVERY_S = 0.5  # "a few requests": a steady trickle, not a load test

HEADER = ["商品编码", "商品名称", "分类", "面值", "供货价", "市场价", "库存", "发货方式", "充值账号格式", "预计到账(分钟)"]
# (brand, demo category, face values, delivery, account format, minutes)
LINES = [
    ("腾讯Q币", "腾讯游戏", (1, 5, 10, 30, 50, 100, 200), "直充", "QQ号", 5),
    ("王者荣耀点券", "腾讯游戏", (6, 30, 68, 128, 328, 648), "直充", "", 10),
    ("网易一卡通", "网易游戏", (10, 15, 30, 50, 100), "卡密", "", 1),
    ("原神创世结晶", "米哈游", (6, 30, 68, 198, 328, 648), "代充", "", 30),
    ("移动话费", "中国移动", (10, 20, 30, 50, 100, 200), "直充", "手机号", 60),
    ("联通话费", "中国联通", (10, 20, 30, 50, 100, 200), "直充", "手机号", 60),
    ("电信话费", "中国电信", (10, 20, 30, 50, 100, 200), "直充", "手机号", 60),
    ("爱奇艺黄金会员", "爱奇艺", (19, 58, 148, 248), "直充", "手机号", 5),
    ("腾讯视频VIP", "腾讯视频", (20, 58, 148, 253), "直充", "QQ号", 5),
    ("Steam钱包", "Steam", (20, 50, 100, 200, 500), "卡密", "", 1),
    ("App Store充值卡", "App Store", (50, 100, 200, 500, 1000), "卡密", "", 1),
]
REGIONS = ("全国", "广东", "浙江", "江苏", "山东", "河南", "四川", "湖北")
SUPPLIERS = {"xlsx": "BENCH-XLSX", "csv": "BENCH-CSV", "naive": "BENCH-NAIVE"}


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_importbench_"))
    shop, drop_db = None, None
    try:
        t = time.perf_counter()
        files = write_files(tmp, args.rows, args.baseline_rows)
        sizes = "  ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MB" for p in files.values())
        print(f"generated in {time.perf_counter() - t:.1f} s: {sizes}")
        db_url, drop_db = create_database(args.pg_admin_url)
        env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY="bench-secret", KAMEN_INSTANCE_PATH=str(tmp / "instance"))
        prepare_database(env)
        shop = start_gunicorn("wsgi:app", ROOT, env, tmp / "shop.log")
        wait_ready(shop, "/")
        idle = sample_latency(shop, lambda: None, seconds=3)
        print(f"db=postgresql  rows={args.rows:,}  shop home idle: {latency_text(idle)}\n")

        results = {}
        for kind in ("xlsx", "csv"):
            for run, path in ((f"{kind} fresh", files[f"fresh.{kind}"]), (f"{kind} re-import", files[f"reprice.{kind}"])):
                results[run] = in_worker(shop, env, run_pipeline, path, SUPPLIERS[kind])
                steps = in_worker(shop, env, run_steps, path, SUPPLIERS[kind])
                results[run]["steps"].update(read=steps["read"], validate=steps["validate"])
                print(pipeline_line(run, results[run]))
        naive = in_worker(shop, env, run_naive, files["naive.xlsx"], SUPPLIERS["naive"])
        report(results, naive, args.rows, args.baseline_rows)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"setup failed: {exc}\n{exc.stderr}", file=sys.stderr)
        return 1
    finally:
        if shop:
            shop.stop()
        if drop_db:
            drop_db()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows per file (default 100,000)")
    parser.add_argument("--baseline-rows", type=int, default=10_000,
                        help="rows the naive importer runs, extrapolated to --rows (default 10,000)")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="server where the temporary database is created and dropped")
    return parser.parse_args()


# -- the files --------------------------------------------------------------

def price_list(rows, seed=4):
    """Data rows as a supplier sends them: ~2% bad; returns (rows, indexes of good rows)."""
    rng = random.Random(seed)
    out, good = [], []
    for i in range(rows):
        brand, category, faces, delivery, account, minutes = LINES[i % len(LINES)]
        face = faces[(i // len(LINES)) % len(faces)]
        region = REGIONS[(i // 97) % len(REGIONS)]
        cost = (Decimal(face) * Decimal(rng.randint(900, 990)) / 1000).quantize(Decimal("0.01"))
        row = [f"SP{100000 + i}", f"{brand} {face}元 {region}{i // 1000}批", category, face, float(cost), face,
               rng.randint(0, 5000), delivery, account, minutes]
        roll = rng.random()
        if roll < BAD_SHARE / 3:
            row[4] = rng.choice(("面议", "9.6.1", "待定"))
        elif roll < BAD_SHARE * 2 / 3 and out:
            row[0] = out[rng.randrange(len(out))][0]  # a code already in the file
        elif roll < BAD_SHARE:
            row[6] = -rng.randint(1, 50)
        else:
            good.append(i)
        out.append(row)
    return out, good


def repriced(rows, good, seed=5):
    """The same list a month later: ~10% of the prices moved by 1-5% (below the warning limit)."""
    rng = random.Random(seed)
    out = [list(r) for r in rows]
    for i in rng.sample(good, int(len(rows) * REPRICED_SHARE)):
        out[i][4] = round(out[i][4] * (1 + rng.choice((-1, 1)) * rng.randint(1, 5) / 100), 2)
    return out


def write_files(tmp, rows, baseline_rows):
    fresh, good = price_list(rows)
    again = repriced(fresh, good)
    files = {}
    for name, data in (("fresh", fresh), ("reprice", again)):
        files[f"{name}.xlsx"] = write_xlsx(tmp / f"{name}.xlsx", data)
        files[f"{name}.csv"] = write_csv(tmp / f"{name}.csv", data)
    files["naive.xlsx"] = write_xlsx(tmp / "naive.xlsx", fresh[:baseline_rows])
    return files


def framed(rows):
    """Title, contact and blank rows before the header; notes and a total after the data."""
    yield ["XX数码货源价格表 2026-11（价格随时调整，以系统为准）"]
    yield ["联系QQ：800012345  微信：huoyuan888  下单前请核对面值"]
    yield []
    yield HEADER
    yield from rows
    yield []
    yield ["备注：以上价格含税，批发量大可议"]
    yield ["合计", f"{len(rows)} 个商品"]


def write_xlsx(path, rows):
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("价格表")
    for row in framed(rows):
        sheet.append(row)
    book.save(path)
    return path


def write_csv(path, rows):
    with open(path, "w", encoding="gbk", newline="") as f:
        csv.writer(f).writerows([[_csv_cell(c) for c in r] for r in framed(rows)])
    return path


def _csv_cell(value):
    return f"{value:.2f}" if isinstance(value, float) else value


# -- the database -----------------------------------------------------------

def create_database(pg_admin_url):
    return pg_database(pg_admin_url, f"kamen_importbench_{os.getpid()}")


def prepare_database(env):
    """Migrate, seed the demo shop (its categories are the file's 分类), add the bench suppliers."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "kamen", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    with app_context(env) as session:
        from kamen.models import Supplier
        from kamen.services.demo import seed_demo

        seed_demo(session)
        for code in SUPPLIERS.values():
            session.add(Supplier(code=code, name=f"{code} 货源", markup_percent=Decimal("3")))
        session.commit()


class app_context:
    """``with app_context(env) as session``: kamen on the bench database."""

    def __init__(self, env):
        for key in ("DATABASE_URL", "SECRET_KEY", "KAMEN_INSTANCE_PATH", "REDIS_URL", "KAMEN_JOB_QUEUE"):
            if key in env:
                os.environ[key] = env[key]
        from kamen import create_app

        self.app = create_app()

    def __enter__(self):
        from kamen.extensions import db

        self.ctx = self.app.app_context()
        self.ctx.push()
        return db.session

    def __exit__(self, *exc):
        from kamen.extensions import db

        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()


# -- the workers (each in a spawned process) --------------------------------

def peak_rss_mb():
    """This process's own peak (VmHWM): ru_maxrss would carry the parent's peak over fork + exec."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def helpers_peak_rss_mb():
    """The largest peak of the helper processes staging forked (they finished): forked, they
    start out sharing the worker's pages, which count in both."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_pipeline(env, path, supplier_code):
    """What the import jobs do: upload → preview ready, then commit; times, counts, peak RSS."""
    with app_context(env) as session:
        from flask import current_app

        from kamen.models import Supplier
        from kamen.services.importing import committing, staging

        supplier = session.scalar(sa.select(Supplier).filter_by(code=supplier_code))
        start = time.perf_counter()
        with open(path, "rb") as f:
            batch = staging.create_batch(session, f, path.name, supplier=supplier)
        upload_s = time.perf_counter() - start
        batch = staging.analyze(session, batch.id)
        analyze_s = time.perf_counter() - start - upload_s
        choices = {m["column"]: m["key"] for m in batch.match_info}
        staging.apply_mapping(session, batch, staging.StageOptions(
            choices=choices, markup=staging.batch_markup(batch), max_price_change=batch.max_price_change))
        stage_start = time.perf_counter()
        batch = staging.stage(session, batch.id)
        stage_s = time.perf_counter() - stage_start
        preview_s, preview_rss = time.perf_counter() - start, peak_rss_mb()
        assert batch.status == "ready", batch.message
        counts = {a: getattr(batch, a) for a in ("created", "updated", "unchanged", "skipped", "failed")}
        start = time.perf_counter()
        committing.request_commit(session, batch, confirm_warnings=True)
        batch = committing.commit_batch(session, batch.id)
        commit_s = time.perf_counter() - start
        assert batch.status == "committed", batch.message
        return {"preview_s": preview_s, "commit_s": commit_s, "rows": batch.rows_in, "counts": counts,
                "preview_rss": preview_rss, "rss": peak_rss_mb(), "helper_rss": helpers_peak_rss_mb(),
                "helpers": current_app.config["IMPORT_WORKERS"],
                "steps": {"upload": upload_s, "analyze": analyze_s, "stage": stage_s}}


def run_steps(env, path, supplier_code):
    """Read and validate timed on their own (a separate process, so the pipeline's RSS stays its own)."""
    with app_context(env) as session:
        from kamen.models import Supplier
        from kamen.services.importing.header import locate_table
        from kamen.services.importing.mapping import auto_map
        from kamen.services.importing.readers import open_spreadsheet
        from kamen.services.importing.staging import batch_markup, supplier_markup_defaults
        from kamen.services.importing.validate import FileValidator
        from kamen.models import ImportBatch

        supplier = session.scalar(sa.select(Supplier).filter_by(code=supplier_code))
        gc.disable()  # as staging runs
        start = time.perf_counter()
        with open_spreadsheet(path) as book:
            for _ in book.rows():
                pass
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        with open_spreadsheet(path) as book:
            table = locate_table(book.rows())
            mapping = auto_map([str(h) for h in table.headers])
            batch = ImportBatch(supplier=supplier, price_basis=supplier.price_basis, **supplier_markup_defaults(supplier))
            session.rollback()  # the batch above only carried the supplier's pricing
            validator = FileValidator(mapping.columns, markup=batch_markup(batch), basis=batch.price_basis)
            for source in table.rows:
                if not source.skip:
                    validator.check(source.cells, source.line)
        validate_s = time.perf_counter() - start - read_s
        return {"read": read_s, "validate": validate_s}


def run_naive(env, path, supplier_code):
    """The baseline: openpyxl normal mode, then per row validate, look up, add and flush one Product."""
    with app_context(env) as session:
        from openpyxl import load_workbook

        from kamen.models import Product, Supplier
        from kamen.services.importing.header import locate_table
        from kamen.services.importing.staging import supplier_markup_defaults
        from kamen.services.importing.validate import validate_row
        from kamen.services.pricing import Markup

        supplier = session.scalar(sa.select(Supplier).filter_by(code=supplier_code))
        markup = Markup(**{k.removeprefix("markup_"): v for k, v in supplier_markup_defaults(supplier).items()})
        start = time.perf_counter()
        sheet = load_workbook(path).active
        table = locate_table(sheet.iter_rows(values_only=True))
        columns = {"code": 0, "name": 1, "face_value": 3, "cost_price": 4, "market_price": 5, "stock": 6}
        written = 0
        for source in table.rows:
            if source.skip:
                continue
            raw = {key: source.cells[col] for key, col in columns.items() if col < len(source.cells)}
            result = validate_row(raw, markup=markup)
            if result.errors:
                continue
            values = result.values
            exists = session.scalar(sa.select(Product).filter_by(supplier_id=supplier.id, code=values["code"]))
            if exists:
                continue
            session.add(Product(supplier_id=supplier.id, **values))
            session.flush()
            written += 1
        session.commit()
        return {"seconds": time.perf_counter() - start, "rows": written, "rss": peak_rss_mb()}


def _worker(target, args, pipe):
    try:
        pipe.send(("ok", target(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def in_worker(shop, env, target, *args):
    """Run ``target(env, *args)`` in a spawned process while sampling the shop; its result + latencies."""
    spawn = multiprocessing.get_context("spawn")
    receive, send = spawn.Pipe(duplex=False)
    proc = spawn.Process(target=_worker, args=(target, (env, *args), send))
    proc.start()
    latencies = sample_latency(shop, lambda: receive.poll() or not proc.is_alive())
    status, result = receive.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{target.__name__} failed: {result}")
    # The same page with the import done: the catalog is bigger now, so this
    # separates "the import slows the shop" from "more products slow the page".
    result["latency"], result["latency_after"] = latencies, sample_latency(shop, lambda: False, seconds=2)
    return result


# -- the shop meanwhile -----------------------------------------------------

def sample_latency(shop, done, seconds=None):
    """Seconds per GET / on the shop, every SAMPLE_EVERY_S until ``done()`` (or ``seconds``)."""
    latencies, stop = [], threading.Event()

    def loop():
        conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=30)
        while not stop.is_set():
            start = time.perf_counter()
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                latencies.append(time.perf_counter() - start)
            stop.wait(SAMPLE_EVERY_S)
        conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds if seconds else None
    while not (done() or (deadline and time.monotonic() > deadline)):
        time.sleep(0.05)
    stop.set()
    thread.join()
    return latencies


def latency_text(latencies):
    if not latencies:
        return "no samples"
    return (f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
            f"({len(latencies)} requests)")


# -- the report -------------------------------------------------------------

def pipeline_line(run, r):
    rows = r["rows"]
    counts = " ".join(f"{k} {v:,}" for k, v in r["counts"].items() if v)
    return (f"{run:<16} preview ready {r['preview_s']:5.1f} s ({rows / r['preview_s']:7,.0f} rows/s)  "
            f"committed {r['commit_s']:5.1f} s ({rows / r['commit_s']:7,.0f} rows/s)  "
            f"peak RSS {r['rss']:4.0f} MB (preview {r['preview_rss']:.0f} MB, "
            f"each staging helper ≤ {r['helper_rss']:.0f} MB)\n{'':<16} {counts}\n"
            f"{'':<16} {steps_text(r['steps'], r['helpers'])}\n"
            f"{'':<16} shop home meanwhile: {latency_text(r['latency'])}; "
            f"idle after: {latency_text(r['latency_after'])}")


def steps_text(steps, helpers):
    """Where the preview's time goes. Staging runs in ``helpers`` processes side by side;
    read and validate are timed apart, in one process, over the same file (the rest of
    staging decides create/update against the catalogue and writes the staged rows)."""
    return (f"preview steps: upload {steps['upload']:.1f} s, read+map (analyze) {steps['analyze']:.1f} s, "
            f"staging {steps['stage']:.1f} s in {helpers} processes; "
            f"one process alone needs read {steps['read']:.1f} + validate {steps['validate']:.1f} s + decide and write")


def report(results, naive, rows, baseline_rows):
    scale = rows / baseline_rows
    naive_s = naive["seconds"] * scale
    print(f"\nBASELINE (naive, for comparison only): openpyxl normal load + per-row validate, ORM look-up, add and "
          f"flush on {baseline_rows:,} rows ({naive['rows']:,} written) in {naive['seconds']:.1f} s, "
          f"peak RSS {naive['rss']:.0f} MB;\n  extrapolated ×{scale:g} to {rows:,} rows: {naive_s:.0f} s "
          f"({baseline_rows / naive['seconds']:,.0f} rows/s)")
    print(f"  shop home meanwhile: {latency_text(naive['latency'])}\n")
    print("targets")
    ok = True
    for run, r in results.items():
        speedup = naive_s / (r["preview_s"] + r["commit_s"])
        preview_target = PREVIEW_TARGET_S[run.split()[0]]
        checks = [
            (f"preview ready ≤ {preview_target} s", r["preview_s"] <= preview_target, f"{r['preview_s']:.1f} s"),
            (f"committed ≤ {COMMIT_TARGET_S} s", r["commit_s"] <= COMMIT_TARGET_S, f"{r['commit_s']:.1f} s"),
            (f"peak RSS ≤ {RSS_TARGET_MB} MB", max(r["rss"], r["helper_rss"]) <= RSS_TARGET_MB,
             f"{r['rss']:.0f} MB, helpers {r['helper_rss']:.0f} MB"),
            (f"≥ {SPEEDUP_TARGET}× baseline", speedup >= SPEEDUP_TARGET, f"{speedup:.1f}×"),
        ]
        ok &= all(passed for _, passed, _ in checks)
        print(f"  {run:<16} " + "  ".join(f"{name}: {shown} {'ok' if passed else 'MISSED'}"
                                           for name, passed, shown in checks))
    print("all targets met" if ok else "some targets missed")


if __name__ == "__main__":
    sys.exit(main())
