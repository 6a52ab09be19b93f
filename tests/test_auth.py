from datetime import datetime

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import LoginAttempt
from kamen.services.auth import purge_login_attempts
from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, gunicorn_server


def test_admin_pages_require_login(client):
    response = client.get("/admin/products")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_login_and_logout(client, auth):
    response = auth.login()
    assert response.status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert "概览" in page and ADMIN_USER in page
    auth.logout()
    assert client.get("/admin/").status_code == 302


def test_wrong_password_is_refused_in_chinese(client, auth):
    auth.create()
    response = client.post("/admin/login", data={"username": ADMIN_USER, "password": "nope-nope"})
    assert response.status_code == 400
    assert "用户名或密码错误" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_is_rate_limited_even_with_the_right_password(client, auth, app):
    auth.create()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/admin/login", data={"username": ADMIN_USER, "password": "wrong-password"})
    response = client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert "登录失败次数过多" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_post_without_csrf_token_is_refused(client, auth):
    auth.create()
    response = client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True)


def test_next_parameter_never_redirects_off_site(client, auth):
    auth.create()
    response = client.post(
        "/admin/login?next=//evil.example/x", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
    )
    assert response.headers["Location"] == "/admin/"
    auth.logout()
    response = client.post(
        "/admin/login?next=/admin/categories", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
    )
    assert response.headers["Location"] == "/admin/categories"


def test_create_admin_cli_prints_a_one_time_password(runner, client):
    result = runner.invoke(args=["create-admin", "owner"])
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1].split("：")[-1]
    assert len(password) >= 12
    response = client.post("/admin/login", data={"username": "owner", "password": password})
    assert response.status_code == 302


def test_create_admin_cli_refuses_short_password(runner):
    result = runner.invoke(args=["create-admin", "owner", "--password", "short"])
    assert result.exit_code != 0
    assert "密码至少 8 位" in result.output


def test_purge_login_attempts_keeps_recent_ones(app, auth, client):
    auth.create()
    client.post("/admin/login", data={"username": ADMIN_USER, "password": "bad-password"})
    db.session.add(LoginAttempt(username="old", ip="1.1.1.1", succeeded=False, at=datetime(2020, 1, 1)))
    db.session.commit()
    assert purge_login_attempts(db.session, older_than_days=30) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 1


def test_behind_a_proxy_the_rate_limit_counts_the_client_address(app, tmp_path, db_url):
    from kamen import create_app
    from tests.helpers import CSRFClient

    proxied = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "x", "PROXY_COUNT": 1,
                          "INSTANCE_PATH": str(tmp_path / "proxy")})  # same database as ``app``
    proxied.test_client_class = CSRFClient
    with proxied.app_context():
        client = proxied.test_client()
        for n in range(6):  # six different customers, one bad password each, all through nginx
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            client.post("/admin/login", data={"username": f"user{n}", "password": "bad-password"}, headers=headers)
        ips = {a.ip for a in db.session.scalars(sa.select(LoginAttempt))}
        assert ips == {f"203.0.113.{n}" for n in range(6)}
        db.session.remove()
        db.engine.dispose()


def _login_burst(base, attempts, password="wrong-password"):
    """``attempts`` browsers post a login at the same instant; returns each page's text."""
    import re
    import threading

    import requests

    sessions = []
    for _ in range(attempts):
        s = requests.Session()
        page = s.get(f"{base}/admin/login", timeout=30).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        sessions.append((s, token))
    barrier = threading.Barrier(attempts)
    pages = [None] * attempts

    def attempt(n):
        s, token = sessions[n]
        barrier.wait()
        data = {"username": ADMIN_USER, "password": password, "csrf_token": token}
        pages[n] = s.post(f"{base}/admin/login", data=data, timeout=60, allow_redirects=False).text

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return pages


def _checked(pages):
    """How many of these attempts reached the password check (the rest were refused unchecked)."""
    checked = sum("用户名或密码错误" in p for p in pages)
    assert checked + sum("登录失败次数过多" in p for p in pages) == len(pages)
    return checked


def _assert_five_checks_in_all(base, burst_checked):
    """A burst may refuse more than it must, never fewer; one by one the count then reaches exactly five."""
    assert 1 <= burst_checked <= 5, f"{burst_checked} passwords were checked"
    later = sum(_checked(_login_burst(base, 1)) for _ in range(6))
    assert burst_checked + later == 5
    assert _checked(_login_burst(base, 1, ADMIN_PASSWORD)) == 0  # locked, even for the right password


def test_parallel_wrong_passwords_get_at_most_five_checks(app, auth, live_server):
    """Real threads against a real threaded server, on SQLite and PostgreSQL."""
    auth.create()
    _assert_five_checks_in_all(live_server, _checked(_login_burst(live_server, 20)))


@pytest.mark.backends("postgresql")
def test_parallel_wrong_passwords_across_gunicorn_workers(app, auth, db_url, tmp_path):
    auth.create()
    with gunicorn_server(db_url, tmp_path, workers=4, threads=5) as base:
        _assert_five_checks_in_all(base, _checked(_login_burst(base, 20)))
