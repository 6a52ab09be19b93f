"""The running system as an operator sees it: workers, the schedule, the
database, Redis and migrations. Used by the dashboard, ``flask doctor`` and
``/readyz``.

Heartbeats: RQ keeps each live worker in its registry and each live ``rq cron``
in its scheduler registry; both forget a process once it is gone. What kamen
adds is memory of when each was last seen, in one Redis hash per queue (the
worker class writes it with every heartbeat; the per-minute schedule job writes
the cron's), so the back office can say 已停止 since when.
"""
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

# A kamen worker (jobs.worker.AppWorker) heartbeats every WORKER_BEAT_SECONDS, idle
# or busy. RQ's registry keeps a killed worker for minutes: one that missed its
# promised beat by WORKER_GRACE is taken for stopped. The cron beats every minute.
WORKER_BEAT_SECONDS = 20
WORKER_GRACE = timedelta(seconds=20)
# RQ lets a worker's key expire this long after the beat interval it promised.
RQ_TTL_MARGIN = timedelta(seconds=60)
CRON_STALE = timedelta(minutes=3)
FORGET_AFTER = timedelta(days=7)


def _key(queue_name):
    return f"kamen:{queue_name}:heartbeats"


def worker_member(name):
    return f"worker:{name}"


CRON_MEMBER = "cron"


def record_heartbeat(conn, queue_name, member, when=None):
    """Remember that ``member`` was alive ``when`` (conn may be a Redis pipeline)."""
    stamp = (when or datetime.now(timezone.utc)).timestamp()
    conn.hset(_key(queue_name), member, f"{stamp:.3f}")


def record_cron_tick(conn, queue_name, when=None):
    record_heartbeat(conn, queue_name, CRON_MEMBER, when)


def _last_seen(conn, queue_name):
    raw = conn.hgetall(_key(queue_name))
    return {k.decode(): _utc_naive(float(v)) for k, v in raw.items()}


def _utc_naive(stamp):
    return datetime.fromtimestamp(stamp, timezone.utc).replace(tzinfo=None)


@dataclass
class ProcessState:
    kind: str  # "worker" or "cron"
    name: str
    alive: bool
    since: datetime | None  # naive UTC: last heartbeat (alive) or last seen (stopped)
    job: str = ""  # what a busy worker is doing


@dataclass
class Schedule:
    label: str
    cron: str
    next_run: datetime | None  # naive UTC


@dataclass
class Overview:
    workers: list[ProcessState] = field(default_factory=list)
    cron: ProcessState | None = None
    schedules: list[Schedule] = field(default_factory=list)
    last_tick: datetime | None = None


def overview(conn, queue_name, now=None):
    """Workers and the cron of this queue: alive or stopped since when, and the schedules with their next runs."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    seen = _last_seen(conn, queue_name)
    result = Overview(workers=_workers(conn, queue_name, seen, now), last_tick=seen.get(CRON_MEMBER))
    scheduler, beat = _live_scheduler(conn, queue_name, now)
    if scheduler is not None:
        result.cron = ProcessState("cron", scheduler.name, True, beat)
        result.schedules = [
            Schedule(
                (job.job_options.get("meta") or {}).get("label") or job.name,
                job.cron or f"{job.interval}s",
                _naive(job.next_enqueue_time),
            )
            for job in scheduler.get_jobs()
            if job.queue_name == queue_name
        ]
    elif result.last_tick:
        result.cron = ProcessState("cron", "", False, result.last_tick)
    return result


def _naive(dt):
    return dt.replace(tzinfo=None) if dt else None


def _workers(conn, queue_name, seen, now):
    """Live workers from RQ's registry that beat lately (a killed one stays in the registry
    for minutes, silent), then the ones seen in the last days that are gone."""
    from rq import Queue, Worker

    live = {}
    for worker in Worker.all(queue=Queue(queue_name, connection=conn)):
        beat = _naive(worker.last_heartbeat)
        if beat is None or _silent_too_long(conn, worker, beat, now):
            seen.setdefault(worker_member(worker.name), beat or now)
            continue
        live[worker.name] = ProcessState("worker", worker.name, True, beat, _working_on(worker))
    stopped = []
    for member, when in seen.items():
        kind, _, name = member.partition(":")
        if kind == "worker" and name not in live and now - when < FORGET_AFTER:
            stopped.append(ProcessState("worker", name, False, when))
    return sorted(live.values(), key=lambda w: w.name) + sorted(stopped, key=lambda w: w.since, reverse=True)


def _working_on(worker):
    """The job the worker runs now, or "": RQ can leave a finished or failed job as the
    worker's current one (an idle worker would look busy for as long as it stays idle)."""
    from rq.job import JobStatus

    job = worker.get_current_job()
    if job is None or job.get_status(refresh=False) != JobStatus.STARTED:
        return ""
    return job.description


