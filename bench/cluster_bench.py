"""kamen as a small production cluster on one machine: two web instances, two
RQ workers and the schedule on one PostgreSQL and one Redis (issue 9, "Benchmark").

    .venv/bin/python bench/cluster_bench.py [--catalogue 300000] [--rows 100000] [--sync 20000]

What runs: two gunicorn instances (2 sync workers each, each with its own
instance folder), two ``rq worker -w jobs.worker.AppWorker`` (own instance
folders), one ``rq cron jobs.cron``, and a kamen 主站 (gunicorn) the shop
syncs from. Everything on loopback, in throwaway databases
``kamen_clusterbench_<pid>`` (+ ``_main``) and a unique RQ queue.

It prints:

1. The schedule at idle: CPU per per-minute tick with the app-keeping worker
   against the old way measured in the same run (a plain ``rq worker`` running
   the two per-minute dispatch jobs, each horse building the app), as % of one
   core; idle RSS of ``rq cron``.
2. Shop p95 (home, category, product on both web instances, two clients)
   before, and while a 100k-row price list is imported (analyse, stage and
   commit jobs) into the catalogue-sized shop and a full 20k sync runs.
3. RSS and PSS of every process at idle and at its peak (work-horses
   included), and the memory of "web (2 workers) + one worker + cron" at the
   worst moment, against the 450 MiB budget.
4. Work lost or doubled: the import's created rows against the products
   written, the synced products against the 主站's, failed jobs, runs.

Every process has its own instance folder: uploads live in the database.
Takes several minutes on a 2-core machine.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from common import start_gunicorn, wait_ready  # bench/ is on sys.path when run as a script
from import_bench import app_context as bench_app
from import_bench import price_list, write_csv
from sync_bench import _database, fill_main_station, start_main_station

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
SECRET_KEY = "cluster-bench-secret"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BUDGET_MIB = 450
IDLE_CORE_TARGET = 1.0  # % of one core for the per-minute schedule
CLK = os.sysconf("SC_CLK_TCK")


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kamen_clusterbench_"))
    pid = os.getpid()
    drops, procs, servers = [], [], []
    try:
        shop_url = _database(args.pg_admin_url, f"kamen_clusterbench_{pid}", drops)
        main_url = _database(args.pg_admin_url, f"kamen_clusterbench_{pid}_main", drops)
        queue = f"kamen-bench-{uuid.uuid4().hex[:8]}"
        env = dict(os.environ, DATABASE_URL=shop_url, REDIS_URL=REDIS_URL, SECRET_KEY=SECRET_KEY,
                   KAMEN_JOB_QUEUE=queue, TZ="Asia/Shanghai", KAMEN_INSTANCE_PATH=str(tmp / "bench-instance"))
        t = time.perf_counter()
        app_id, secret = fill_main_station(main_url, args.sync)
        main_station = start_main_station(main_url, tmp)
        servers.append(main_station)
        ids = prepare_shop(env, args.catalogue, main_station.url, app_id, secret)
        price_file = write_csv(tmp / "price-list.csv", price_list(args.rows)[0])
        print(f"setup {time.perf_counter() - t:.0f} s: shop {args.catalogue:,} products, 主站 {args.sync:,}, "
              f"price list {args.rows:,} rows (CSV, GBK)")

        webs = [start_gunicorn("kamen.wsgi:app", tmp, dict(env, KAMEN_INSTANCE_PATH=str(tmp / f"web-{n}")),
                               tmp / f"web-{n}.log") for n in (1, 2)]
        servers.extend(webs)
        for web in webs:
            wait_ready(web, "/")
        workers = [start_process(tmp, f"worker-{n}", env, ["rq", "worker", "-w", "jobs.worker.AppWorker", "--url",
                                                            REDIS_URL, queue]) for n in (1, 2)]
        cron = start_process(tmp, "cron", env, ["rq", "cron", "jobs.cron", "--url", REDIS_URL])
        procs.extend([*workers, cron])
        time.sleep(5)

        print("\n1. the per-minute schedule at idle")
        schedule_cost(tmp, env, workers, cron, queue, args.ticks)

        print("\n2. shop p95 (ms), two clients over both web instances")
        pages = ["/", f"/c/{ids['category']}", f"/p/{ids['product']}"]
        before = sample_shop(webs, pages, seconds=args.idle_seconds)
        print(f"   before     {latency_text(before)}")
        watched = {"web-1": webs[0].proc.pid, "web-2": webs[1].proc.pid, "worker-1": workers[0].pid,
                   "worker-2": workers[1].pid, "cron": cron.pid}
        idle_mem = memory(watched)
        sampler = MemorySampler(watched)
        sampler.start()
        work = Work(env, ids, price_file, args.sync)
        stop = threading.Event()
        during = []
        shop_thread = threading.Thread(target=lambda: during.extend(sample_shop(webs, pages, stop=stop)))
        shop_thread.start()
        t = time.perf_counter()
        try:
            work.run()
        finally:
            stop.set()
            shop_thread.join()
            sampler.stop()
        print(f"   during     {latency_text(during)}   (import {work.import_s:.0f} s, sync {work.sync_s:.0f} s, "
              f"both done in {time.perf_counter() - t:.0f} s)")
        after = sample_shop(webs, pages, seconds=args.idle_seconds)
        print(f"   after      {latency_text(after)}   (the catalogue is {args.rows // 1000}k bigger)")

        print("\n3. memory (MiB): RSS / PSS at idle, peak during the work")
        report_memory(idle_mem, sampler)

        print("\n4. work lost or doubled")
        return 0 if work.check() and sampler.budget_ok else 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in servers:
            server.stop()
        for drop in drops:
            drop()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=int, default=300_000, help="products in the shop before the import")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the imported price list")
    parser.add_argument("--sync", type=int, default=20_000, help="products the 主站 offers to the full sync")
    parser.add_argument("--ticks", type=int, default=10, help="per-minute ticks timed for the schedule's cost")
    parser.add_argument("--idle-seconds", type=int, default=8, help="seconds of shop sampling before/after")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


def prepare_shop(env, catalogue, main_url, app_id, secret):
    """Migrate, seed the demo, add the import supplier with ``catalogue`` products, and the sync supplier."""
    subprocess.run([str(BIN / "flask"), "--app", "kamen", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, text=True)
    with bench_app(env) as session:
        from kamen.models import Category, DeliveryType, Product, StockMode, Supplier, SupplierKind
        from kamen.secretbox import encrypt
        from kamen.services.demo import seed_demo

        seed_demo(session)
        # The catalogue belongs to the supplier whose price list is imported: staging
        # compares the file against that supplier's goods, the costly case.
        importer = Supplier(code="BENCH-CSV", name="导入货源", markup_percent=Decimal("3"))
        upstream = Supplier(code="MAIN", name="主站", kind=SupplierKind.KAMEN, base_url=main_url, app_id=app_id,
                            secret_encrypted=encrypt(secret), markup_percent=Decimal("3"), auto_list=True)
        session.add_all([importer, upstream])
        session.commit()
        leaves = session.scalars(sa.select(Category.id).where(Category.parent_id.is_not(None))).all()
        for start in range(0, catalogue, 10_000):
            session.execute(sa.insert(Product.__table__), [{
                "supplier_id": importer.id, "code": f"C{n:07d}", "name": f"存量商品 {n}", "category_id": leaves[n % len(leaves)],
                "face_value": Decimal(10 + n % 90), "cost_price": Decimal("9.50"), "sale_price": Decimal("9.90"),
                "stock_mode": StockMode.SYNCED, "stock": 100, "delivery_type": DeliveryType.CARD, "buyer_fields": [],
                "is_listed": True,
            } for n in range(start, min(catalogue, start + 10_000))])
            session.commit()
        session.execute(sa.text("ANALYZE"))
        session.commit()
        category = leaves[0]
        product = session.scalar(sa.select(Product.id).where(Product.category_id == category,
                                                             Product.is_listed.is_(True)).limit(1))
        return {"category": category, "product": product, "importer": importer.id, "upstream": upstream.id,
                "catalogue": catalogue}


def start_process(tmp, name, env, argv):
    instance = tmp / f"{name}-instance"
    instance.mkdir()
    log = open(tmp / f"{name}.log", "w")
    return subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(env, KAMEN_INSTANCE_PATH=str(instance)))


# -- 1. the schedule -------------------------------------------------------------------------

def cpu_seconds(pid):
    """CPU of a process and its reaped children (a worker's horses), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK


def run_ticks(env, queue, funcs, ticks):
    """Enqueue ``funcs`` ``ticks`` times, one round at a time, waiting for each to finish."""
    from redis import Redis
    from rq import Queue

    q = Queue(queue, connection=Redis.from_url(REDIS_URL))
    for _ in range(ticks):
        jobs = [q.enqueue(func) for func in funcs]
        deadline = time.monotonic() + 120
        while not all(job.get_status(refresh=True) in ("finished", "failed") for job in jobs):
            if time.monotonic() > deadline:
                raise RuntimeError("ticks did not finish")
            time.sleep(0.05)
        failed = [job.id for job in jobs if job.get_status() == "failed"]
        if failed:
            raise RuntimeError(f"tick jobs failed: {failed}")


def schedule_cost(tmp, env, workers, cron, queue, ticks):
    tree = [w.pid for w in workers]
    start = sum(cpu_seconds(p) for p in tree)
    run_ticks(env, queue, ["jobs.tick.every_minute"], ticks)
    kept = (sum(cpu_seconds(p) for p in tree) - start) / ticks

    old_queue = f"{queue}-plain"
    plain = start_process(tmp, "plain-worker", dict(env, KAMEN_JOB_QUEUE=old_queue),
                          ["rq", "worker", "--url", REDIS_URL, old_queue])
    try:
        time.sleep(3)
        start = cpu_seconds(plain.pid)
        run_ticks(env, old_queue, ["jobs.sync.dispatch_due_syncs", "jobs.imports.dispatch_scheduled_imports"], ticks)
        old = (cpu_seconds(plain.pid) - start) / ticks
    finally:
        plain.terminate()
        plain.wait(30)
    cron_rss = memory({"cron": cron.pid})["cron"][0]
    print(f"   CPU per minute: app-keeping worker, one tick {kept * 1000:6.0f} ms = {kept / 60 * 100:.2f}% of a core"
          f"   (target < {IDLE_CORE_TARGET:.0f}%)")
    print(f"   baseline (plain rq worker, 2 dispatch jobs each building the app) {old * 1000:6.0f} ms = "
          f"{old / 60 * 100:.2f}% of a core   -> {old / kept:.1f}x less CPU")
    print(f"   rq cron RSS {cron_rss:.0f} MiB")


# -- 2. shop latency -------------------------------------------------------------------------

def sample_shop(webs, pages, seconds=None, stop=None, clients=2):
    """Latencies (s) of back-to-back requests by ``clients`` threads over every page of every web."""
    end = time.monotonic() + seconds if seconds else None
    latencies, errors = [], []

    def client(offset):
        n = offset
        while (stop is None or not stop.is_set()) and (end is None or time.monotonic() < end):
            web = webs[n % len(webs)]
            page = pages[(n // len(webs)) % len(pages)]
            n += 1
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(web.url + page, timeout=30) as resp:
                    resp.read()
                latencies.append(time.perf_counter() - start)
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"shop errors: {errors[:3]}")
    return latencies


def latency_text(latencies):
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1] * 1000
    return f"p50 {statistics.median(ordered) * 1000:6.1f}  p95 {p95:6.1f}  ({len(ordered)} requests)"


# -- 3. memory -------------------------------------------------------------------------------

def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _rss_pss(pid):
    """(RSS, PSS) in MiB; PSS shares pages between a worker and its forked horse fairly."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            values = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split(":")[0] in ("Rss", "Pss")}
        return values["Rss"] / 1024, values["Pss"] / 1024
    except (OSError, KeyError):
        return 0.0, 0.0


def memory(watched):
    """{name: (rss, pss)} for each watched process and its children (gunicorn workers, work-horses)."""
    out = {}
    for name, pid in watched.items():
        out[name] = _rss_pss(pid)
        for n, child in enumerate(_children(pid), 1):
            label = "horse" if name.startswith("worker") else "w"
            out[f"{name}/{label}{n if label == 'w' else ''}"] = _rss_pss(child)
    return out


class MemorySampler(threading.Thread):
    """Samples every 0.2 s: each process's peak, the peak of web-1 + the busiest worker + cron
    (issue 9's budget), and of web-1 + both workers + cron (the whole small-VPS system)."""

    def __init__(self, watched):
        super().__init__(daemon=True)
        self.watched, self.peaks, self.budget = watched, {}, (0.0, 0.0, "")
        self.system = (0.0, 0.0)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            sample = memory(self.watched)
            for name, (rss, pss) in sample.items():
                old = self.peaks.get(name, (0.0, 0.0))
                self.peaks[name] = (max(old[0], rss), max(old[1], pss))
            for worker in ("worker-1", "worker-2"):
                parts = [v for k, v in sample.items() if k.startswith(("web-1", worker, "cron"))]
                total = (sum(p[0] for p in parts), sum(p[1] for p in parts), worker)
                if total[1] > self.budget[1]:
                    self.budget = total
            parts = [v for k, v in sample.items() if k.startswith(("web-1", "worker-1", "worker-2", "cron"))]
            system = (sum(p[0] for p in parts), sum(p[1] for p in parts))
            if system[1] > self.system[1]:
                self.system = system
            time.sleep(0.2)

    def stop(self):
        self._halt.set()
        self.join()

    @property
    def budget_ok(self):
        return self.budget[1] <= BUDGET_MIB


def report_memory(idle, sampler):
    names = sorted(set(idle) | set(sampler.peaks))
    for name in names:
        i = idle.get(name, (0, 0))
        p = sampler.peaks.get(name, (0, 0))
        print(f"   {name:18s} idle {i[0]:6.0f} / {i[1]:6.0f}   peak {p[0]:6.0f} / {p[1]:6.0f}")
    rss, pss, worker = sampler.budget
    verdict = "within" if sampler.budget_ok else "OVER"
    print(f"   web-1 (master + 2 workers) + {worker} (+ horse) + cron at the worst moment: "
          f"PSS {pss:.0f} MiB (RSS sum {rss:.0f}), budget {BUDGET_MIB} MiB: {verdict}")
    rss, pss = sampler.system
    verdict = "within" if pss <= BUDGET_MIB else "OVER"
    print(f"   web-1 (master + 2 workers) + worker-1 + worker-2 (+ horses) + cron at the worst moment: "
          f"PSS {pss:.0f} MiB (RSS sum {rss:.0f}), budget {BUDGET_MIB} MiB: {verdict}")


# -- 4. the work -----------------------------------------------------------------------------

class Work:
    """The import (analyse → map → stage → commit, each a job on the workers) and a full sync, at once."""

    def __init__(self, env, ids, price_file, sync_total):
        self.env, self.ids, self.price_file, self.sync_total = env, ids, price_file, sync_total
        self.import_s = self.sync_s = 0.0

    def run(self):
        errors = []
        threads = [threading.Thread(target=self._guard, args=(f, errors)) for f in (self._import, self._sync)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(errors)

    @staticmethod
    def _guard(func, errors):
        try:
            func()
        except Exception as exc:  # noqa: BLE001 - reported by run()
            errors.append(f"{func.__name__}: {exc}")

    def _wait(self, session, model, row_id, done, timeout=900):
        deadline = time.monotonic() + timeout
        while True:
            session.expire_all()
            row = session.get(model, row_id)
            if row.status in done:
                return row
            if time.monotonic() > deadline:
                raise RuntimeError(f"{model.__name__} {row_id} stuck in {row.status}")
            time.sleep(0.3)

    def _import(self):
        from kamen import queue as jobs
        from kamen.models import ImportBatch, Supplier
        from kamen.services.importing import committing, staging

        start = time.perf_counter()
        with bench_app(self.env) as session:
            supplier = session.get(Supplier, self.ids["importer"])
            with open(self.price_file, "rb") as f:
                batch = staging.create_batch(session, f, self.price_file.name, supplier=supplier)
            jobs.enqueue("jobs.imports.analyze_import", batch.id)
            batch = self._wait(session, ImportBatch, batch.id, ("mapping", "failed"))
            assert batch.status == "mapping", batch.message
            choices = {m["column"]: m["key"] for m in batch.match_info}
            staging.apply_mapping(session, batch, staging.StageOptions(
                choices=choices, markup=staging.batch_markup(batch), max_price_change=batch.max_price_change))
            jobs.enqueue("jobs.imports.stage_import", batch.id)
            batch = self._wait(session, ImportBatch, batch.id, ("ready", "failed"))
            assert batch.status == "ready", batch.message
            committing.request_commit(session, batch, confirm_warnings=True)
            jobs.enqueue("jobs.imports.commit_import", batch.id)
            batch = self._wait(session, ImportBatch, batch.id, ("committed", "failed", "cancelled"))
            assert batch.status == "committed", batch.message
            self.batch = {"id": batch.id, "created": batch.created, "updated": batch.updated, "failed": batch.failed}
        self.import_s = time.perf_counter() - start

    def _sync(self):
        from kamen.models import Supplier, SyncRun
        from kamen.services.sync_dispatch import start_sync

        start = time.perf_counter()
        with bench_app(self.env) as session:
            run, _ = start_sync(session, session.get(Supplier, self.ids["upstream"]), "full")
            run = self._wait(session, SyncRun, run.id, ("succeeded", "failed"))
            assert run.status == "succeeded", run.message
            self.run_id = run.id
        self.sync_s = time.perf_counter() - start

    def check(self):
        from redis import Redis
        from rq import Queue
        from rq.registry import FailedJobRegistry

        from kamen.models import Product, SyncRun

        with bench_app(self.env) as session:
            def products(supplier_id):
                return session.scalar(sa.select(sa.func.count()).select_from(Product).where(
                    Product.supplier_id == supplier_id))

            imported = products(self.ids["importer"]) - self.ids["catalogue"]
            synced = products(self.ids["upstream"])
            runs = session.scalar(sa.select(sa.func.count()).select_from(SyncRun))
            seen = session.get(SyncRun, self.run_id).seen
        failed = FailedJobRegistry(queue=Queue(self.env["KAMEN_JOB_QUEUE"], connection=Redis.from_url(REDIS_URL)))
        expected_sync = self.sync_total
        lost = max(0, self.batch["created"] - imported) + max(0, expected_sync - synced)
        doubled = max(0, imported - self.batch["created"]) + max(0, synced - expected_sync) + max(0, runs - 1)
        print(f"   import: {self.batch['created']:,} rows to create → {imported:,} products "
              f"({self.batch['failed']:,} bad rows refused with a reason)")
        print(f"   sync: 主站 {expected_sync:,} products, seen {seen:,} → {synced:,} products, {runs} run(s)")
        print(f"   failed jobs {failed.count}; work lost {lost}, doubled {doubled}")
        return lost == 0 and doubled == 0 and failed.count == 0



if __name__ == "__main__":
    sys.exit(main())
