"""The periodic schedule, in one place. Run it with RQ's own scheduler:

    rq cron jobs.cron --url "$REDIS_URL"

Cron expressions are in the cron process's local time: start it with
TZ=Asia/Shanghai so "0 2 * * *" means 02:00 shop time.
"""
import os

from rq import cron

from jobs import demopay, imports, maintenance, sync

QUEUE = os.environ.get("KAMEN_JOB_QUEUE", "kamen")

# Each supplier's interval and nightly full sync are checked every minute, so
# changing them in the back office needs no restart of this process.
cron.register(sync.dispatch_due_syncs, QUEUE, cron="* * * * *", name="dispatch-syncs")
cron.register(imports.dispatch_scheduled_imports, QUEUE, cron="* * * * *", name="dispatch-imports")
cron.register(maintenance.purge_login_attempts, QUEUE, cron="30 3 * * *", name="purge-login-attempts")
# The 易支付 demo gateway's notify retries (nothing to do when it is off).
cron.register(demopay.retry_notifies, QUEUE, cron="* * * * *", name="demopay-retry-notifies")
