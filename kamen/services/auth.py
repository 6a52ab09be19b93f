"""Admin accounts: argon2 password hashes, rate-limited logins, and the
session version that voids every session and remember-me cookie of an
account when its password changes or it is deactivated."""
import secrets
from datetime import timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kamen.models import AdminUser, LoginAttempt
from kamen.timeutil import utcnow

_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(8))


MIN_PASSWORD_LENGTH = 8


class LoginRefused(Exception):
    """str(error) is the message shown on the login page."""


class AccountInvalid(ValueError):
    """str(error) is the message shown to the admin; ``field`` the input it is about."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def hash_password(password):
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountInvalid(f"密码至少 {MIN_PASSWORD_LENGTH} 位", field="new_password")
    return _hasher.hash(password)


def create_admin(session, username, password=None):
    """Create (or reset the password of) an admin; returns (user, password).

    A reset logs the account out everywhere."""
    password = password or secrets.token_urlsafe(12)
    password_hash = hash_password(password)
    user = session.scalar(sa.select(AdminUser).filter_by(username=username))
    if user is None:
        user = AdminUser(username=username, password_hash="")
        session.add(user)
    else:
        _bump_session_version(session, user)
    user.password_hash = password_hash
    session.commit()
    return user, password


def add_admin(session, username):
    """A new admin from the back office, with a one-time password shown once; returns (user, password)."""
    username = (username or "").strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise AccountInvalid("用户名需为 1–64 个字符，不能含空格")
    if session.scalar(sa.select(AdminUser.id).filter_by(username=username)) is not None:
        raise AccountInvalid(f"用户名“{username}”已存在")
    return create_admin(session, username)


def change_password(session, user, current, new, ip, *, max_failures, lock_minutes):
    """The admin's own password; every other session and remember-me cookie dies.

    Checking the current password counts against the login limit, so a
    borrowed session cannot be used to guess it."""
    if new == current:
        raise AccountInvalid("新密码不能与当前密码相同", field="new_password")
    new_hash = hash_password(new)
    try:
        attempt = _take_attempt(session, user.username, ip, max_failures=max_failures, lock_minutes=lock_minutes)
    except LoginRefused as exc:
        raise AccountInvalid(str(exc), field="current_password") from exc
    if not _verify(user.password_hash, current):
        raise AccountInvalid("当前密码不正确", field="current_password")
    attempt.succeeded = True
    user.password_hash = new_hash
    _bump_session_version(session, user)
    session.commit()


def reset_password(session, actor, user_id):
    """A one-time password for another admin who forgot theirs; logs them out
    everywhere. Returns (user, password)."""
    if user_id == actor.id:
        raise AccountInvalid("修改自己的密码请用“修改密码”")
    user = session.get(AdminUser, user_id)
    if user is None:
        raise AccountInvalid("没有这个管理员")
    return create_admin(session, user.username)


def set_active(session, actor, user_id, active):
    """Deactivate (logging out everywhere) or reactivate an admin; never yourself.
    Returns True when it changed."""
    if user_id == actor.id:
        raise AccountInvalid("不能停用或启用自己的账号")
    values = {"active": active}
    if not active:
        values["session_version"] = AdminUser.session_version + 1
    changed = session.execute(
        sa.update(AdminUser)
        .where(AdminUser.id == user_id, AdminUser.active.is_(not active))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.commit()
    return changed


def load_session_user(session, session_id):
    """The admin a session or remember-me cookie names, if that login is still valid."""
    user_id, _, version = str(session_id).partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None  # a cookie from before session versions
    user = session.get(AdminUser, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def _bump_session_version(session, user):
    session.execute(
        sa.update(AdminUser)
        .where(AdminUser.id == user.id)
        .values(session_version=AdminUser.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.expire(user, ["session_version"])


def authenticate(session, username, password, ip, *, max_failures, lock_minutes):
    """Return the user or raise LoginRefused; every checked attempt is recorded."""
    attempt = _take_attempt(session, username, ip, max_failures=max_failures, lock_minutes=lock_minutes)
    user = session.scalar(sa.select(AdminUser).filter_by(username=username))
    ok = _verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    ok = ok and user.is_active
    if not ok:
        raise LoginRefused("用户名或密码错误。")
    attempt.succeeded = True
    user.last_login_at = utcnow()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.commit()
    return user


def _take_attempt(session, username, ip, *, max_failures, lock_minutes):
    """Record a password check about to happen (as a failure, until it succeeds),
    or raise LoginRefused when the IP or username has used up its checks.

    The attempt is committed *before* the failures are counted, so parallel
    requests see each other: the n-th committed attempt counts at least n rows,
    and at most ``max_failures`` of any burst reach the password check. A
    refused attempt removes its row again, so the lock ends ``lock_minutes``
    after the last checked password."""
    username, ip = username[:64], ip[:45]
    attempt = LoginAttempt(username=username, ip=ip, succeeded=False)
    session.add(attempt)
    session.commit()
    since = utcnow() - timedelta(minutes=lock_minutes)
    failures = session.scalar(
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.at >= since,
            sa.or_(LoginAttempt.ip == ip, LoginAttempt.username == username),
        )
    )
    if failures > max_failures:
        session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
        session.commit()
        raise LoginRefused(f"登录失败次数过多，请 {lock_minutes} 分钟后再试。")
    return attempt


def purge_login_attempts(session, older_than_days=30):
    """Drop old attempt records; returns how many were removed."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    result = session.execute(sa.delete(LoginAttempt).where(LoginAttempt.at < cutoff))
    session.commit()
    return result.rowcount


def _verify(password_hash, password):
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
