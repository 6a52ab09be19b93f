from datetime import datetime

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import LoginAttempt
from kamen.services.auth import purge_login_attempts
from tests.helpers import ADMIN_PASSWORD, ADMIN_USER


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
