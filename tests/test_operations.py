"""Operating kamen: health probes, flask doctor, the dashboard's view of workers
and the schedule, the job view, with real `rq worker` and `rq cron` processes."""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import stamp

from kamen import create_app, queue
from kamen.extensions import db
from kamen.models import SyncRun
from tests.helpers import worker_env
from tests.processes import kill_worker
from tests.sync_fixtures import make_supplier, simulator  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@contextmanager
def migrated_stamp(app):
    """The database marked as migrated to the code's head (the fixture builds it with create_all)."""
    stamp()
    try:
        yield
    finally:
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))


# -- probes ---------------------------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_healthz_answers_while_the_database_is_down(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:1/nothing"})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] != "ok"


def test_readyz_needs_the_schema_at_the_code_head(app, client):
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.get_json()["checks"] == {"database": "ok", "migrations": before.get_json()["checks"]["migrations"]}
    assert "code at" in before.get_json()["checks"]["migrations"]
    with migrated_stamp(app):
        after = client.get("/readyz")
        assert after.status_code == 200, after.get_json()
        assert after.get_json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


@pytest.mark.backends("sqlite")
@pytest.mark.backends("sqlite")
def test_migration_heads_are_alembics(tmp_path):
    """/readyz reads the heads from the revision files, without Alembic: the same answer as Alembic's."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from kamen.services.operations import migration_heads

    def alembic_heads(directory):
        config = Config()
        config.set_main_option("script_location", str(directory))
        return set(ScriptDirectory.from_config(config).get_heads())

    assert migration_heads(str(ROOT / "migrations")) == alembic_heads(ROOT / "migrations")
    (tmp_path / "versions").mkdir()
    shutil.copy(ROOT / "migrations" / "script.py.mako", tmp_path)
    files = {"a": ("a", None), "b": ("b", "'a'"), "c": ("c", '"a"'), "m": ("m", "('b', 'c')"), "x": ("x", "'m'"),
             "y": ("y", "'m'")}
    for name, (revision, down) in files.items():
        (tmp_path / "versions" / f"{name}.py").write_text(
            f'"""{name}"""\nrevision: str = "{revision}"\ndown_revision = {down}\nbranch_labels = None\n'
            "depends_on = None\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n")
    assert migration_heads(str(tmp_path)) == alembic_heads(tmp_path) == {"x", "y"}


def test_readyz_fails_when_redis_is_unreachable(app, client, redis_url):
    with migrated_stamp(app):
        app.config["REDIS_URL"] = redis_url
        assert client.get("/readyz").get_json()["checks"]["redis"] == "ok"
        app.extensions.pop("kamen_redis")
        app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["redis"] != "ok"
        assert ready.get_json()["checks"]["database"] == "ok"


# -- flask doctor ---------------------------------------------------------------------------


def test_doctor_says_what_to_fix(app, runner):
    result = runner.invoke(args=["doctor"])
    assert result.exit_code == 1
    assert "✗ 数据库结构" in result.output and "运行 flask db upgrade" in result.output
    with migrated_stamp(app):
        result = runner.invoke(args=["doctor"])
    assert result.exit_code == 0, result.output
    assert "✓ 数据库结构" in result.output
    assert "! 后台任务" in result.output  # embedded mode: a warning, not a failure


@pytest.mark.backends("sqlite")
def test_doctor_fails_without_worker_and_cron(app, runner, redis_url):
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=f"kamen-test-{uuid.uuid4().hex[:8]}")
    with migrated_stamp(app):
        result = runner.invoke(args=["doctor"])
    assert result.exit_code == 1
    assert "✗ worker" in result.output and "rq worker -w jobs.worker.AppWorker" in result.output
    assert "✗ cron" in result.output and "rq cron jobs.cron" in result.output


# -- embedded mode: no developer words ------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_embedded_mode_says_schedules_are_off_in_plain_words(client, auth):
    auth.login()
    page = client.get("/admin/").get_data(as_text=True)
    assert "定时任务未开启" in page and "同步商品库" in page and "立即提交" in page
    for word in ("REDIS_URL", "rq ", "README", "flask", "cron"):
        assert word not in page
    jobs = client.get("/admin/jobs/").get_data(as_text=True)
    assert "单机内置模式" in jobs and "REDIS_URL" not in jobs


DEVELOPER_WORDS = ("REDIS_URL", "rq ", "worker", "jobs.cron", "README", "--supplier", "正则", "flask ")
OPERATOR_PAGES = ("/admin/", "/admin/products", "/admin/imports", "/admin/imports/new", "/admin/suppliers",
                  "/admin/suppliers/new", "/admin/stations", "/admin/settings/alerts", "/admin/settings/api-tokens",
                  "/admin/categories", "/admin/orders", "/admin/coupons", "/admin/payment-channels")


@pytest.mark.backends("sqlite")
def test_operator_screens_say_what_the_admin_can_do_not_how_it_is_built(client, auth):
    auth.login()
    for url in OPERATOR_PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert [w for w in DEVELOPER_WORDS if w in page] == [], url


@pytest.mark.backends("sqlite")
def test_job_view_needs_login(client):
    response = client.get("/admin/jobs/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


# -- real processes -------------------------------------------------------------------------


class Processes:
    """`rq worker` and `rq cron` processes for one test queue, stopped at the end."""

    def __init__(self, app, db_url, redis_url, tmp_path):
        self.queue = f"kamen-test-{uuid.uuid4().hex[:8]}"
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.env = worker_env(app, db_url, redis_url, self.queue, TZ="Asia/Shanghai")
        self.procs = []
        app.config.update(REDIS_URL=redis_url, JOB_QUEUE=self.queue)

    def start(self, name, argv, instance):
        log = open(self.tmp_path / f"{name}.log", "w")
        env = {**self.env, "KAMEN_INSTANCE_PATH": str(self.tmp_path / instance)}
        proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=self.tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, instance="worker-instance"):
        # --path: the test jobs (tests.jobs_probe) import from the project, the cwd is "another machine".
        return self.start(f"worker-{instance}", ["rq", "worker", "-w", "jobs.worker.AppWorker", "--url", self.redis_url,
                                                 "--path", str(ROOT), self.queue], instance)

    def cron(self):
        return self.start("cron", ["rq", "cron", "jobs.cron", "--url", self.redis_url], "cron-instance")

    def log(self, name):
        return (self.tmp_path / f"{name}.log").read_text()

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(app, db_url, redis_url, tmp_path):
    procs = Processes(app, db_url, redis_url, tmp_path)
    yield procs
    procs.stop()


def stop_cleanly(proc):
    """SIGTERM, once more if the first was lost (rq cron 3.0 loses one that lands in a log write)."""
    for wait in (5, 20):
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError(f"{proc.args} did not stop on SIGTERM")


def wait_for(check, timeout=60, what=""):
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_dashboard_shows_worker_and_cron_alive_then_stopped(app, client, auth, processes, simulator):  # noqa: F811
    """A worker with its own instance folder runs the per-minute job: the cron heartbeat is recorded
    and a due sync is queued and run; the dashboard follows the processes' lives."""
    auth.login()
    supplier = make_supplier(simulator, sync_interval_minutes=30)
    worker = processes.worker("another-machine")
    cron = processes.cron()

    def dashboard():
        return client.get("/admin/").get_data(as_text=True)

    page = wait_for(lambda: (p := dashboard()).count("运行中") == 2 and p, what="worker and cron alive")
    assert "每分钟：到期的自动同步" in page and "每天 03:30" in page  # schedules on, with their next runs

    # The minute tick, as the cron enqueues it (not waiting for the next minute to come).
    queue.enqueue("jobs.tick.every_minute")
    run = wait_for(lambda: db.session.scalar(sa.select(SyncRun).where(SyncRun.status == "succeeded")),
                   what="the dispatched sync to finish on the worker")
    assert run.supplier_id == supplier.id and run.seen == 5
    assert "上次执行每分钟任务" in dashboard()
    assert not (processes.tmp_path / "another-machine" / "kamen.db").exists()  # the worker used the shared database

    for proc in (worker, cron):
        stop_cleanly(proc)
    page = dashboard()
    assert page.count("已停止") == 2 and "运行中" not in page
    assert "定时任务不会执行" in page


