"""Durability with real processes on PostgreSQL and Redis: kill -9 of a worker and its
work-horse mid-commit and mid-sync, Redis away at click time, and concurrent clicks
served by two gunicorn workers. Every case ends with the work done exactly once."""
import io
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ImportBatch, ImportRow, Product, SyncRun
from kamen.services import sweeper, syncing
from kamen.services.importing import batches, staging
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow
from tests.helpers import burst_worker, worker_env
from tests.processes import Browser, kill_worker, serve, start_worker, wait_for
from tests.sync_fixtures import make_supplier, serving_simulator

pytestmark = pytest.mark.backends("postgresql")


@dataclass
class Deployment:
    """This test's app and its other processes, on one PostgreSQL database and Redis queue."""

    app: object
    db_url: str
    redis_url: str
    queue: str

    @property
    def env(self):
        return worker_env(self.app, self.db_url, self.redis_url, self.queue)

    def worker(self, log):
        return start_worker(self.env, self.queue, log)

    def burst(self):
        """Run what is queued on a real worker, then stop."""
        result = burst_worker(self.app, self.db_url, self.redis_url, self.queue, timeout=600)
        assert result.returncode == 0, result.stderr
        return result


@pytest.fixture
def deployment(app, db_url, redis_url):
    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name, JOBS_SYNC=False)
    yield Deployment(app, db_url, redis_url, queue_name)
    from kamen import queue

    queue.rq_queue().delete(delete_jobs=True)


def _staged(rows, prefix="K"):
    text = "商品编码,商品名称,供货价,库存\n" + "".join(f"{prefix}{i:06d},商品{i},{10 + i % 50}.00,5\n" for i in range(rows))
    batch = staging.create_batch(db.session, io.BytesIO(text.encode()), "big.csv", supplier=default_supplier(db.session))
    batch = staging.analyze(db.session, batch.id)
    staging.apply_mapping(db.session, batch, staging.StageOptions(choices={m["column"]: m["key"] for m in batch.match_info}))
    return staging.stage(db.session, batch.id)


def _fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def _count(model, *where):
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _later():
    """The sweeper's clock once the dead job's lease has gone stale."""
    return utcnow() + timedelta(minutes=10)


def test_kill_9_mid_commit_then_the_sweeper_resumes_it_once(deployment, tmp_path):
    rows = 100_000
    batch = _staged(rows)
    assert (batch.status, batch.created) == ("ready", rows)
    batches.commit(db.session, batch)
    worker = deployment.worker(tmp_path / "worker.log")
    try:
        wait_for(lambda: _fresh(ImportBatch, batch.id).progress_done > 0)
    finally:
        horses = kill_worker(worker)
    assert horses, "the job ran in a work-horse"
    batch = _fresh(ImportBatch, batch.id)
    assert batch.status == "committing" and 0 < batch.progress_done < rows, (tmp_path / "worker.log").read_text()
    assert sweeper.sweep(db.session).enqueued == []  # the heartbeat is still fresh: not yet taken for dead

    assert sweeper.sweep(db.session, now=_later()).enqueued == [("import_batches", batch.id)]
    deployment.burst()

    batch = _fresh(ImportBatch, batch.id)
    assert (batch.status, batch.created, batch.job_resumes) == ("committed", rows, 1), batch.message
    assert _count(Product) == rows
    assert _count(ImportRow, ImportRow.batch_id == batch.id, ImportRow.committed.is_(True)) == rows


def test_a_dropped_database_connection_mid_commit_fails_with_a_reason_and_retry_finishes(deployment, tmp_path):
    rows = 100_000
    batch = _staged(rows)
    batches.commit(db.session, batch)
    worker = deployment.worker(tmp_path / "worker.log")
    try:
        wait_for(lambda: _fresh(ImportBatch, batch.id).progress_done > 0)
        db.session.rollback()  # our own connection idle, so only the working job's is busy
        dropped = db.session.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'")).all()
        db.session.commit()
        assert dropped
        wait_for(lambda: _fresh(ImportBatch, batch.id).status != "committing")
        batch = _fresh(ImportBatch, batch.id)
        assert (batch.status, batch.step) == ("failed", "commit")
        assert "提交时发生内部错误" in batch.message and "重试" in batch.message
        assert 0 < _count(Product) < rows

        batches.retry(db.session, batch)  # the same worker, still alive, takes the retry
        wait_for(lambda: _fresh(ImportBatch, batch.id).status == "committed")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    batch = _fresh(ImportBatch, batch.id)
    assert batch.created == rows and _count(Product) == rows


