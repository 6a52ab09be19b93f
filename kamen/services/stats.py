"""Numbers for the back-office dashboard, in one query."""
import sqlalchemy as sa

from kamen.models import Product, StockMode


def catalog_stats(session, default_threshold):
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
