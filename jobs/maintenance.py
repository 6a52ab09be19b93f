"""Housekeeping jobs run by the schedule."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import auth, sweeper
from kamen.services.importing import housekeeping


def purge_login_attempts(older_than_days=30):
    with app_context():
        return auth.purge_login_attempts(db.session, older_than_days)


def sweep_jobs():
    """Every minute: resume or fail the rows whose job died, was lost or never reached the queue."""
    with app_context():
        swept = sweeper.sweep(db.session)
        return {"enqueued": swept.enqueued, "failed": swept.failed}


def purge_old_imports():
    """Nightly: delete old uploads and staged rows (batch reports keep their totals)."""
    with app_context():
        return housekeeping.purge_old_imports(db.session)
