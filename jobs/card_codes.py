"""Card-code files (卡密) read in the background, off the web request."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import card_codes


def read_card_codes(job_id):
    with app_context():
        return card_codes.read_queued(db.session, job_id).status
