"""Status changes as one conditional UPDATE.

Reading a row, checking its status and writing the new one lets two workers
(a double click, a retried job, a callback racing a poll) both "win". Every
status change goes through :func:`transition` instead: the database decides,
and exactly one caller sees ``True``.
"""
import sqlalchemy as sa


def transition(session, model, row_id, expected, new_status, **values):
    """Move row ``row_id`` of ``model`` from one of the ``expected`` statuses
    (a value or an iterable of values) to ``new_status``, setting ``values``
    too, in one ``UPDATE … WHERE id = :id AND status IN (…)``.

    Returns True when this call made the change. The caller commits.
    """
    if isinstance(expected, str) or not hasattr(expected, "__iter__"):
        expected = [expected]
    stmt = (
        sa.update(model)
        .where(model.id == row_id, model.status.in_(list(expected)))
        .values(status=new_status, **values)
        .execution_options(synchronize_session=False)
    )
    changed = session.execute(stmt).rowcount == 1
    if changed:
        # Objects already loaded in this session must not keep the old status.
        obj = session.identity_map.get(sa.inspect(model).identity_key_from_primary_key((row_id,)))
        if obj is not None:
            session.expire(obj)
    return changed
