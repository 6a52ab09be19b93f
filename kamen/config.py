"""Settings, read from the environment in one place.

With nothing set, kamen runs embedded: a SQLite file under ``instance/`` and
jobs on an in-process thread pool. ``DATABASE_URL`` and ``REDIS_URL`` switch
to PostgreSQL and RQ.

Production mode is ``DATABASE_URL`` or ``REDIS_URL`` set (several processes,
maybe on several machines, share one database), or ``KAMEN_ENV=production``.
There every process needs the same ``SECRET_KEY`` from the environment: a key
generated under one process's instance folder would make the others unable to
read sessions and stored secrets, so a missing one stops the process at start.

This module imports nothing heavy: ``rq cron`` checks the settings with it
without loading the app.
"""
import os
import secrets
from datetime import timedelta
from pathlib import Path


class ConfigError(RuntimeError):
    """A setting that makes starting this process pointless."""


MISSING_SECRET_KEY = (
    "生产模式（已设置 DATABASE_URL 或 REDIS_URL，或 KAMEN_ENV=production）必须设置 SECRET_KEY，"
    "网站、worker、cron 与 flask 命令使用同一个值（例如写在 /etc/kamen/kamen.env）。"
    "生成一次：python3 -c 'import secrets; print(secrets.token_hex(32))'"
)


def production_mode(env=None):
    env = os.environ if env is None else env
    return env.get("KAMEN_ENV") == "production" or bool(env.get("DATABASE_URL") or env.get("REDIS_URL"))


def require_secret_key(env=None):
    """Raise ConfigError when production mode has no SECRET_KEY (every process calls this at start)."""
    env = os.environ if env is None else env
    if production_mode(env) and not env.get("SECRET_KEY"):
        raise ConfigError(MISSING_SECRET_KEY)


def _int(name, default):
    return int(os.environ.get(name, default))