@pytest.mark.backends("sqlite")
def test_a_worker_is_stopped_once_it_misses_the_heartbeat_it_promised(redis_url):
    """RQ expires a worker's key its beat interval + 60 s after each beat: a kamen worker
    (20 s) silent for a minute is stopped; a plain `rq worker` (7 minutes idle) silent
    for 100 s is only idle."""
    from datetime import datetime, timedelta, timezone

    from redis import Redis
    from rq import Queue, Worker
    from rq.utils import utcformat

    from kamen.services import operations

    conn = Redis.from_url(redis_url)
    name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    workers = {}
    for label, ttl, silent, left in (("kamen", 35, 60, 35), ("plain", 420, 100, 380)):
        worker = Worker([Queue(name, connection=conn)], connection=conn, name=f"{name}-{label}", worker_ttl=ttl)
        worker.register_birth()
        conn.hset(worker.key, "last_heartbeat", utcformat(now - timedelta(seconds=silent)))
        conn.expire(worker.key, left)  # as RQ left it, ``silent`` seconds after a beat
        workers[label] = worker
    try:
        states = {w.name: w.alive for w in operations.overview(conn, name, now.replace(tzinfo=None)).workers}
        assert states == {f"{name}-kamen": False, f"{name}-plain": True}
    finally:
        for worker in workers.values():
            worker.register_death()


