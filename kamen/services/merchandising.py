"""Merchandising: the 推荐位 list, 置顶, and what sales data says to change.

置顶 (is_pinned) puts goods first in their category and in search; the
推荐位 (featured_rank) is the home page's hand-picked list, in the admin's
order. The report reads the orders table: paid orders are those that reached
payment (paid, delivered, unfulfillable, refunded count as demand; margin
counts only what was kept).
"""
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from kamen.models import Category, Order, OrderStatus, Product, StockMode
from kamen.services.products import ProductInvalid, _selected
from kamen.timeutil import utcnow

FEATURED_MAX = 24
SOLD = (OrderStatus.PAID, OrderStatus.DELIVERED, OrderStatus.UNFULFILLABLE, OrderStatus.REFUNDED)
KEPT = (OrderStatus.PAID, OrderStatus.DELIVERED)


def featured(session):
    """The 推荐位 list in its order."""
    return session.scalars(
        sa.select(Product).where(Product.featured_rank.is_not(None)).order_by(Product.featured_rank, Product.id)
    ).all()


def _renumber(session, products):
    for rank, product in enumerate(products, 1):
        product.featured_rank = rank


def add_featured(session, ids):
    """Append the selected goods to the 推荐位 list (those already on it stay where they are)."""
    chosen = _selected(session, ids)
    current = featured(session)
    added = [p for p in chosen if p.featured_rank is None]
    if len(current) + len(added) > FEATURED_MAX:
        raise ProductInvalid(f"推荐位最多 {FEATURED_MAX} 个商品，当前已有 {len(current)} 个")
    _renumber(session, current + added)
    session.commit()
    return len(added)


def remove_featured(session, ids):
    chosen = {p.id for p in _selected(session, ids)}
    current = featured(session)
    for p in current:
        if p.id in chosen:
            p.featured_rank = None
    _renumber(session, [p for p in current if p.id not in chosen])
    session.commit()
    return len(chosen)


def move_featured(session, product_id, step):
    """Move one product up (step -1) or down (+1) the 推荐位 list."""
    current = featured(session)
    index = next((i for i, p in enumerate(current) if p.id == product_id), None)
    if index is None:
        raise ProductInvalid("该商品不在推荐位中，请刷新后重试")
    target = index + step
    if 0 <= target < len(current):
        current[index], current[target] = current[target], current[index]
    _renumber(session, current)
    session.commit()


def bulk_set_pinned(session, ids, pinned):
    products = _selected(session, ids)
    session.execute(sa.update(Product).where(Product.id.in_([p.id for p in products])).values(is_pinned=pinned))
    session.commit()
    return len(products)


def margin_expr():
    return Product.sale_price - Product.cost_price


def pin_top_margin(session, count, category_ids=None):
    """置顶 the ``count`` listed, sellable goods with the highest margin (sale − cost); returns them."""
    if not 1 <= count <= 200:
        raise ProductInvalid("置顶数量应在 1 到 200 之间")
    stmt = (
        sa.select(Product)
        .where(Product.is_listed.is_(True), sa.or_(Product.stock_mode == StockMode.UNLIMITED, Product.stock > 0))
        .order_by(margin_expr().desc(), Product.sales_count.desc(), Product.id)
        .limit(count)
    )
    if category_ids:
        stmt = stmt.where(Product.category_id.in_(category_ids))
    top = session.scalars(stmt).all()
    for p in top:
        p.is_pinned = True
    session.commit()
    return top


@dataclass
class CategoryMargin:
    name: str
    orders: int
    revenue: Decimal
    margin: Decimal


@dataclass
class MerchReport:
    days: int
    by_category: list  # CategoryMargin, highest margin first
    slow: list  # (Product, last sold at or None)
    sold_out_losses: list  # Product, most views while sold out first


def report(session, days=30, limit=20, now=None):
    """Margin by category over ``days``; listed goods with no sale in ``days``;
    sold-out goods customers kept looking at. Three queries."""
    since = (now or utcnow()) - timedelta(days=days)
    root = sa.orm.aliased(Category)
    leaf = sa.orm.aliased(Category)
    root_name = sa.func.coalesce(root.name, leaf.name, "未分类")
    rows = session.execute(
        sa.select(root_name.label("name"), sa.func.count(Order.id), sa.func.sum(Order.amount),
                  sa.func.sum(Order.amount - Order.cost))
        .join(Product, Product.id == Order.product_id)
        .outerjoin(leaf, leaf.id == Product.category_id)
        .outerjoin(root, root.id == leaf.parent_id)
        .where(Order.status.in_(KEPT), Order.paid_at >= since)
        .group_by(root_name)
        .order_by(sa.func.sum(Order.amount - Order.cost).desc())
    ).all()
    by_category = [CategoryMargin(name, n, revenue or Decimal("0"), margin or Decimal("0"))
                   for name, n, revenue, margin in rows]

    last_sold = (
        sa.select(Order.product_id, sa.func.max(Order.paid_at).label("at"))
        .where(Order.status.in_(SOLD), Order.paid_at.is_not(None))
        .group_by(Order.product_id)
        .subquery()
    )
    slow = session.execute(
        sa.select(Product, last_sold.c.at)
        .outerjoin(last_sold, last_sold.c.product_id == Product.id)
        .where(Product.is_listed.is_(True), Product.created_at < since,
               sa.or_(last_sold.c.at.is_(None), last_sold.c.at < since))
        .order_by(last_sold.c.at.is_not(None), last_sold.c.at, Product.view_count.desc(), Product.id)
        .limit(limit)
    ).all()

    losses = session.scalars(
        sa.select(Product)
        .where(Product.out_of_stock_views > 0)
        .order_by(Product.out_of_stock_views.desc(), Product.id)
        .limit(limit)
    ).all()
    return MerchReport(days, by_category, [tuple(r) for r in slow], losses)
