"""The back-office home: catalog numbers, unread notifications, suppliers to re-check."""
from dataclasses import dataclass

import sqlalchemy as sa

from kamen.models import Notification, Product, StockMode, Supplier
from kamen.services.syncing import overdue_manual_suppliers
from kamen.timeutil import utcnow

UNREAD_SHOWN = 20


@dataclass
class Dashboard:
    stats: dict  # total, listed, low, out
    notes: list[Notification]  # newest unread first
    recheck: list[Supplier]  # manual suppliers whose stock is due a check


def dashboard(session, default_threshold):
    return Dashboard(
        stats=catalog_stats(session, default_threshold),
        notes=unread_notifications(session),
        recheck=overdue_manual_suppliers(session, utcnow()),
    )


def catalog_stats(session, default_threshold):
    """Products, listed, low and out of stock, in one query."""
    tracked = Product.stock_mode != StockMode.UNLIMITED
    threshold = sa.func.coalesce(Product.low_stock_threshold, default_threshold)
    listed = Product.is_listed.is_(True)
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(listed),
            sa.func.count().filter(listed, tracked, Product.stock > 0, Product.stock <= threshold),
            sa.func.count().filter(listed, tracked, Product.stock == 0),
        ).select_from(Product)
    ).one()
    return dict(zip(("total", "listed", "low", "out"), row))


def unread_notifications(session, limit=UNREAD_SHOWN):
    return session.scalars(
        sa.select(Notification).where(Notification.read_at.is_(None)).order_by(Notification.id.desc()).limit(limit)
    ).all()


def mark_all_read(session):
    session.execute(sa.update(Notification).where(Notification.read_at.is_(None)).values(read_at=utcnow()))
    session.commit()
