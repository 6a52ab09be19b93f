"""Run-time settings admins change in the back office (stored in the database)."""
from kamen.models import Setting

DEFAULTS = {
    "alerts": {
        "webhook_kind": "",  # "" | wecom | dingtalk
        "webhook_url": "",
        "dingtalk_secret": "",
        "email_to": "",
        "smtp_host": "",
        "smtp_port": 465,
        "smtp_user": "",
        "smtp_password": "",
        "smtp_ssl": True,
        "sync_failure_alert_after": 3,
        "low_stock_threshold": None,  # None: the deployment's default (KAMEN_LOW_STOCK_THRESHOLD)
    },
    "launch_test": {
        "keep_failed_unlisted": True,  # goods that fail 上线测试 are taken off sale
    },
    "forwarding": {
        # A supplier order with no result after this long: one alert, the order shows 结果未知.
        "unknown_alert_minutes": 30,
        # Oversold orders (no source could fill them): refunded, plus this apology coupon.
        "apology_coupon_amount": "5.00",
        "apology_coupon_days": 30,
        # Try a product's sources best-scored first (kamen.services.scorecards.ranking).
        "score_sources": False,
    },
    # 售后: who answers each ticket type, and the deadlines (hours) per type.
    "aftersales": {
        "responsibility": {"invalid_code": "supplier", "not_received": "supplier", "wrong_account": "buyer",
                           "other": "shop"},
        "first_hours": {"invalid_code": 2, "not_received": 2, "wrong_account": 2, "other": 4},
        "resolve_hours": {"invalid_code": 24, "not_received": 24, "wrong_account": 48, "other": 48},
        "coupon_days": 30,  # how long a compensation coupon stays valid
    },
    "housekeeping": {
        "import_keep_days": 30,  # uploaded price lists and staged rows are deleted after this
    },
}


def get(session, key):
    row = session.get(Setting, key)
    return {**DEFAULTS.get(key, {}), **(row.value if row else {})}


def low_stock_threshold(session):
    """The shop-wide 库存预警 threshold (告警设置), for products without their own."""
    return threshold_or_default(get(session, "alerts").get("low_stock_threshold"))


def threshold_or_default(stored):
    """A stored 库存预警默认阈值, or the deployment's default when none was set."""
    from flask import current_app

    return current_app.config["LOW_STOCK_THRESHOLD"] if stored is None else stored


def put(session, key, value):
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    session.commit()
