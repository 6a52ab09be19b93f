"""易支付 demo gateway jobs: one notify attempt, and the retry sweep."""
from flask import current_app

from jobs.context import app_context
from kamen.extensions import db
from kamen.services import demopay


def deliver_notify(trade_id, attempt):
    with app_context():
        return demopay.deliver_notify(db.session, trade_id, attempt, demopay.configured_merchant())


def retry_notifies():
    """Every minute: the next attempt of each notify whose backoff has passed."""
    with app_context():
        if not current_app.config["DEMO_GATEWAY"]:
            return 0
        return demopay.retry_due_notifies(db.session)
