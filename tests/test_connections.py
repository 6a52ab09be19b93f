"""A PostgreSQL backend terminated under a real gunicorn costs the shop no 500."""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from tests.helpers import make_category, make_product

BIN = Path(sys.executable).parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.backends("postgresql")
def test_terminating_backends_under_load_costs_no_500(app, db_url, tmp_path):
    category = make_category("话费充值")
    product = make_product(category)
    app_name = f"kamen-web-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "x", "PGAPPNAME": app_name,
           "KAMEN_INSTANCE_PATH": str(tmp_path / "web"), "KAMEN_SHOP_CACHE_SECONDS": "0"}
    server = subprocess.Popen([str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--error-logfile",
                               str(log), "kamen.wsgi:app"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    pages = [f"{base}/", f"{base}/c/{category.id}", f"{base}/p/{product.id}"]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(pages[0]) == 200
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)

        statuses, stop = [], threading.Event()

        def load():  # a small bounded load: 3 clients back to back
            while not stop.is_set():
                for page in pages:
                    statuses.append(_get(page))

        clients = [threading.Thread(target=load) for _ in range(3)]
        for t in clients:
            t.start()
        terminated = 0
        killer = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
        try:
            start = time.monotonic()  # at least 8 s and 150 requests, however busy the machine is
            with killer.connect() as conn:
                while time.monotonic() - start < 8 or (len(statuses) < 150 and time.monotonic() - start < 60):
                    terminated += len(conn.execute(sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
                    ), {"name": app_name}).all())
                    time.sleep(0.25)
        finally:
            stop.set()
            for t in clients:
                t.join(30)
            killer.dispose()
    finally:
        server.terminate()
        server.wait(20)
    served = {code: statuses.count(code) for code in set(statuses)}
    assert terminated >= 20, (terminated, served)
    assert served.get(200, 0) >= 100 and set(served) == {200}, (served, log.read_text()[-3000:])
    db.session.rollback()


@pytest.mark.backends("postgresql")
def test_a_post_after_the_database_dropped_idle_connections_succeeds(app, client, auth, db_url):
    """Form posts are not retried; they never meet a dead pooled connection either."""
    auth.login()
    assert client.get("/admin/").status_code == 200
    pooled = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    db.session.commit()
    killer = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with killer.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled}).scalar()
    killer.dispose()
    time.sleep(0.2)
    response = client.post("/admin/notifications/read")
    assert response.status_code == 302
    assert db.session.scalar(sa.text("SELECT pg_backend_pid()")) != pooled
