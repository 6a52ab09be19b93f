"""Import jobs: read the header, stage the rows, commit; and the scheduled-commit tick."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services.importing import batches


def analyze_import(batch_id):
    with app_context():
        return batches.run_step(db.session, batch_id, "analyze").status


def stage_import(batch_id):
    with app_context():
        return batches.run_step(db.session, batch_id, "stage").status


def commit_import(batch_id):
    with app_context():
        return batches.run_step(db.session, batch_id, "commit").status


def process_automated_import(batch_id):
    """An import sent by a script (HTTP API): no preview, the batch's options decide."""
    with app_context():
        return batches.run_step(db.session, batch_id, "auto").status


def dispatch_scheduled_imports():
    """Every minute: commit the batches whose chosen quiet hour has come."""
    with app_context():
        return batches.commit_due(db.session)
