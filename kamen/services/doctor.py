"""`flask doctor`: every check an operator needs after a deploy, each with what to fix.

Messages are for the operator at a shell, so they name settings and commands.
"""
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from kamen import queue
from kamen.services import operations


@dataclass
class Check:
    name: str
    level: str  # ok / warn / fail
    message: str
    fix: str = ""


def run_checks(app, session):
    checks = list(_settings(app))
    db_problem = operations.database_error(session)
    if db_problem:
        checks.append(Check("数据库", "fail", f"无法连接：{db_problem}",
                            "检查 DATABASE_URL（用户、密码、主机、库名）以及 PostgreSQL 是否在运行"))
    else:
        checks.append(Check("数据库", "ok", _db_label(app)))
        current = operations.database_revisions(session)
        heads = operations.migration_heads(operations.migrations_directory(app))
        if current == heads:
            checks.append(Check("数据库结构", "ok", f"已是最新（{', '.join(sorted(heads))}）"))
        else:
            checks.append(Check("数据库结构", "fail", f"数据库在 {sorted(current) or '未初始化'}，代码需要 {sorted(heads)}",
                                "运行 flask db upgrade"))
    conn = queue.redis_connection()
    if conn is None:
        checks.append(Check("后台任务", "warn", "未设置 REDIS_URL：单机内置模式，任务在网站进程内执行，定时任务关闭",
                            "正式部署请设置 REDIS_URL，并运行 worker 与 cron（见 README 生产部署）"))
        return checks
    redis_problem = operations.redis_error(conn)
    if redis_problem:
        checks.append(Check("Redis", "fail", f"无法连接：{redis_problem}", "检查 REDIS_URL 以及 Redis 是否在运行"))
        return checks
    checks.append(Check("Redis", "ok", "可以连接"))
    checks.extend(_processes(operations.overview(conn, queue.queue_name()), queue.queue_name()))
    return checks


def _db_label(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    return "PostgreSQL 可以连接" if url.startswith("postgresql") else "SQLite 可以连接"


def _settings(app):
    config = app.config
    mode = "生产模式" if config["PRODUCTION"] else "单机内置模式"
    yield Check("运行模式", "ok", mode)
    if config["PRODUCTION"] and not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        yield Check("数据库设置", "warn", "生产模式使用的不是 PostgreSQL",
                    "设置 DATABASE_URL=postgresql://用户:密码@主机/库名，网站与 worker 才能共用同一个数据库")
    if config["REDIS_URL"] and config["JOBS_SYNC"]:
        yield Check("任务设置", "warn", "KAMEN_JOBS_SYNC=1：任务在当前进程同步执行", "生产环境请去掉 KAMEN_JOBS_SYNC")
    if config["SESSION_COOKIE_SECURE"] and not config["PROXY_COUNT"]:
        yield Check("HTTPS 设置", "warn", "KAMEN_HTTPS=1 但 KAMEN_PROXY_COUNT=0",
                    "在 nginx 之后请设置 KAMEN_PROXY_COUNT=1，否则看不到访客的真实地址和 https")
    if config["PRODUCTION"] and not config["SESSION_COOKIE_SECURE"]:
        yield Check("HTTPS 设置", "warn", "未设置 KAMEN_HTTPS=1：登录 Cookie 也会经由明文 http 发送",
                    "在 nginx 配好 HTTPS 证书后设置 KAMEN_HTTPS=1")
    try:
        shop = ZoneInfo(config["SHOP_TIMEZONE"])
    except (KeyError, ValueError):
        yield Check("时区", "fail", f"KAMEN_TIMEZONE={config['SHOP_TIMEZONE']} 不是有效的时区", "例如 Asia/Shanghai")
        return
    now = datetime.now(timezone.utc)
    local_offset = time.localtime().tm_gmtoff
    if now.astimezone(shop).utcoffset().total_seconds() != local_offset:
        yield Check("时区", "warn", f"本进程的时区与商城时区 {config['SHOP_TIMEZONE']} 不一致：日志与定时任务的时间会对不上",
                    f"所有进程设置 TZ={config['SHOP_TIMEZONE']}（deploy/ 下的 systemd 单元已设置）")
    else:
        yield Check("时区", "ok", config["SHOP_TIMEZONE"])


def _processes(ops, queue_name):
    alive = [w for w in ops.workers if w.alive]
    if alive:
        yield Check("worker", "ok", f"{len(alive)} 个在运行（队列 {queue_name}）")
    else:
        last = max((w.since for w in ops.workers if w.since), default=None)
        since = f"，最后一次在线 {last:%Y-%m-%d %H:%M} UTC" if last else ""
        yield Check("worker", "fail", f"队列 {queue_name} 没有在运行的 worker{since}",
                    f"启动 worker：rq worker -w jobs.worker.AppWorker --url \"$REDIS_URL\" {queue_name}"
                    "（systemd：systemctl start kamen-worker@1）")
    if ops.cron and ops.cron.alive:
        yield Check("cron", "ok", "定时任务在运行")
    else:
        since = f"，最后一次在线 {ops.cron.since:%Y-%m-%d %H:%M} UTC" if ops.cron and ops.cron.since else ""
        yield Check("cron", "fail", f"定时任务没有在运行{since}",
                    "启动一个（只要一个）：TZ=Asia/Shanghai rq cron jobs.cron --url \"$REDIS_URL\"（systemd：systemctl start kamen-cron）")
