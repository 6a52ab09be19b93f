"""The sweeper: no work is stuck because a worker died or Redis was away.

Every row that waits for a job (import batches in progress, active sync runs,
售后 tickets due a forward or a callback)
is looked at: a job that never reached the queue is enqueued, one that was
lost or whose holder stopped beating is resumed (each step is idempotent:
commit goes on by chunk, staging starts over, a sync re-reads its pages),
at most ``JOB_MAX_RESUMES`` times, then the row is marked 失败 with the reason
and a 重试 button. RQ's cron runs it every minute; embedded mode runs it on
admin page loads; tests call it with their own clock.
"""
import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from kamen import queue
from kamen.models import ImportBatch, LaunchRun, SyncRun
from kamen.services import background, launch_test, sync_dispatch, syncing, ticket_forwarding
from kamen.services.importing import batches
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.sweeper")

DEAD_REASON = "后台任务中断（进程退出、被系统终止或数据库断开），已自动恢复 {n} 次仍未完成"


@dataclass
class Swept:
    enqueued: list = field(default_factory=list)  # (table, id): sent to the queue again
    failed: list = field(default_factory=list)  # (table, id): marked 失败 with a reason


def sweep(session, now=None):
    """One pass over every row waiting for a job; ``now`` (naive UTC) for tests."""
    now = now or utcnow()
    swept = Swept()
    try:
        rows = session.scalars(sa.select(ImportBatch).where(ImportBatch.status.in_(batches.IN_PROGRESS))).all()
        for batch in rows:
            _sweep_row(session, ImportBatch, batch, now, swept, batches.resume, _fail_batch)
        runs = session.scalars(sa.select(SyncRun).where(SyncRun.status.in_(syncing.ACTIVE))).all()
        for run in runs:
            _sweep_row(session, SyncRun, run, now, swept, sync_dispatch.resume, _fail_run)
        tests = session.scalars(sa.select(LaunchRun).where(LaunchRun.status.in_(("queued", "running")))).all()
        for row in tests:
            _sweep_row(session, LaunchRun, row, now, swept, launch_test.resume, _fail_launch_test)
        # 售后 forwards and 分站 callbacks: retried when due (each try ends its own job, so a dead
        # or never-sent one is simply due again; past the last try the ticket says 失败).
        swept.enqueued += [("tickets", t) for t in ticket_forwarding.dispatch_due(session, now)]
    except RedisError as exc:
        session.rollback()
        log.warning("sweep stopped, the queue is unreachable: %s", exc)
    return swept


def sweep_embedded(session, every_seconds=60):
    """Embedded mode (no Redis, jobs on the web process's threads) has no cron:
    admin page loads sweep, at most once a minute per process. After a restart
    this resumes the work the old process left unfinished."""
    config = current_app.config
    if config["REDIS_URL"] or config["JOBS_SYNC"]:
        return None
    state = current_app.extensions.setdefault("kamen_sweeper", {"at": None})
    now = time.monotonic()
    if state["at"] is not None and now - state["at"] < every_seconds:
        return None
    state["at"] = now
    # No schedule polls suppliers about forwarded orders either: a background thread does.
    queue.enqueue("jobs.forwarding.poll_orders")
    queue.enqueue("jobs.station_orders.enqueue_due_callbacks")  # and the callbacks due to 分站
    return sweep(session)


def _sweep_row(session, model, row, now, swept, resume, fail):
    state = background.job_state(row, now)
    if state in ("alive", "young", "waiting"):
        return
    key = (model.__tablename__, row.id)
    if state == "unsent":  # the queue was away when the job was asked for: not a failure
        handle = resume(session, row)
        if not handle.paused:
            swept.enqueued.append(key)
        return
    if row.job_resumes >= current_app.config["JOB_MAX_RESUMES"]:
        if fail(session, row, DEAD_REASON.format(n=row.job_resumes)):
            swept.failed.append(key)
        return
    if background.take_over(session, model, row, now):
        log.warning("%s %s: its job is %s, resuming", model.__tablename__, row.id, state)
        resume(session, session.get(model, row.id))
        swept.enqueued.append(key)


def _fail_batch(session, batch, reason):
    if not background.take_over(session, ImportBatch, batch, utcnow()):
        return False
    return batches.fail(session, batch.id, reason)


def _fail_run(session, run, reason):
    if not background.take_over(session, SyncRun, run, utcnow()):
        return False
    return syncing.fail_dead_run(session, run.id, reason)


def _fail_launch_test(session, row, reason):
    if not background.take_over(session, LaunchRun, row, utcnow()):
        return False
    return launch_test.fail_dead_run(session, row.id, reason)
