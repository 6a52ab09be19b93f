"""The one way to start a background job.

With ``REDIS_URL`` jobs go to RQ (``rq worker`` runs them). Without it they
run on a small thread pool inside the web process, or synchronously when
``JOBS_SYNC`` is set (tests, CLI). Job functions live in ``jobs/`` and open
their own app context, so the same function serves all three paths.

Jobs are named by their dotted path ("jobs.imports.commit_import"): views
and services never import ``jobs/``, which would import the app factory.
"""
import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from kamen.extensions import db


log = logging.getLogger("kamen.queue")
# Jobs still waiting their turn in the queue: not lost, not to be enqueued again.
WAITING = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


@dataclass
class Enqueued:
    id: str | None
    backend: str  # "rq", "thread", "sync", or "paused" (the queue was unreachable)

    @property
    def paused(self):
        return self.backend == "paused"


def redis_connection():
    """The app's Redis connection, or None in embedded mode."""
    url = current_app.config["REDIS_URL"]
    if not url:
        return None
    ext = current_app.extensions
    if "kamen_redis" not in ext:
        ext["kamen_redis"] = Redis.from_url(url, socket_connect_timeout=3)  # Redis away: fail fast, never hang a page
    return ext["kamen_redis"]


def rq_queue():
    conn = redis_connection()
    return Queue(queue_name(), connection=conn) if conn else None


def resolve(func):
    """A job function from its dotted name (functions pass through)."""
    if not isinstance(func, str):
        return func
    module, _, name = func.rpartition(".")
    return getattr(importlib.import_module(module), name)


def enqueue(func, *args, job_id=None, retry=None, timeout=None, **kwargs):
    """Run ``func(*args, **kwargs)`` in the background; ``func`` is a dotted
    name (or a function). ``retry`` (an rq.Retry) and ``timeout`` (seconds,
    RQ's default is 180) apply on RQ only: in-process jobs are not retried."""
    queue = rq_queue()
    if queue is not None:
        try:
            job = queue.enqueue(func, args=args, kwargs=kwargs, job_id=job_id, retry=retry, job_timeout=timeout)
        except RedisError as exc:
            # The row that asked for the job keeps waiting; the sweeper enqueues it later.
            log.warning("could not enqueue %s%r: %s", func, args, exc)
            return Enqueued(job_id, "paused")
        return Enqueued(job.id, "rq")
    app = current_app._get_current_object()
    func = resolve(func)
    if app.config["JOBS_SYNC"]:
        try:
            _run_in_app(app, func, args, kwargs)
        except Exception:  # noqa: S110 - as with RQ, a failed job never fails the caller; _run_in_app logged it
            pass
        # The job wrote through its own session: what the caller loaded may be stale.
        db.session.expire_all()
        return Enqueued(job_id, "sync")
    future = _executor(app).submit(_run_in_app, app, func, args, kwargs)
    if job_id:
        _waiting_threads(app)[job_id] = future
        future.add_done_callback(lambda _f: _waiting_threads(app).pop(job_id, None))
    return Enqueued(job_id, "thread")


def is_waiting(job_id):
    """Whether job ``job_id`` is queued and not yet started (so enqueueing it
    again would run it twice)."""
    if not job_id:
        return False
    conn = redis_connection()
    if conn is None:
        future = _waiting_threads(current_app).get(job_id)
        return future is not None and not future.running()
    try:
        return Job.fetch(job_id, connection=conn).get_status() in WAITING
    except NoSuchJobError:
        return False
    except RedisError:
        return True  # unknown while Redis is away: never start the same work twice


def _waiting_threads(app):
    return app.extensions.setdefault("kamen_thread_jobs", {})


def _executor(app):
    ext = app.extensions
    if "kamen_executor" not in ext:
        ext["kamen_executor"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kamen-job")
    return ext["kamen_executor"]


def _run_in_app(app, func, args, kwargs):
    with app.app_context():
        try:
            return func(*args, **kwargs)
        except Exception:
            app.logger.exception("background job %s%r failed", getattr(func, "__qualname__", func), args)
            raise


def queue_name():
    return current_app.config["JOB_QUEUE"]
