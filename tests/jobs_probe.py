"""A job for tests of the worker class: did the horse find the app already built?"""


def app_was_preloaded():
    import jobs.context

    return jobs.context._app is not None


def busy_for(seconds):
    """A job that keeps its worker busy (and silent in the horse) for ``seconds``."""
    import time

    time.sleep(seconds)
    return seconds


def fails():
    """A job that raises at once."""
    raise RuntimeError("probe failure")


def import_helpers(batch_id):
    """How many processes would stage this batch, asked in a work horse."""
    from jobs.context import app_context
    from kamen.extensions import db
    from kamen.models import ImportBatch
    from kamen.services.importing import staging

    with app_context():
        batch = db.session.get(ImportBatch, batch_id)
        return staging._helpers(db.session, staging._Context(db.session, batch))
