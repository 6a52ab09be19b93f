"""Starting syncs: from a button, a command or the schedule, always the same way."""
from rq import Retry

from kamen.models import SyncRun
from kamen.services import alerts, background, syncing

# Transient failures (network, supplier down) are retried by RQ with backoff.
SYNC_RETRY = Retry(max=3, interval=[30, 120, 600])


def start_sync(session, supplier, mode):
    """Queue a sync run (raises SyncBusy when one is already active); returns
    (run, queue answer: ``paused`` when the run waits for Redis to come back)."""
    run = syncing.request_sync(session, supplier, mode)
    return run, resume(session, run)


def resume(session, run):
    """Ask for the run's job (again, for the sweeper)."""
    return background.request_job(session, SyncRun, run.id, "jobs.sync.sync_supplier", retry=SYNC_RETRY)


def dispatch_due(session, now_local, now_utc):
    started = []
    for supplier, mode in syncing.due_syncs(session, now_local, now_utc):
        try:
            started.append(start_sync(session, supplier, mode)[0].id)
        except syncing.SyncBusy:
            continue
    for supplier in syncing.manual_suppliers_to_remind(session, now_utc):
        _remind_recheck(session, supplier, now_utc)
    return started


def _remind_recheck(session, supplier, now_utc):
    """At most once per re-check period, until an admin marks it checked."""
    alerts.raise_alert(
        session,
        "recheck",
        f"请核对手工货源库存：{supplier.name}",
        [f"该货源每 {supplier.recheck_hours} 小时需核对一次库存与价格，核对后在后台点“已核对”。"],
    )
    supplier.recheck_reminded_at = now_utc
    session.commit()
