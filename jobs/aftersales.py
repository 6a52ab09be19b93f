"""After-sales jobs: forward a ticket to a kamen 主站, call a 分站 back, and the per-minute
overdue alerts (forwards and callbacks due a retry are the sweeper's)."""
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
    """From jobs.tick.every_minute: one alert per ticket per deadline passed."""
    with app_context():
        return aftersales.alert_overdue(db.session)