@pytest.mark.backends("postgresql")
def test_a_killed_busy_worker_shows_stopped_within_a_minute_while_a_busy_one_stays_running(app, client, auth,
                                                                                            processes):
    """Two workers, each busy with one long job, beat while their horses work; kill -9 one
    (and its horse) and the dashboard says 已停止 within a minute, not when RQ's registry
    forgets it, while the other, as silent in its horse all that time, stays 运行中."""
    auth.login()
    survivor, victim = processes.worker("survivor"), processes.worker("victim")

    def dashboard():
        return client.get("/admin/").get_data(as_text=True)

    wait_for(lambda: dashboard().count("运行中") == 2, what="the workers to start")
    for _ in range(2):
        queue.enqueue("tests.jobs_probe.busy_for", 90)
    wait_for(lambda: dashboard().count("正在执行任务") == 2, timeout=180, what="both workers to take a job")

    kill_worker(victim)
    killed = time.monotonic()
    while "已停止" not in (page := dashboard()):
        assert page.count("运行中") == 2 and page.count("正在执行任务") == 2
        assert time.monotonic() - killed <= 60, "the killed worker still shows 运行中 after a minute"
        time.sleep(2)
    assert page.count("运行中") == 1 and page.count("正在执行任务") == 1 and page.count("已停止") == 1
    kill_worker(survivor)  # not SIGTERM: a warm shutdown would wait for its job


@pytest.mark.backends("postgresql")
def test_a_worker_whose_job_failed_shows_idle(app, client, auth, processes):
    auth.login()
    processes.worker()
    queue.enqueue("tests.jobs_probe.fails")
    wait_for(lambda: "probe failure" in processes.log("worker-worker-instance"), what="the job to fail")
    time.sleep(1)
    page = client.get("/admin/").get_data(as_text=True)
    assert "运行中" in page and "空闲" in page and "正在执行任务" not in page


def test_doctor_passes_with_worker_and_cron_running(app, runner, processes):
    processes.worker()
    processes.cron()
    with migrated_stamp(app):
        result = wait_for(lambda: (r := runner.invoke(args=["doctor"])).exit_code == 0 and r, what="doctor to pass")
    assert "✓ worker" in result.output and "✓ cron" in result.output


