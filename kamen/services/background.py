"""Jobs owned by rows: ask for a job, hold its lease, beat, and tell dead from waiting.

A row (import batch, sync run, …) records the job it waits for before the
job is enqueued, so nothing lives only in Redis: when the enqueue fails the
row still says so (``job_enqueued_at`` is empty) and the sweeper enqueues it
later. The job takes the row's lease with one conditional UPDATE and renews
it (``heartbeat_at``) in the same transaction as each chunk of work, so a job
picked up twice works once, and a job that stopped beating is dead.
"""
import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from kamen import queue
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.jobs")

PAUSED_MESSAGE = "后台任务暂停，恢复后自动继续"


class LeaseLost(Exception):
    """The row's lease went to another job (this one was taken for dead): stop, write nothing more."""


def stale_after():
    """A lease whose holder has not beaten for this long belongs to a dead job."""
    return timedelta(seconds=current_app.config["JOB_STALE_SECONDS"])


def request_job(session, model, row_id, func, *, retry=None):
    """Record on the row that it waits for job ``func(row_id)``, then enqueue it.

    The caller has committed the row's new status. Returns the queue's answer:
    ``paused`` when the queue was unreachable (the row waits for the sweeper).
    """
    now = utcnow()
    job_id = f"kamen-{model.__tablename__}-{row_id}-{uuid.uuid4().hex[:8]}"
    session.execute(
        sa.update(model).where(model.id == row_id)
        .values(job_id=job_id, job_requested_at=now, job_enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    # Liveness is the row's heartbeat, so a long import or sync may run past RQ's 180 s default.
    timeout = current_app.config["JOB_TIMEOUT_SECONDS"]
    handle = queue.enqueue(func, row_id, job_id=job_id, retry=retry, timeout=timeout)
    if not handle.paused:
        session.execute(
            sa.update(model).where(model.id == row_id, model.job_id == job_id, model.job_enqueued_at.is_(None))
            .values(job_enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return handle


class Lease:
    """One job's hold on one row."""

    def __init__(self, model, row_id):
        self.model, self.row_id = model, row_id
        self.token = uuid.uuid4().hex

    def _where(self):
        return sa.update(self.model).where(self.model.id == self.row_id).execution_options(synchronize_session=False)

    def acquire(self, session, statuses, **values):
        """Take the lease of a row in one of ``statuses`` that no live job holds; commits.
        False: another job holds it, or the row needs no job any more."""
        model, now = self.model, utcnow()
        free = sa.or_(model.job_token.is_(None), model.heartbeat_at.is_(None), model.heartbeat_at < now - stale_after())
        stmt = self._where().where(model.status.in_(statuses), free).values(job_token=self.token, heartbeat_at=now,
                                                                         **values)
        taken = session.execute(stmt).rowcount == 1
        session.commit()
        _expire(session, model, self.row_id)
        return taken

    def beat(self, session, **values):
        """Renew the lease inside the caller's transaction, before its chunk of work: the
        row stays locked until that transaction ends. Raises LeaseLost."""
        stmt = self._where().where(self.model.job_token == self.token).values(heartbeat_at=utcnow(), **values)
        if session.execute(stmt).rowcount != 1:
            raise LeaseLost(f"{self.model.__tablename__} {self.row_id}")

    def release(self, session):
        session.execute(self._where().where(self.model.job_token == self.token).values(job_token=None))
        session.commit()
        _expire(session, self.model, self.row_id)


def _expire(session, model, row_id):
    obj = session.identity_map.get(sa.inspect(model).identity_key_from_primary_key((row_id,)))
    if obj is not None:
        session.expire(obj)


def job_state(row, now):
    """What the sweeper sees of a row waiting for or running a job:
    ``alive``, ``dead`` (its holder stopped beating), ``unsent`` (never reached
    the queue), ``lost`` (sent long ago, not waiting in the queue, never started)
    or ``young`` (just asked for: leave it a moment)."""
    stale = now - stale_after()
    if row.job_token is not None:
        return "alive" if row.heartbeat_at is not None and row.heartbeat_at >= stale else "dead"
    if row.job_enqueued_at is None:
        return "unsent"
    if row.job_requested_at is not None and row.job_requested_at >= stale:
        return "young"
    return "waiting" if queue.is_waiting(row.job_id) else "lost"


def is_busy(row, now=None):
    """A row whose job runs, waits in the queue or was asked for a moment ago:
    a new request must not start the same work again."""
    now = now or utcnow()
    if row.job_token is None and row.job_requested_at is not None and row.job_requested_at >= now - stale_after():
        return True
    return job_state(row, now) in ("alive", "waiting")


def take_over(session, model, row, now, **values):
    """Clear a dead or lost job's claim on ``row`` (once, whoever else sweeps), counting a resume."""
    stmt = (
        sa.update(model)
        .where(model.id == row.id, model.job_id.is_not_distinct_from(row.job_id),
               model.job_token.is_not_distinct_from(row.job_token))
        .values(job_token=None, job_resumes=model.job_resumes + 1, **values)
        .execution_options(synchronize_session=False)
    )
    taken = session.execute(stmt).rowcount == 1
    session.commit()
    _expire(session, model, row.id)
    return taken
