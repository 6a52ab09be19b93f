"""Housekeeping: old uploads and staged rows go; batch reports keep their totals.

A batch's staged rows (every cell of the admin's file, before-images) and its
uploaded file are only needed for the preview, the error file and undo. After
``import_keep_days`` (a setting, 30 by default) the nightly job deletes them;
the batch row stays with its totals, and says its details were cleared.
"""
import logging
from datetime import timedelta

import sqlalchemy as sa

from kamen.models import ImportBatch, ImportRow
from kamen.services import settings, uploads
from kamen.services.importing.staging import ImportInvalid
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.imports")

FINISHED = ("committed", "undone", "cancelled", "failed")
ABANDONED = ("mapping", "ready")  # never committed: cancelled when cleared


def keep_days(session):
    return int(settings.get(session, "housekeeping")["import_keep_days"])


def set_keep_days(session, text):
    """The admin's choice of how long import details are kept (1-3650 days)."""
    try:
        days = int(str(text).strip())
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise ImportInvalid("保留天数应为 1 到 3650 之间的整数")
    settings.put(session, "housekeeping", {**settings.get(session, "housekeeping"), "import_keep_days": days})
    return days


def purge_old_imports(session, now=None):
    """Clear the batches created more than ``keep_days`` ago; returns their ids."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days(session))
    ids = session.scalars(
        sa.select(ImportBatch.id).where(
            ImportBatch.created_at < cutoff, ImportBatch.purged_at.is_(None),
            ImportBatch.status.in_(FINISHED + ABANDONED),
        ).order_by(ImportBatch.id)
    ).all()
    purged = []
    for batch_id in ids:
        if _purge(session, batch_id):
            purged.append(batch_id)
    return purged


def _purge(session, batch_id):
    transition(session, ImportBatch, batch_id, ABANDONED, "cancelled", step=None,
               message="超过保留期限未提交，已取消")
    cleared = session.execute(
        sa.update(ImportBatch)
        .where(ImportBatch.id == batch_id, ImportBatch.purged_at.is_(None), ImportBatch.status.in_(FINISHED))
        .values(purged_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not cleared:  # picked up again since the query (a retry, a commit): leave it
        session.rollback()
        return False
    session.execute(sa.delete(ImportRow).where(ImportRow.batch_id == batch_id))
    batch = session.get(ImportBatch, batch_id)
    if batch.upload_id is not None:
        upload_id, batch.upload_id = batch.upload_id, None
        session.flush()
        uploads.delete(session, upload_id)
    session.commit()
    log.info("import batch %s: upload and staged rows cleared", batch_id)
    return True
