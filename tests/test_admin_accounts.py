"""Admin accounts: remember-me, session versions, own password, adding and deactivating admins."""
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import AdminUser
from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, AuthActions

NEW_PASSWORD = "battery-staple-77"


@pytest.fixture(autouse=True)
def login_loaded_per_request(app):
    """The test's app context (and so ``g``) is shared by every request here, and
    flask-login keeps the loaded user in ``g``; in production each request has its
    own. Forget it at each request start, so every request loads its own login."""
    from flask import g, request_started

    def forget(_sender, **_extra):
        g.pop("_login_user", None)

    request_started.connect(forget, app)
    yield
    request_started.disconnect(forget, app)


@pytest.fixture
def browser(app, client):
    """Another browser (its own cookies, CSRF-aware like ``client``) on the same shop."""

    def open_browser():
        return app.test_client()

    return open_browser


def _logged_in(client):
    return client.get("/admin/").status_code == 200


def _remember_only(browser, source):
    """A browser holding nothing but ``source``'s remember-me cookie (its session cookie has expired)."""
    other = browser()
    other.set_cookie("remember_token", source.get_cookie("remember_token").value)
    return other


@pytest.fixture
def clerk(auth, browser):
    """Logged in as the admin; a second admin, "clerk", logged in with 保持登录 in another browser.
    Returns (clerk's browser, a browser with only clerk's remember-me cookie, clerk's id)."""
    auth.login()
    auth.create("clerk", NEW_PASSWORD)
    clerk = browser()
    clerk.post("/admin/login", data={"username": "clerk", "password": NEW_PASSWORD, "remember": "y"})
    remembered = _remember_only(browser, clerk)
    assert _logged_in(clerk) and _logged_in(remembered)
    return clerk, remembered, _user("clerk").id


def _one_time_password(page):
    return page.split('<p class="secret-once">')[1].split("</p>")[0]


def _user(username=ADMIN_USER):
    db.session.expire_all()
    return db.session.scalar(sa.select(AdminUser).filter_by(username=username))


def test_remember_me_lasts_30_days_and_is_lax_httponly(client, auth, browser):
    auth.create()
    response = client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD,
                                                 "remember": "y"})
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")]
    attrs = {a.split("=")[0].strip().lower(): a.partition("=")[2] for a in cookie.split(";")[1:]}
    expires = parsedate_to_datetime(attrs["expires"])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=5)
    assert attrs["samesite"] == "Lax" and "httponly" in attrs and "secure" not in attrs  # plain HTTP here
    assert _logged_in(_remember_only(browser, client))
    # Without "保持登录" there is no remember cookie.
    other = browser()
    other.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert other.get_cookie("remember_token") is None


def test_password_reset_voids_sessions_and_remember_cookies(client, auth, browser, runner):
    auth.create()
    client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "remember": "y"})
    remembered = _remember_only(browser, client)
    assert _logged_in(client) and _logged_in(remembered)
    result = runner.invoke(args=["create-admin", ADMIN_USER, "--password", NEW_PASSWORD])
    assert result.exit_code == 0, result.output
    assert not _logged_in(client)
    assert not _logged_in(remembered)
    assert auth.login(password=NEW_PASSWORD, create=False).status_code == 302


