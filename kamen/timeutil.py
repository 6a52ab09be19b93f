"""Time: stored as naive UTC, shown and entered in the shop's time zone."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def shop_zone():
    return ZoneInfo(current_app.config["SHOP_TIMEZONE"])


def to_local(dt):
    """Naive UTC -> aware shop-local datetime (None stays None)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc).astimezone(shop_zone())


def from_local(dt):
    """Naive shop-local datetime (as typed by an admin) -> naive UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=shop_zone()).astimezone(timezone.utc).replace(tzinfo=None)
