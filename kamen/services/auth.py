"""Admin accounts: argon2 password hashes and rate-limited logins."""
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


class LoginRefused(Exception):
    """str(error) is the message shown on the login page."""


def hash_password(password):
    return _hasher.hash(password)


def create_admin(session, username, password=None):
    """Create (or reset the password of) an admin; returns (user, password)."""
    password = password or secrets.token_urlsafe(12)
    if len(password) < 8:
        raise ValueError("密码至少 8 位")
    user = session.scalar(sa.select(AdminUser).filter_by(username=username))
    if user is None:
        user = AdminUser(username=username, password_hash="")
        session.add(user)
    user.password_hash = hash_password(password)
    session.commit()
    return user, password


def authenticate(session, username, password, ip, *, max_failures, lock_minutes):
    """Return the user or raise LoginRefused; every checked attempt is recorded.

    The attempt is written (as a failure) and committed *before* the failures
    are counted, so parallel requests see each other: the n-th committed
    attempt counts at least n rows, and at most ``max_failures`` of any burst
    ever reach the password check. A refused attempt removes its row again,
    so the lock ends ``lock_minutes`` after the last checked password."""
    username_key, ip = username[:64], ip[:45]
    attempt = LoginAttempt(username=username_key, ip=ip, succeeded=False)
    session.add(attempt)
    session.commit()
    since = utcnow() - timedelta(minutes=lock_minutes)
    failures = session.scalar(
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.at >= since,
            sa.or_(LoginAttempt.ip == ip, LoginAttempt.username == username_key),
        )
    )
    if failures > max_failures:
        session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
        session.commit()
        raise LoginRefused(f"登录失败次数过多，请 {lock_minutes} 分钟后再试。")

    user = session.scalar(sa.select(AdminUser).filter_by(username=username))
    ok = _verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    ok = ok and user.is_active
    if ok:
        attempt.succeeded = True
        user.last_login_at = utcnow()
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        session.commit()
    if not ok:
        raise LoginRefused("用户名或密码错误。")
    return user


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
