"""After-sales jobs: forward a ticket to a kamen 主站, call a 分站 back, and the per-minute step."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import aftersales, ticket_forwarding


def forward_ticket(ticket_id):
    with app_context():
        return ticket_forwarding.forward(db.session, ticket_id)


def notify_station(ticket_id):
    with app_context():
        return ticket_forwarding.notify_station(db.session, ticket_id)


def tick():
    """From jobs.tick.every_minute: overdue alerts, then forwards and callbacks due a retry."""
    with app_context():
        alerted = aftersales.alert_overdue(db.session)
        return len(alerted), ticket_forwarding.dispatch_due(db.session)
