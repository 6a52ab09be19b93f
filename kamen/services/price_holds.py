"""价格待确认: synced costs that jumped past a supplier's limit, waiting for an admin.

The sync (services/syncing.py) holds them; here the admin accepts (reprice
from the new cost by the supplier's markup rule) or rejects (keep the old
sale price: the new cost is recorded so the same price is not asked again,
and a product whose price no longer covers it stays off sale).
"""
import sqlalchemy as sa

from kamen.models import Product, StockMode
from kamen.services.pricing import price_problem
from kamen.services.suppliers import SupplierInvalid
from kamen.services.syncing import repriced
from kamen.timeutil import utcnow


def _held(supplier):
    return sa.and_(Product.supplier_id == supplier.id, Product.pending_cost.is_not(None))


def held_products(session, supplier):
    return session.scalars(sa.select(Product).where(_held(supplier)).order_by(Product.name, Product.id)).all()


def held_count(session, supplier):
    return session.scalar(sa.select(sa.func.count()).select_from(Product).where(_held(supplier)))


def resolve(session, supplier, ids, *, accept):
    """Accept or reject the held prices of these products (all of them when ``ids`` is None)."""
    stmt = sa.select(Product).where(_held(supplier))
    if ids is not None:
        ids = {int(i) for i in ids}
        if not ids:
            raise SupplierInvalid("请先勾选商品")
        stmt = stmt.where(Product.id.in_(ids))
    products = session.scalars(stmt.with_for_update()).all()
    if not products or (ids is not None and len(products) != len(ids)):
        session.rollback()
        raise SupplierInvalid("部分商品的待确认价格已处理或不存在，请刷新后重试")
    for product in products:
        cost = product.pending_cost
        if accept:
            values = repriced(supplier, product, cost)
        else:
            values = {"cost_price": cost}
            if price_problem(cost=cost, sale=None, promo=product.promo_price, min_margin=supplier.min_margin):
                values["promo_price"] = None
        price = values.get("sale_price", product.sale_price)
        # The one price rule (pricing.py): never on sale below cost + the supplier's minimum margin.
        covered = price > cost and price_problem(cost=cost, sale=price, promo=None, min_margin=supplier.min_margin) is None
        if not covered:
            values.update(is_listed=False, auto_delisted=False)  # an admin's decision: the sync won't relist it
        elif covered and not product.is_listed and product.auto_delisted and _has_stock(supplier, product):
            values.update(is_listed=True, auto_delisted=False)
        values.update(pending_cost=None, updated_at=utcnow())
        for name, value in values.items():
            setattr(product, name, value)
    session.commit()
    return len(products)


def _has_stock(supplier, product):
    return product.stock_mode is StockMode.UNLIMITED or product.stock > 0 or not supplier.auto_delist_at_zero
