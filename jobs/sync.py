"""Supplier sync jobs: one run, and the per-minute dispatcher the schedule calls."""
from datetime import datetime, timezone

from jobs.context import app_context
from kamen.extensions import db
from kamen.services import syncing
from kamen.services.sync_dispatch import dispatch_due
from kamen.timeutil import shop_zone


def sync_supplier(run_id):
    with app_context():
        run = syncing.run_sync(db.session, run_id)
        return None if run is None else run.status


def dispatch_due_syncs():
    """Every minute: queue the syncs whose interval or nightly time has come,
    and remind admins to re-check manual suppliers."""
    with app_context():
        now = datetime.now(timezone.utc)
        return dispatch_due(db.session, now.astimezone(shop_zone()).replace(tzinfo=None), now.replace(tzinfo=None))
