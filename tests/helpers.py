"""Small factories and test-client helpers (CTFd style)."""
import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from kamen.extensions import db
from kamen.models import Category, DeliveryType, Product, StockMode
from kamen.services.auth import create_admin
from kamen.services.suppliers import default_supplier

ROOT = Path(__file__).resolve().parent.parent
ADMIN_USER = "boss"
ADMIN_PASSWORD = "correct-horse-42"


class CSRFClient(FlaskClient):
    """Adds a valid CSRF token to form posts, exactly as flask-wtf makes one,
    so tests go through the real CSRF check. Pass ``csrf=False`` to omit it."""

    def csrf_token(self):
        with self.session_transaction() as sess:
            if "csrf_token" not in sess:
                sess["csrf_token"] = hashlib.sha1(os.urandom(64)).hexdigest()
            raw = sess["csrf_token"]
        return URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token").dumps(raw)

    def post(self, *args, csrf=True, htmx=False, **kwargs):
        if csrf:
            data = dict(kwargs.get("data") or {})
            data.setdefault("csrf_token", self.csrf_token())
            kwargs["data"] = data
        if htmx:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "HX-Request": "true"}
        return super().post(*args, **kwargs)

    def hx_get(self, *args, **kwargs):
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "HX-Request": "true"}
        return self.get(*args, **kwargs)


class AuthActions:
    def __init__(self, client, app):
        self.client = client
        self.app = app

    def create(self, username=ADMIN_USER, password=ADMIN_PASSWORD):
        create_admin(db.session, username, password)

    def login(self, username=ADMIN_USER, password=ADMIN_PASSWORD, create=True):
        if create:
            self.create(username, password)
        return self.client.post("/admin/login", data={"username": username, "password": password})

    def logout(self):
        return self.client.post("/admin/logout")


def make_category(name="游戏点卡", parent=None, **kwargs):
    category = Category(name=name, parent_id=parent.id if parent else None, **kwargs)
    db.session.add(category)
    db.session.commit()
    return category


_counter = iter(range(1, 10**9))


def _new_product(category=None, **kwargs):
    n = next(_counter)
    values = {
        "supplier_id": default_supplier(db.session).id,
        "code": f"P{n:05d}",
        "name": f"测试商品 {n}",
        "category_id": category.id if category else None,
        "cost_price": Decimal("9.00"),
        "sale_price": Decimal("10.00"),
        "stock_mode": StockMode.SYNCED,
        "stock": 100,
        "delivery_type": DeliveryType.CARD,
    }
    values.update(kwargs)
    return Product(**values)


def make_product(category=None, **kwargs):
    product = _new_product(category, **kwargs)
    db.session.add(product)
    db.session.commit()
    return product


def make_products(count, category=None, **kwargs):
    products = [_new_product(category, **kwargs) for _ in range(count)]
    db.session.add_all(products)
    db.session.commit()
    return products


def worker_env(app, db_url, redis_url, queue_name, **env):
    """The environment of an `rq worker` process for the test's database, with
    the app's secret and instance folder (``env``: more settings)."""
    return {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "KAMEN_JOB_QUEUE": queue_name,
            "SECRET_KEY": app.config["SECRET_KEY"], "KAMEN_INSTANCE_PATH": app.instance_path, **env}


def rq_command():
    return str(Path(sys.executable).with_name("rq"))


def burst_worker(app, db_url, redis_url, queue_name, timeout=120, **env):
    """Run a real `rq worker --burst` (the worker class production runs) on ``queue_name``
    until the queue is empty."""
    return subprocess.run([rq_command(), "worker", "--burst", "-w", "jobs.worker.AppWorker", "--url", redis_url, queue_name],
                          cwd=ROOT, env=worker_env(app, db_url, redis_url, queue_name, **env),
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def gunicorn_server(db_url, tmp_path, workers=2, threads=1, secret_key="test-secret"):
    """``wsgi:app`` under a real gunicorn on a free port, on the given database; yields its base URL."""
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": secret_key,
           "KAMEN_INSTANCE_PATH": str(tmp_path / "gunicorn-instance")}
    env.pop("REDIS_URL", None)
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
         "-b", f"127.0.0.1:{port}", "--error-logfile", str(log), "wsgi:app"],
        cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/admin/login", timeout=5)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _FormReader(HTMLParser):
    """The fields of every form with method="post", as a browser would submit them."""

    def __init__(self):
        super().__init__()
        self.forms, self._form = [], None
        self._select = self._textarea = None
        self._options = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = {}
            self.forms.append(self._form)
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self._form[name] = a.get("value", "on" if a.get("type") in ("checkbox", "radio") else "")
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select:
            self._options.append(a.get("value", ""))
            if "selected" in a:
                self._form[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self._form[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self._form[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            self._form.setdefault(self._select, self._options[0] if self._options else "")
            self._select = None
        elif tag == "textarea" and self._textarea:
            self._form[self._textarea] = self._form[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "form":
            self._form = None


def form_values(html):
    """The page's main POST form (the one with most fields), as a browser would send it unchanged."""
    reader = _FormReader()
    reader.feed(html)
    return max(reader.forms, key=len, default={})
