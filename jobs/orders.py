"""Order jobs: expire unpaid orders, ask the gateway about lost notifies."""
from jobs.context import app_context
from kamen import queue
from kamen.extensions import db
from kamen.services import ordering, payments


def expire_orders():
    with app_context():
        return ordering.expire_due(db.session)


def query_payments():
    with app_context():
        return payments.query_due(db.session)


def enqueue_payment_queries():
    """From the per-minute tick: the gateway queries run as their own job."""
    return queue.enqueue("jobs.orders.query_payments")
