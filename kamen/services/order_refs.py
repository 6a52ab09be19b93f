"""Rows that orders point at (payment channels, coupons): deleted only while no order uses them."""
import sqlalchemy as sa

from kamen.models import Order


def delete_unless_ordered(session, model, row_id, order_column):
    """One ``DELETE … WHERE NOT EXISTS`` (an order whose ``order_column`` is the row);
    the foreign key refuses an order that starts using it meanwhile. Commits when
    deleted; False (rolled back) when an order uses the row."""
    used = sa.select(Order.id).where(order_column == row_id).exists()
    try:
        deleted = session.execute(
            sa.delete(model).where(model.id == row_id, ~used).execution_options(synchronize_session=False)
        ).rowcount
        if deleted:
            session.commit()
            return True
    except sa.exc.IntegrityError:
        pass
    session.rollback()
    return False
