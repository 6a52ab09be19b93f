"""Callbacks to 分站 about their orders' final state: one attempt, and the due sweep."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import station_orders


def notify_station(order_id):
    with app_context():
        return station_orders.deliver_callback(db.session, order_id)


def enqueue_due_callbacks():
    """From the per-minute tick: a job per station order whose callback is due."""
    with app_context():
        return station_orders.enqueue_due(db.session)