def _silent_too_long(conn, worker, beat, now):
    """Each heartbeat sets the worker's key to expire its next-beat interval + 60 s later
    (20 s for a kamen worker, 7 minutes idle for a plain `rq worker`): from the time
    left, the interval it promised; silent past that and WORKER_GRACE, it was killed."""
    left = conn.ttl(worker.key)
    if left is None or left < 0:  # no expiry set: only the registry can tell
        return False
    silent = now - beat
    promised = silent + timedelta(seconds=left) - RQ_TTL_MARGIN
    return silent > promised + WORKER_GRACE


def _live_scheduler(conn, queue_name, now):
    """The `rq cron` of this queue with the freshest heartbeat, if one beat lately: (scheduler, beat)."""
    from rq.cron import CronScheduler

    best = (None, None)
    for scheduler in CronScheduler.all(conn):
        if not any(job.queue_name == queue_name for job in scheduler.get_jobs()):
            continue
        beat = _naive(scheduler.last_heartbeat)
        if beat and now - beat < CRON_STALE and (best[1] is None or beat > best[1]):
            best = (scheduler, beat)
    return best


def overview_or_none(conn, queue_name):
    """The overview, or None when Redis cannot be reached (the page says so instead of failing)."""
    from redis.exceptions import RedisError

    if conn is None:
        return None
    try:
        return overview(conn, queue_name)
    except RedisError:
        return None


# -- readiness: what a load balancer and `flask doctor` check -------------------------------


def database_error(session):
    """None when the database answers, else the reason."""
    try:
        session.execute(sa.text("SELECT 1"))
        session.rollback()
        return None
    except sa.exc.SQLAlchemyError as exc:
        session.rollback()
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def redis_error(conn):
    from redis.exceptions import RedisError

    try:
        conn.ping()
        return None
    except RedisError as exc:
        return str(exc)


_heads = {}


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def migration_heads(directory):
    """The migration heads of the code: revisions no other revision builds on (read once
    per process: code does not change under it). Read from the files' ``revision`` and
    ``down_revision`` lines, so /readyz does not load Alembic into every web worker."""
    if directory not in _heads:
        revisions, parents = set(), set()
        for path in Path(directory, "versions").glob("*.py"):
            text = path.read_text(encoding="utf-8")
            found = _REVISION.search(text)
            if found:
                revisions.add(found.group(1))
                down = _DOWN_REVISION.search(text)
                parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)) if down else ())
        _heads[directory] = revisions - parents
    return _heads[directory]


def database_revisions(session):
    """The revisions the database is at (empty when it was never migrated)."""
    try:
        return set(session.scalars(sa.text("SELECT version_num FROM alembic_version")).all())
    except sa.exc.SQLAlchemyError:
        return set()
    finally:
        session.rollback()


def migrations_directory(app):
    return app.extensions["migrate"].directory


def readiness(app, session, conn):
    """{check: None or the problem}: database, Redis (when configured), migrations at head."""
    problems = {"database": database_error(session)}
    if conn is not None:
        problems["redis"] = redis_error(conn)
    if problems["database"] is None:
        current, heads = database_revisions(session), migration_heads(migrations_directory(app))
        problems["migrations"] = None if current == heads else f"database at {sorted(current) or 'none'}, code at {sorted(heads)}"
    else:
        problems["migrations"] = "database unreachable"
    return problems
