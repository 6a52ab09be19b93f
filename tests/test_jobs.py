"""The job queue: in-process (sync and thread pool) and RQ with a real worker."""
import io
import os
import re
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.maintenance import purge_login_attempts
from kamen import queue
from kamen.extensions import db
from kamen.models import LoginAttempt
from tests.helpers import burst_worker, rq_command

ROOT = Path(__file__).resolve().parent.parent


def _old_attempts(n=3):
    db.session.add_all(
        LoginAttempt(username=f"u{i}", ip="1.2.3.4", succeeded=False, at=datetime(2020, 1, 1)) for i in range(n)
    )
    db.session.commit()


def _attempts():
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))


@pytest.mark.backends("sqlite")
def test_sync_mode_runs_the_job_at_once(app):
    _old_attempts()
    handle = queue.enqueue(purge_login_attempts, 30)
    assert handle.backend == "sync"
    assert _attempts() == 0


@pytest.mark.backends("sqlite")
def test_thread_mode_runs_in_the_background(app):
    app.config["JOBS_SYNC"] = False
    _old_attempts()
    handle = queue.enqueue(purge_login_attempts, 30)
    assert handle.backend == "thread"
    deadline = time.monotonic() + 10
    while _attempts() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _attempts() == 0


def test_rq_worker_subprocess_runs_the_job_against_the_database(app, redis_url, db_url):
    """A real `rq worker --burst` process picks the job from the real Redis."""
    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    _old_attempts()
    handle = queue.enqueue(purge_login_attempts, 30)
    assert handle.backend == "rq"
    assert _attempts() == 3  # nothing ran in-process

    result = burst_worker(app, db_url, redis_url, queue_name)
    assert result.returncode == 0, result.stderr
    assert _attempts() == 0
    job = queue.rq_queue().fetch_job(handle.id)
    assert job.is_finished and job.return_value() == 3


def test_import_upload_is_read_by_a_real_worker_on_another_machine(app, client, auth, redis_url, db_url, tmp_path):
    """Production path: the web process saves the upload, an rq worker with its own
    instance folder (another machine) reads it from the database."""
    from kamen.models import ImportBatch
    from kamen.services.suppliers import default_supplier
    from tests.import_files import messy_csv

    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    auth.login()
    supplier = default_supplier(db.session)
    client.post("/admin/imports/new", data={"supplier_id": str(supplier.id), "file": (io.BytesIO(messy_csv()), "p.csv")},
                content_type="multipart/form-data")
    batch = db.session.scalar(sa.select(ImportBatch))
    assert batch.status == "analyzing"
    assert "读取表头中" in client.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert not any(Path(app.instance_path).rglob("*.upload"))  # nothing on the web machine's disk
    worker_instance = tmp_path / "worker-machine"
    result = burst_worker(app, db_url, redis_url, queue_name, KAMEN_INSTANCE_PATH=str(worker_instance))
    assert result.returncode == 0, result.stderr
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.message) == ("mapping", "")
    assert batch.headers[:3] == ["商品ID", "名称", "进价"]
    assert worker_instance.is_dir() and not any(worker_instance.rglob("*.upload"))


def test_rq_cron_loads_the_schedule(redis_url):
    """`rq cron jobs.cron` (RQ's own scheduler) starts and registers our jobs."""
    proc = subprocess.Popen(
        [rq_command(), "cron", "jobs.cron", "--url", redis_url, "--logging-level", "debug"],
        cwd=ROOT, env={**os.environ, "TZ": "Asia/Shanghai"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            # Stop it once it sleeps: rq cron (3.0) raises from its SIGTERM handler, and
            # a signal landing inside a log write is swallowed by logging.
            if "Sleeping for" in line:
                time.sleep(0.5)
                break
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    output = "".join(lines)
    registered = len(re.findall(r"^cron\.register\(", (ROOT / "jobs" / "cron.py").read_text(), re.M))
    assert registered >= 2 and f"Successfully registered {registered} cron jobs" in output, output


def test_card_code_file_is_read_by_a_real_worker_on_another_machine(app, client, auth, redis_url, db_url, tmp_path):
    """The 卡密 file goes to the database (encrypted), a real rq worker elsewhere reads it into stock."""
    from kamen.models import CardCodeUpload, Product, StockMode
    from tests.helpers import make_product

    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    auth.login()
    product = make_product(name="京东E卡 50元", stock_mode=StockMode.CARDS, stock=0)
    data = "卡号,卡密\n" + "".join(f"NO{i},SECRET-{i:05d}\n" for i in range(500))
    page = client.post(f"/admin/products/{product.id}/card-codes", data={"file": (io.BytesIO(data.encode()), "卡密.csv")},
                       content_type="multipart/form-data", htmx=True).get_data(as_text=True)
    job = db.session.scalar(sa.select(CardCodeUpload))
    assert job.status == "queued" and "正在读取卡密文件“卡密.csv”</strong>（排队中）" in page
    assert db.session.get(Product, product.id).stock == 0  # nothing read in the request

    result = burst_worker(app, db_url, redis_url, queue_name, KAMEN_INSTANCE_PATH=str(tmp_path / "worker-machine"))
    assert result.returncode == 0, result.stderr
    assert "SECRET-" not in result.stderr  # codes are never logged
    db.session.expire_all()
    assert db.session.get(CardCodeUpload, job.id).status == "done"
    assert db.session.get(Product, product.id).stock == 500
    page = client.get(f"/admin/products/{product.id}/card-codes?upload={job.id}").get_data(as_text=True)
    assert "新增入库 <strong>500</strong> 条" in page
