"""Housekeeping jobs run by the schedule."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import auth


def purge_login_attempts(older_than_days=30):
    with app_context():
        return auth.purge_login_attempts(db.session, older_than_days)
