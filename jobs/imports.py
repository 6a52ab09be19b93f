"""Import jobs: read the header, stage the rows, commit; and the scheduled-commit tick."""
import sqlalchemy as sa

from jobs.context import app_context
from kamen.extensions import db
from kamen.models import ImportBatch
from kamen.services.importing import committing, staging
from kamen.timeutil import utcnow


def analyze_import(batch_id):
    with app_context():
        return staging.analyze(db.session, batch_id).status


def stage_import(batch_id):
    with app_context():
        return staging.stage(db.session, batch_id).status


def commit_import(batch_id):
    with app_context():
        return committing.commit_batch(db.session, batch_id).status


def process_automated_import(batch_id, options):
    """An import sent by a script (HTTP API): no preview, the options decide."""
    from kamen.services.importing import automation

    with app_context():
        return automation.process(db.session, batch_id, automation.AutoOptions(**options)).status


def dispatch_scheduled_imports():
    """Every minute: commit the batches whose chosen quiet hour has come."""
    from kamen import queue

    with app_context():
        due = db.session.scalars(
            sa.select(ImportBatch.id).where(ImportBatch.status == "scheduled", ImportBatch.scheduled_for <= utcnow())
        ).all()
        for batch_id in due:
            queue.enqueue("jobs.imports.commit_import", batch_id, job_id=f"kamen-import-commit-{batch_id}")
        return due