def test_admin_changes_own_password_and_other_sessions_die(client, auth, browser):
    auth.login()
    phone = browser()
    AuthActions(phone, None).login(create=False)
    with_remember = browser()
    with_remember.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "remember": "y"})
    remembered = _remember_only(browser, with_remember)
    assert _logged_in(phone) and _logged_in(remembered)
    old_hash = _user().password_hash

    # Wrong current password, mismatched or short new one: a clear message, nothing changed.
    for data, message in [
        ({"current_password": "not-it-at-all", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
         "当前密码不正确"),
        ({"current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": "other-one-1"},
         "两次输入的新密码不一致"),
        ({"current_password": ADMIN_PASSWORD, "new_password": "short", "confirm_password": "short"},
         "新密码至少 8 位"),
    ]:
        response = client.post("/admin/account", data=data)
        assert response.status_code == 400 and message in response.get_data(as_text=True)
        assert _user().password_hash == old_hash and _logged_in(phone)

    response = client.post("/admin/account", data={"current_password": ADMIN_PASSWORD,
                                                  "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert response.status_code == 302
    assert "其他设备上的登录已全部退出" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _logged_in(client)  # this browser stays in
    assert not _logged_in(phone) and not _logged_in(remembered)
    assert auth.login(password=ADMIN_PASSWORD, create=False).status_code == 400
    assert auth.login(password=NEW_PASSWORD, create=False).status_code == 302


def test_add_an_admin_who_logs_in_with_the_one_time_password(client, auth, browser):
    auth.login()
    response = client.post("/admin/admins", data={"username": "clerk"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "管理员“clerk”已添加" in page
    password = _one_time_password(page)
    assert len(password) >= 12
    clerk = browser()
    assert AuthActions(clerk, None).login("clerk", password, create=False).status_code == 302
    assert _logged_in(clerk)

    for name, message in [("clerk", "用户名“clerk”已存在"), ("two words", "不能含空格"), ("", "请输入用户名")]:
        response = client.post("/admin/admins", data={"username": name})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminUser)) == 2


def test_deactivated_admin_is_logged_out_everywhere_and_cannot_log_in(client, browser, clerk):
    clerk, remembered, clerk_id = clerk
    response = client.post(f"/admin/admins/{clerk_id}/active", data={"active": "0"}, follow_redirects=True)
    assert "账号已停用" in response.get_data(as_text=True)
    assert not _user("clerk").active
    assert not _logged_in(clerk) and not _logged_in(remembered)
    refused = AuthActions(browser(), None)
    assert refused.login("clerk", NEW_PASSWORD, create=False).status_code == 400

    # Reactivated: logs in again, but the old cookies stay dead.
    client.post(f"/admin/admins/{clerk_id}/active", data={"active": "1"})
    assert not _logged_in(remembered)
    assert refused.login("clerk", NEW_PASSWORD, create=False).status_code == 302


def test_an_admin_cannot_deactivate_themselves(client, auth):
    auth.login()
    me = _user()
    response = client.post(f"/admin/admins/{me.id}/active", data={"active": "0"}, follow_redirects=True)
    assert "不能停用或启用自己的账号" in response.get_data(as_text=True)
    assert _user().active and _logged_in(client)


def test_a_session_cookie_from_before_session_versions_is_logged_out(client, auth):
    auth.login()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(_user().id)  # the old format: the bare id
    assert not _logged_in(client)


def test_reset_another_admins_password_in_the_back_office(client, browser, clerk):
    clerk, remembered, clerk_id = clerk
    response = client.post(f"/admin/admins/{clerk_id}/reset")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "“clerk”的密码已重置" in page
    one_time = _one_time_password(page)
    assert not _logged_in(clerk) and not _logged_in(remembered)
    again = AuthActions(browser(), None)
    assert again.login("clerk", NEW_PASSWORD, create=False).status_code == 400
    assert again.login("clerk", one_time, create=False).status_code == 302

    me = _user()
    response = client.post(f"/admin/admins/{me.id}/reset", follow_redirects=True)
    assert "修改自己的密码请用“修改密码”" in response.get_data(as_text=True)
    assert _logged_in(client)


def test_guessing_the_current_password_counts_against_the_login_limit(client, auth, app):
    auth.login()
    wrong = {"current_password": "guess-guess", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert "当前密码不正确" in client.post("/admin/account", data=wrong).get_data(as_text=True)
    right = {**wrong, "current_password": ADMIN_PASSWORD}
    response = client.post("/admin/account", data=right)
    assert response.status_code == 400 and "登录失败次数过多" in response.get_data(as_text=True)
    assert auth.login(password=ADMIN_PASSWORD, create=False).status_code == 400  # locked for logins too
