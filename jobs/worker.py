"""The RQ worker kamen runs: ``rq worker -w jobs.worker.AppWorker kamen``.

Standard RQ (a forking worker) with two changes:

- The app is built once, in the worker process, before the first fork: every
  work-horse inherits it (copy-on-write) instead of importing and building it
  again for each job, so the per-minute schedule costs a fork and two queries,
  not an app start. A horse still exits after its job, so a big import's memory
  goes back to the system.
- A heartbeat every 20 s, idle or busy (RQ's default is every 405 s idle and
  30 s busy), so the back office tells a killed worker from a busy one within
  a minute (kamen.services.operations.WORKER_STALE); each heartbeat is also
  kept as "last seen" (运行中 / 已停止 since …).
"""
import gc

from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_WORKER_TTL
from rq.worker import Worker

from jobs.context import preload_app
from kamen.services.operations import WORKER_BEAT_SECONDS

# RQ waits for a job up to worker_ttl - 15 s between heartbeats when idle.
WORKER_TTL = WORKER_BEAT_SECONDS + 15


class AppWorker(Worker):
    def __init__(self, *args, **kwargs):
        self._app = preload_app()  # first: a misconfigured worker stops here, with the reason
        import jobs.demopay  # noqa: F401  (what the schedule's jobs run, imported once here, not per horse)
        import jobs.forwarding  # noqa: F401
        import jobs.imports  # noqa: F401
        import jobs.maintenance  # noqa: F401
        import jobs.orders  # noqa: F401
        import jobs.station_orders  # noqa: F401
        import jobs.sync  # noqa: F401
        from sqlalchemy.orm import configure_mappers

        configure_mappers()  # else every horse configures the ORM again on its first query
        # Objects built so far live for the whole process: keep the garbage
        # collector of each forked horse off them, so it does not touch (and copy)
        # the pages it shares with this process.
        gc.freeze()
        # `rq worker` passes RQ's defaults explicitly: replace them, keep a value the operator chose.
        kwargs.pop("default_worker_ttl", None)
        if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
            kwargs["worker_ttl"] = WORKER_TTL
        if kwargs.get("job_monitoring_interval") in (None, DEFAULT_JOB_MONITORING_INTERVAL):
            kwargs["job_monitoring_interval"] = WORKER_BEAT_SECONDS
        super().__init__(*args, **kwargs)

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        from kamen.services import operations

        target = pipeline if pipeline is not None else self.connection
        for queue in self.queue_names():
            operations.record_heartbeat(target, queue, operations.worker_member(self.name))