class Config:
    def __init__(self, instance_path, overrides=None):
        env = os.environ
        self.PRODUCTION = production_mode(env)
        self.SECRET_KEY = env.get("SECRET_KEY")
        self.SQLALCHEMY_DATABASE_URI = _normalize_db_url(
            env.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'kamen.db'}"
        )
        # No pool_pre_ping: its extra round trip costs every request (+47-68 us
        # on loopback, 7-9% of a checkout and one query: bench/connection_bench.py).
        # kamen.connections instead polls the idle socket at checkout (cost within
        # noise) and retries a read request. Connections are renewed hourly
        # so no idle timeout on the way drops them.
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_recycle": 3600}
        self.REDIS_URL = env.get("REDIS_URL") or None
        # Run in-process jobs synchronously (tests, CLI); otherwise a thread pool.
        self.JOBS_SYNC = env.get("KAMEN_JOBS_SYNC") == "1"
        self.JOB_QUEUE = env.get("KAMEN_JOB_QUEUE", "kamen")
        # A job that has not renewed its lease for this long is dead: the sweeper
        # resumes its work (at most JOB_MAX_RESUMES times) or marks it failed.
        self.JOB_STALE_SECONDS = _int("KAMEN_JOB_STALE_SECONDS", 180)
        self.JOB_MAX_RESUMES = _int("KAMEN_JOB_MAX_RESUMES", 3)
        self.JOB_TIMEOUT_SECONDS = _int("KAMEN_JOB_TIMEOUT_SECONDS", 3600)  # RQ stops a job running longer
        self.SHOP_NAME = env.get("KAMEN_SHOP_NAME", "kamen 卡盟")
        self.SHOP_TIMEZONE = env.get("KAMEN_TIMEZONE", "Asia/Shanghai")
        self.LOW_STOCK_THRESHOLD = _int("KAMEN_LOW_STOCK_THRESHOLD", 10)
        self.LOGIN_MAX_FAILURES = _int("KAMEN_LOGIN_MAX_FAILURES", 5)
        self.LOGIN_LOCK_MINUTES = _int("KAMEN_LOGIN_LOCK_MINUTES", 15)
        self.ADMIN_PAGE_SIZE = _int("KAMEN_ADMIN_PAGE_SIZE", 50)
        self.SHOP_PAGE_SIZE = _int("KAMEN_SHOP_PAGE_SIZE", 60)
        # Shop hot path (catalog.py): how long a worker reuses its category
        # tree, and how often it writes the product views it has counted.
        self.SHOP_CACHE_SECONDS = _int("KAMEN_SHOP_CACHE_SECONDS", 30)
        self.SHOP_VIEW_WRITE_SECONDS = _int("KAMEN_SHOP_VIEW_WRITE_SECONDS", 5)
        self.IMPORT_MAX_BYTES = _int("KAMEN_IMPORT_MAX_MB", 50) * 1024 * 1024
        self.IMPORT_MAX_ROWS = _int("KAMEN_IMPORT_MAX_ROWS", 200_000)
        # Big imports on PostgreSQL work this many chunks at once (one core each).
        self.IMPORT_WORKERS = _int("KAMEN_IMPORT_WORKERS", min(2, os.cpu_count() or 1))
        self.MAX_CONTENT_LENGTH = self.IMPORT_MAX_BYTES + 1024 * 1024
        self.WTF_CSRF_TIME_LIMIT = None
        # Buying: unpaid orders hold stock this long; per contact and per IP at most
        # this many unpaid orders; 查单 throttle per IP; how long a 查单 link works.
        self.ORDER_EXPIRE_MINUTES = _int("KAMEN_ORDER_EXPIRE_MINUTES", 15)
        self.ORDER_UNPAID_LIMIT = _int("KAMEN_ORDER_UNPAID_LIMIT", 3)
        self.LOOKUP_MAX_FAILURES = _int("KAMEN_LOOKUP_MAX_FAILURES", 10)
        self.LOOKUP_LOCK_MINUTES = _int("KAMEN_LOOKUP_LOCK_MINUTES", 15)
        self.ORDER_LINK_DAYS = _int("KAMEN_ORDER_LINK_DAYS", 7)
        # 售后 screenshots: each at most this big (and 40 megapixels, services/aftersales.py).
        self.TICKET_SHOT_MAX_BYTES = _int("KAMEN_TICKET_SHOT_MAX_MB", 5) * 1024 * 1024
        # Behind nginx, how many proxies set X-Forwarded-For/-Proto: the login rate
        # limit must see the customer's address, not the proxy's.
        self.PROXY_COUNT = _int("KAMEN_PROXY_COUNT", 0)
        # Served over HTTPS only: Secure cookies and HSTS (kamen/security.py).
        self.HTTPS = env.get("KAMEN_HTTPS") == "1"
        self.SESSION_COOKIE_SECURE = self.HTTPS
        self.REMEMBER_COOKIE_SECURE = self.HTTPS
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_DURATION = timedelta(days=30)
        # The built-in 易支付 demo gateway (/demopay/, docs/epay.md): off unless
        # KAMEN_DEMO_GATEWAY=1. One merchant; its key is generated once into
        # instance/ when not given, like the SECRET_KEY.
        self.DEMO_GATEWAY = env.get("KAMEN_DEMO_GATEWAY") == "1"
        self.DEMO_GATEWAY_PID = env.get("KAMEN_DEMO_GATEWAY_PID", "1001")
        self.DEMO_GATEWAY_KEY = env.get("KAMEN_DEMO_GATEWAY_KEY") or None
        # Its address as buyers and merchants reach it (mapi.php's payurl);
        # empty: the address each request came in on.
        self.DEMO_GATEWAY_URL = env.get("KAMEN_DEMO_GATEWAY_URL", "")
        # The shop's own address as suppliers reach it (order callbacks sent from jobs,
        # which have no request to take it from); empty: callbacks are only known
        # inside a request, and results come by polling.
        self.PUBLIC_URL = env.get("KAMEN_PUBLIC_URL", "")
        # Seconds to wait for a supplier's answer to an order or query (then: result unknown, query later).
        self.FORWARD_TIMEOUT_SECONDS = float(env.get("KAMEN_FORWARD_TIMEOUT", "10"))
        # Set by the job worker for the app it builds (jobs/context.py): it serves no
        # pages, so it skips the job view (rq-dashboard, about 10 MiB a worker).
        self.WORKER = False
        for key, value in (overrides or {}).items():
            setattr(self, key, value)
        if not self.SECRET_KEY:
            if self.PRODUCTION:
                raise ConfigError(MISSING_SECRET_KEY)
            self.SECRET_KEY = _instance_secret(instance_path)
        if self.DEMO_GATEWAY and not self.DEMO_GATEWAY_KEY:
            self.DEMO_GATEWAY_KEY = _instance_secret(instance_path, "demo_gateway_key", 16)


def _normalize_db_url(url):
    """Accept the URL forms hosting panels hand out; always use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _instance_secret(instance_path, name="secret_key", nbytes=32):
    """A per-install secret kept under instance/, so sessions survive restarts."""
    path = Path(instance_path) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()