@pytest.mark.backends("sqlite")
def test_job_view_posts_only_from_this_site(app, client, auth, redis_url):
    app.config.update(REDIS_URL=redis_url)
    jobs_app = create_app({"INSTANCE_PATH": app.instance_path, "SECRET_KEY": app.config["SECRET_KEY"],
                           "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": redis_url,
                           "JOB_QUEUE": f"kamen-test-{uuid.uuid4().hex[:8]}"})
    jobs_app.test_client_class = type(client)
    jobs_client = jobs_app.test_client()
    with jobs_app.app_context():
        assert jobs_client.get("/admin/jobs/").status_code == 302
        from tests.helpers import AuthActions

        AuthActions(jobs_client, jobs_app).login()
        assert "RQ" in jobs_client.get("/admin/jobs/").get_data(as_text=True)
        assert "workers" in jobs_client.get("/admin/jobs/0/data/workers.json").get_json()
        url = f"/admin/jobs/queue/{jobs_app.config['JOB_QUEUE']}/failed/empty"
        assert jobs_client.post(url, csrf=False).status_code == 400
        foreign = jobs_client.post(url, csrf=False, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 400
        assert jobs_client.post(url, csrf=False, headers={"Origin": "http://localhost"}).status_code == 200


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("worker_class, preloaded", [("jobs.worker.AppWorker", True), ("rq.Worker", False)])
def test_the_worker_class_hands_its_horses_a_built_app(app, db_url, redis_url, tmp_path, worker_class, preloaded):
    """The schedule's job does not build the app again in every forked horse (a plain rq worker does)."""
    procs = Processes(app, db_url, redis_url, tmp_path)
    handle = queue.enqueue("tests.jobs_probe.app_was_preloaded")
    result = subprocess.run([str(BIN / "rq"), "worker", "-w", worker_class, "--burst", "--url", redis_url,
                             procs.queue], cwd=ROOT, env={**procs.env, "KAMEN_INSTANCE_PATH": str(tmp_path / "w")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert queue.rq_queue().fetch_job(handle.id).return_value() is preloaded


def test_the_schedule_process_never_loads_the_app():
    """`rq cron jobs.cron` stays small: no Flask, SQLAlchemy or app modules in it."""
    probe = ("import sys, jobs.cron; heavy = [m for m in ('flask', 'sqlalchemy', 'kamen.models', 'openpyxl') "
             "if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("process", ["web", "worker"])
def test_import_only_libraries_load_where_they_are_used(tmp_path, redis_url, process):
    """A web or worker process starts without the spreadsheet, fuzzy-match and QR libraries (memory
    on a small VPS); they are imported by the code that reads uploads, maps headers or draws a QR code.
    Neither runs migrations (Alembic loads for `flask db`); a worker serves no pages, so no rq-dashboard."""
    lazy = ["openpyxl", "python_calamine", "olefile", "xlrd", "segno", "rapidfuzz", "et_xmlfile", "alembic"]
    if process == "web":
        start = ("from kamen import create_app; app = create_app(); assert '/admin/jobs/' in str(app.url_map); "
                 "app.test_client().get('/readyz'); ")
    else:  # what `rq worker -w jobs.worker.AppWorker` builds before its first job
        start = ("import jobs.worker, jobs.context; jobs.context.preload_app(); "
                 "import jobs.imports, jobs.sync, jobs.orders, jobs.maintenance, jobs.demopay, jobs.tick; ")
        lazy.append("rq_dashboard")
    probe = f"import sys; {start}loaded = [m for m in {lazy!r} if m in sys.modules]; print(loaded); sys.exit(bool(loaded))"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**env, "SECRET_KEY": "x", "KAMEN_INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.backends("sqlite")
def test_the_nightly_schedule_entry_purges_old_login_attempts(app):
    from datetime import datetime

    from jobs import tick
    from kamen.models import LoginAttempt

    db.session.add(LoginAttempt(username="u", ip="1.2.3.4", succeeded=False, at=datetime(2020, 1, 1)))
    db.session.commit()
    assert tick.nightly_purge() == (1, [])  # login attempts, import batches cleared
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 0
