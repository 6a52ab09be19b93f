"""一键代发 jobs: place a paid order with its supplier; poll open supplier orders."""
from jobs.context import app_context
from kamen import queue
from kamen.extensions import db
from kamen.services import forwarding


def forward_order(order_id):
    with app_context():
        attempt = forwarding.run_job(db.session, order_id)
        return None if attempt is None else attempt.status.value


def poll_orders():
    with app_context():
        return forwarding.poll_due(db.session)


def enqueue_polls():
    """From the per-minute tick: polling suppliers runs as its own job (a slow supplier must not hold the tick)."""
    return queue.enqueue("jobs.forwarding.poll_orders")
