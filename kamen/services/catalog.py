"""Catalog reads for the shop: a fixed number of queries per page, whatever the size."""
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from kamen.models import Category, Product

SHOP_SORTS = {
    "default": ("综合", (Product.is_pinned.desc(), Product.sort_weight.desc(), Product.sales_count.desc(), Product.id)),
    "sales": ("销量", (Product.sales_count.desc(), Product.id)),
    "price_asc": ("价格从低到高", (Product.sale_price, Product.id)),
    "price_desc": ("价格从高到低", (Product.sale_price.desc(), Product.id)),
}


@dataclass
class CategoryNode:
    category: Category
    children: list = field(default_factory=list)

    @property
    def ids(self):
        return [self.category.id] + [c.category.id for c in self.children]


@dataclass
class CategoryTree:
    roots: list
    by_id: dict

    def node(self, category_id):
        return self.by_id.get(category_id)


def category_tree(session, visible_only=True):
    """All categories in one query, arranged as two levels."""
    stmt = sa.select(Category).order_by(Category.sort_order, Category.id)
    if visible_only:
        stmt = stmt.where(Category.is_visible.is_(True))
    cats = session.scalars(stmt).all()
    by_id = {c.id: CategoryNode(c) for c in cats}
    roots = []
    for node in by_id.values():
        parent = by_id.get(node.category.parent_id)
        if parent is not None:
            parent.children.append(node)
        elif node.category.parent_id is None:
            roots.append(node)
    return CategoryTree(roots, by_id)


@dataclass
class ProductPage:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self):
        return max(1, -(-self.total // self.per_page))


def listed_products(session, *, category_ids=None, search=None, sort="default", page=1, per_page=60):
    """Listed products for a shop list page: one count query, one row query."""
    stmt = sa.select(Product).where(Product.is_listed.is_(True))
    if category_ids is not None:
        stmt = stmt.where(Product.category_id.in_(category_ids))
    if search:
        like = like_pattern(search)
        stmt = stmt.where(sa.or_(Product.name.ilike(like, escape="\\"), Product.code == search))
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    order = SHOP_SORTS.get(sort, SHOP_SORTS["default"])[1]
    page = max(1, page)
    rows = session.scalars(stmt.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
    return ProductPage(rows, total, page, per_page)


def home_products(session, limit):
    """(pinned, best sellers) for the home page, two queries."""
    base = sa.select(Product).where(Product.is_listed.is_(True))
    pinned = session.scalars(
        base.where(Product.is_pinned.is_(True)).order_by(Product.sort_weight.desc(), Product.id).limit(limit)
    ).all()
    hot = session.scalars(
        base.where(Product.is_pinned.is_(False))
        .order_by(Product.sales_count.desc(), Product.sort_weight.desc(), Product.id)
        .limit(limit)
    ).all()
    return pinned, hot


def shop_product(session, product_id):
    """A listed product with its category, or None."""
    return session.scalar(
        sa.select(Product)
        .options(joinedload(Product.category))
        .where(Product.id == product_id, Product.is_listed.is_(True))
    )


def record_view(session, product_id):
    """Count a page view. On PostgreSQL the commit skips the WAL flush: a
    counter may lose a few views in a crash, pages stay fast. A view is not
    a change: updated_at (read by incremental sync) stays as it is."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
    session.execute(
        sa.update(Product).where(Product.id == product_id).values(view_count=Product.view_count + 1, updated_at=Product.updated_at)
    )
    session.commit()


def like_pattern(text):
    """A LIKE pattern matching ``text`` anywhere, wildcards escaped with a backslash."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
