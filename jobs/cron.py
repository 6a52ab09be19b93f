"""The periodic schedule, in one place. Run it with RQ's own scheduler:

    rq cron jobs.cron --url "$REDIS_URL"

Cron expressions are in the cron process's local time: start it with
TZ=Asia/Shanghai so "0 2 * * *" means 02:00 shop time. Each entry's
``meta["label"]`` is how the back office names it.

This process never builds the app (it only enqueues): it imports jobs.tick,
which has no module-level imports, and the settings check, which is light.
Per-minute work goes into jobs.tick.every_minute (one job, one fork a minute).
"""
import os

from rq import cron

from jobs import tick
from kamen.config import require_secret_key

require_secret_key()  # production mode without SECRET_KEY: stop at start, like every process

QUEUE = os.environ.get("KAMEN_JOB_QUEUE", "kamen")

# Each supplier's interval and nightly full sync are checked every minute, so
# changing them in the back office needs no restart of this process.
cron.register(tick.every_minute, QUEUE, cron="* * * * *", name="every-minute",
              meta={"label": "每分钟：到期的自动同步与夜间全量同步、手工货源核对提醒、预约提交的导入、演示支付的通知重试、"
                                 "中断或未发出的后台任务的恢复、超时未付订单取消、掉单查询"})
cron.register(tick.nightly_purge, QUEUE, cron="30 3 * * *", name="purge-login-attempts",
              meta={"label": "每天 03:30：清理 30 天前的登录记录，以及超过保留天数的导入文件和明细"})