def test_kill_9_mid_staging_then_the_sweeper_stages_it_again(deployment, tmp_path):
    rows = 100_000
    text = "商品编码,商品名称,供货价,库存\n" + "".join(f"S{i:06d},商品{i},{10 + i % 50}.00,5\n" for i in range(rows))
    batch = staging.create_batch(db.session, io.BytesIO(text.encode()), "big.csv", supplier=default_supplier(db.session))
    batch = staging.analyze(db.session, batch.id)
    choices = {m["column"]: m["key"] for m in batch.match_info}
    batches.confirm_mapping(db.session, batch, staging.StageOptions(choices=choices))  # 校验中, job sent
    worker = deployment.worker(tmp_path / "worker.log")
    try:
        wait_for(lambda: _fresh(ImportBatch, batch.id).progress_done > 0)
    finally:
        kill_worker(worker)
    batch = _fresh(ImportBatch, batch.id)
    assert batch.status == "staging" and 0 < batch.progress_done < rows

    assert sweeper.sweep(db.session, now=_later()).enqueued == [("import_batches", batch.id)]
    deployment.burst()

    batch = _fresh(ImportBatch, batch.id)
    assert (batch.status, batch.created, batch.rows_in) == ("ready", rows, rows), batch.message
    assert _count(ImportRow, ImportRow.batch_id == batch.id) == rows  # staged once, not twice


@pytest.fixture
def slow_supplier():
    with serving_simulator(1000) as sim:
        sim.latency = 0.4  # every page takes a while: the worker dies between pages
        yield sim


def test_kill_9_mid_sync_then_the_sweeper_resumes_it_once(deployment, slow_supplier, tmp_path):
    supplier = make_supplier(slow_supplier)
    from kamen.services.sync_dispatch import start_sync

    run, _ = start_sync(db.session, supplier, "full")
    worker = deployment.worker(tmp_path / "worker.log")
    try:
        wait_for(lambda: _fresh(SyncRun, run.id).pages >= 2)
    finally:
        kill_worker(worker)
    run = _fresh(SyncRun, run.id)
    assert run.status == "running" and 0 < _count(Product) < 1000
    # Stuck as it is, the run does not block the next click silently: it is busy until found dead.
    with pytest.raises(syncing.SyncBusy):
        syncing.request_sync(db.session, supplier, "full")

    slow_supplier.latency = 0
    assert sweeper.sweep(db.session, now=_later()).enqueued == [("sync_runs", run.id)]
    deployment.burst()

    run = _fresh(SyncRun, run.id)
    assert (run.status, run.created, run.job_resumes) == ("succeeded", 1000, 1), run.message
    assert _count(Product) == 1000


def test_redis_away_at_click_time_no_500_and_the_cron_sweep_resumes(app, auth, deployment, simulator, tmp_path):
    auth.create()
    supplier = make_supplier(simulator)
    down = {**deployment.env, "REDIS_URL": "redis://127.0.0.1:9/0"}  # a closed port
    server = serve(down, tmp_path / "web.log")
    try:
        browser = Browser(server.url)
        status, location = browser.post(f"/admin/suppliers/{supplier.id}/sync",
                                        token=browser.token(f"/admin/suppliers/{supplier.id}"))
        assert status == 302 and "/runs/" in location
        page = browser.get(location.replace(server.url, ""))[1]
        assert "后台任务暂停，恢复后自动继续" in page
    finally:
        server.stop()
    run = db.session.scalar(sa.select(SyncRun))
    assert run.status == "queued" and run.job_enqueued_at is None

    # Redis is back: the cron's sweep (a real job on a real worker) sends the run, the same worker runs it.
    from kamen import queue

    queue.enqueue("jobs.maintenance.sweep_jobs")
    deployment.burst()
    run = _fresh(SyncRun, run.id)
    assert (run.status, run.created) == ("succeeded", 5)


def _together(*calls):
    """Run the calls at the same instant on threads; their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_clicks_on_two_gunicorn_workers_start_one_run(app, auth, deployment, simulator, tmp_path):
    auth.create()
    supplier = make_supplier(simulator)
    staged = [_staged(3, prefix=f"R{n}-") for n in range(8)]
    server = serve(deployment.env, tmp_path / "web.log")
    try:
        browser = Browser(server.url)
        token = browser.token(f"/admin/suppliers/{supplier.id}")
        for round_ in range(8):
            sync = f"/admin/suppliers/{supplier.id}/sync"
            answers = _together(lambda: browser.post(sync, token=token), lambda: browser.post(sync, token=token))
            assert [status for status, _ in answers] == [302, 302]
            assert _count(SyncRun) == round_ + 1, f"round {round_}: two runs"
            db.session.execute(sa.update(SyncRun).values(status="succeeded"))  # done, so the next round may start
            db.session.commit()

            commit = f"/admin/imports/{staged[round_].id}/commit"
            answers = _together(lambda: browser.post(commit, token=token), lambda: browser.post(commit, token=token))
            assert [status for status, _ in answers] == [302, 302]
    finally:
        server.stop()
    from kamen import queue

    rq = queue.rq_queue()
    commit_jobs = [j for j in rq.get_jobs() if j.func_name == "jobs.imports.commit_import"]
    assert len(commit_jobs) == 8  # one per batch, whoever clicked twice
    deployment.burst()
    assert _count(ImportBatch, ImportBatch.status == "committed") == 8
    assert _count(Product, Product.code.like("R%")) == 24
