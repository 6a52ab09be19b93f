"""查单 and order links: who may see an order (and its card codes).

A buyer sees an order from the browser that created it, from a signed
expiring link (the order page offers one), or by 查单 with the order number
and the contact (or the 查单密码 when one was set). A wrong answer never tells
whether the order exists, and failures are throttled per IP.
"""
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from kamen.models import LookupAttempt
from kamen.services import ordering
from kamen.services.ordering import now

NOT_FOUND = "没有找到匹配的订单，请核对订单号和联系方式（或查单密码）"


class LookupRefused(Exception):
    """str() is the message shown on the 查单 page."""


def _serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="kamen-order-link")


def link_token(order_no):
    return _serializer().dumps(order_no)


def order_no_from_token(token):
    """The order number a link token grants, or None (forged or expired)."""
    max_age = current_app.config["ORDER_LINK_DAYS"] * 86400
    try:
        value = _serializer().loads(token or "", max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    return value if isinstance(value, str) else None


def find(session, order_no, secret, ip):
    """The order for a 查单, or LookupRefused (throttled, or no match — the same words either way)."""
    ip = (ip or "-")[:45]
    lock = current_app.config["LOOKUP_LOCK_MINUTES"]
    failures = session.scalar(
        sa.select(sa.func.count()).select_from(LookupAttempt).where(
            LookupAttempt.ip == ip, LookupAttempt.succeeded.is_(False),
            LookupAttempt.at >= now() - timedelta(minutes=lock),
        )
    )
    if failures >= current_app.config["LOOKUP_MAX_FAILURES"]:
        raise LookupRefused(f"查询次数过多，请 {lock} 分钟后再试")
    order = ordering.by_number(session, (order_no or "").strip().upper())
    ok = order is not None and ordering.check_lookup_secret(order, secret)
    if order is None or not order.lookup_password_hash:  # one password hash either way: timing tells nothing
        ordering.check_lookup_secret(_DUMMY, secret)
    session.add(LookupAttempt(ip=ip, succeeded=ok, at=now()))
    session.commit()
    if not ok:
        raise LookupRefused(NOT_FOUND)
    return order


class _Dummy:
    lookup_password_hash = ordering._hasher.hash("kamen-dummy")
    contact = ""


_DUMMY = _Dummy()
