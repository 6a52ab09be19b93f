"""API tokens for upload scripts: shown once, stored as a SHA-256 hash."""
import hashlib
import secrets

import sqlalchemy as sa

from kamen.models import ApiToken
from kamen.timeutil import utcnow

PREFIX = "kmt_"


def _hash(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session, name):
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name[:60] or "未命名", token_hash=_hash(secret))
    session.add(token)
    session.commit()
    return token, secret


def check_token(session, secret):
    """The token row for a presented secret, or None (and records its use)."""
    if not secret or not secret.startswith(PREFIX):
        return None
    token = session.scalar(sa.select(ApiToken).filter_by(token_hash=_hash(secret)))
    if token is not None:
        token.last_used_at = utcnow()
        session.commit()
    return token


def revoke(session, token_id):
    session.execute(sa.delete(ApiToken).where(ApiToken.id == token_id))
    session.commit()
