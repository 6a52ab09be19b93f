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
    "housekeeping": {
        "import_keep_days": 30,  # uploaded price lists and staged rows are deleted after this
    },
}


def get(session, key):
    row = session.get(Setting, key)
    return {**DEFAULTS.get(key, {}), **(row.value if row else {})}


def low_stock_threshold(session):
    """The shop-wide 库存预警 threshold (告警设置), for products without their own."""
    from flask import current_app

    stored = get(session, "alerts").get("low_stock_threshold")
    return current_app.config["LOW_STOCK_THRESHOLD"] if stored is None else stored


def put(session, key, value):
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    session.commit()
