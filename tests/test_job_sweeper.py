"""Redis away at click time: no 500, the row waits, and the sweeper sends it when Redis is back."""
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ImportBatch, SyncRun
from kamen.services import background, sweeper, syncing
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow
from tests.sync_fixtures import make_supplier

CLOSED_PORT = "redis://127.0.0.1:9/0"  # nothing listens on the discard port


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


@pytest.fixture
def redis_down(app):
    app.config["REDIS_URL"] = CLOSED_PORT
    app.extensions.pop("kamen_redis", None)
    yield
    redis_back(app)


def redis_back(app):
    """Jobs run again (in-process here; tests/test_job_processes.py uses a real worker)."""
    app.config["REDIS_URL"] = None
    app.extensions.pop("kamen_redis", None)


def test_sync_click_with_redis_away_waits_then_runs(app, admin, simulator, redis_down):
    supplier = make_supplier(simulator)

    response = admin.post(f"/admin/suppliers/{supplier.id}/sync", follow_redirects=True)

    assert response.status_code == 200
    assert "后台任务暂停，恢复后自动继续" in response.get_data(as_text=True)
    run = db.session.scalar(sa.select(SyncRun))
    assert run.status == "queued" and run.job_enqueued_at is None
    # A second click shows the waiting run instead of starting another.
    again = admin.post(f"/admin/suppliers/{supplier.id}/sync")
    assert again.headers["Location"].endswith(f"/runs/{run.id}")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 1

    assert sweeper.sweep(db.session).enqueued == []  # still away: nothing to do but wait
    redis_back(app)
    swept = sweeper.sweep(db.session)

    assert swept.enqueued == [("sync_runs", run.id)]
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert (run.status, run.created) == ("succeeded", 5)


def test_upload_with_redis_away_waits_then_is_read(app, admin, redis_down):
    supplier = default_supplier(db.session)
    response = admin.post("/admin/imports/new", data={
        "supplier_id": str(supplier.id), "file": (io.BytesIO("商品编码,商品名称,供货价\nA1,一,1\n".encode()), "p.csv")},
        content_type="multipart/form-data", follow_redirects=True)

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "后台任务暂停，恢复后自动继续" in page and "读取表头中" in page
    batch = db.session.scalar(sa.select(ImportBatch))
    assert batch.status == "analyzing" and batch.job_enqueued_at is None

    redis_back(app)
    sweeper.sweep(db.session)
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).status == "mapping"


def test_a_run_whose_job_never_started_does_not_block_syncs(app, simulator):
    supplier = make_supplier(simulator)
    stuck = syncing.request_sync(db.session, supplier, "full")
    stuck.job_id, stuck.job_enqueued_at = "gone", utcnow()
    db.session.commit()
    with pytest.raises(syncing.SyncBusy):  # asked for a moment ago: it may still start
        syncing.request_sync(db.session, supplier, "full")

    stuck.job_requested_at = stuck.job_enqueued_at = utcnow() - timedelta(minutes=10)
    db.session.commit()
    fresh = syncing.request_sync(db.session, supplier, "incremental")

    db.session.expire_all()
    assert db.session.get(SyncRun, stuck.id).status == "failed"
    assert db.session.get(SyncRun, stuck.id).message == syncing.REPLACED_MESSAGE
    assert db.session.get(SyncRun, fresh.id).status == "queued"


def test_a_dead_sync_is_resumed_by_the_sweeper(app, simulator):
    supplier = make_supplier(simulator)
    run = syncing.request_sync(db.session, supplier, "full")
    dead = background.Lease(SyncRun, run.id)
    assert dead.acquire(db.session, ("queued",), status="running")
    db.session.execute(sa.update(SyncRun).values(job_id="dead", job_enqueued_at=utcnow()))
    db.session.commit()

    swept = sweeper.sweep(db.session, now=utcnow() + timedelta(minutes=10))

    assert swept.enqueued == [("sync_runs", run.id)]
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert (run.status, run.created, run.job_resumes) == ("succeeded", 5, 1)


def test_a_sync_that_keeps_dying_fails_with_a_reason_and_a_retry_button(app, admin, simulator):
    supplier = make_supplier(simulator)
    run = syncing.request_sync(db.session, supplier, "full")
    assert background.Lease(SyncRun, run.id).acquire(db.session, ("queued",), status="running")
    db.session.execute(sa.update(SyncRun).values(job_id="dead", job_enqueued_at=utcnow(), job_resumes=3))
    db.session.commit()

    assert sweeper.sweep(db.session, now=utcnow() + timedelta(minutes=10)).failed == [("sync_runs", run.id)]

    page = admin.get(f"/admin/suppliers/{supplier.id}/runs/{run.id}").get_data(as_text=True)
    assert "后台任务中断" in page and "重试" in page
    response = admin.post(f"/admin/suppliers/{supplier.id}/sync", data={"mode": "full"})
    db.session.expire_all()
    latest = db.session.scalar(sa.select(SyncRun).order_by(SyncRun.id.desc()))
    assert response.headers["Location"].endswith(f"/runs/{latest.id}") and latest.id != run.id
    assert latest.status == "succeeded"


def test_the_database_allows_one_active_run_per_supplier(app, simulator):
    from sqlalchemy.exc import IntegrityError

    supplier = make_supplier(simulator)
    syncing.request_sync(db.session, supplier, "full")
    db.session.add(SyncRun(supplier_id=supplier.id, mode="full", status="queued"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.backends("sqlite")
def test_embedded_mode_resumes_unfinished_work_when_the_back_office_is_opened(app, admin):
    """After a restart of an embedded shop (jobs on the web process's threads) nothing runs its
    unfinished batch: the first back-office page load sweeps and the thread pool resumes it."""
    import time

    from kamen.services.importing import staging

    batch = staging.create_batch(db.session, io.BytesIO("商品编码,商品名称,供货价\nA1,一,1\n".encode()), "p.csv",
                                 supplier=default_supplier(db.session))
    batch.step, batch.job_id = "analyze", "before-restart"
    batch.job_requested_at = batch.job_enqueued_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    app.config["JOBS_SYNC"] = False

    assert admin.get("/admin/").status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        db.session.expire_all()
        if db.session.get(ImportBatch, batch.id).status != "analyzing":
            break
        time.sleep(0.05)
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.job_resumes) == ("mapping", 1)


def test_an_upload_script_with_redis_away_gets_202_and_the_import_finishes_later(app, client, redis_down):
    from kamen.models import Product
    from kamen.services.api_tokens import create_token

    _token, secret = create_token(db.session, "脚本")
    headers = {"Authorization": f"Bearer {secret}"}
    text = "商品编码,商品名称,供货价,库存\nA1,商品一,10.00,5\n"
    response = client.post("/api/import/v1/products", data={"file": (io.BytesIO(text.encode()), "p.csv"), "commit": "1"},
                           headers=headers, csrf=False, content_type="multipart/form-data")
    assert response.status_code == 202 and response.get_json()["message"] == "后台任务暂停，恢复后自动继续"

    redis_back(app)
    sweeper.sweep(db.session)
    status = client.get(response.get_json()["status_url"], headers=headers).get_json()
    assert status["status"] == "committed" and status["totals"]["created"] == 1
    assert db.session.scalar(sa.select(Product.code)) == "A1"
