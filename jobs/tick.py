"""The schedule's entry points. Kept free of module-level imports: ``rq cron``
loads this module and should stay small (it never builds the app)."""
import logging

log = logging.getLogger(__name__)


def every_minute():
    """One job for all the per-minute work: the cron heartbeat, due syncs and
    re-check reminders, scheduled import commits, the demo gateway's notify
    retries, expiring unpaid orders (their stock back), asking gateways about lost
    payment notifies (its own job: a slow gateway must not hold the tick),
    上线测试 orders waiting for delivery, polling suppliers about forwarded orders
    (its own job too), callbacks due to 分站 about their orders (a job each),
    after-sales tickets past a deadline (one alert each) and the sweeper (work
    whose job died or never reached Redis).
    One job, one fork per minute."""
    from jobs.context import app_context

    with app_context():
        from jobs import aftersales, demopay, forwarding, imports, launch, maintenance, orders, station_orders, sync
        from kamen import queue
        from kamen.services import operations

        operations.record_cron_tick(queue.redis_connection(), queue.queue_name())
        failed = []
        steps = (sync.dispatch_due_syncs, imports.dispatch_scheduled_imports, demopay.retry_notifies,
                 maintenance.sweep_jobs, orders.expire_orders, orders.enqueue_payment_queries,
                 launch.poll_test_orders, forwarding.enqueue_polls, station_orders.enqueue_due_callbacks,
                 aftersales.tick)
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("scheduled step %s failed", step.__name__)
                failed.append(step.__name__)
        if failed:
            raise RuntimeError(f"scheduled steps failed: {', '.join(failed)}")
        return True


def nightly_purge():
    from jobs.maintenance import purge_login_attempts, purge_old_imports

    return purge_login_attempts(), purge_old_imports()
