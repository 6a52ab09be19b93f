"""Catalog reads for the shop: a fixed number of queries per page, whatever the size.

Shop pages are the hot path (issue 3, "Fast pages"; bench/shop_bench.py), so
list pages read plain rows of the columns a card shows, with price and stock
state worked out here once; the shop's category tree is kept per process for a
few seconds; and product views are counted in memory and written in batches.
"""
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa

from kamen.models import Category, Product, StockMode, StockState
from kamen.timeutil import utcnow

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
    """All categories as ORM objects in one query, arranged as two levels (the admin's view)."""
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


@dataclass(frozen=True)
class ShopCategory:
    id: int
    name: str
    full_name: str
    children: tuple = ()

    @property
    def ids(self):
        return [self.id, *(c.id for c in self.children)]


@dataclass(frozen=True)
class ShopTree:
    roots: tuple
    by_id: dict

    def node(self, category_id):
        return self.by_id.get(category_id)


_shop_tree = None  # (loaded at, ShopTree): replaced whole, so threads never see half a tree


def shop_tree(session, max_age):
    """The visible categories as plain data, reused for ``max_age`` seconds.

    Every shop page shows the tree and it changes rarely: reloading it per
    request cost a query and a quarter of the page. A worker that did not
    serve the admin's change shows it after at most ``max_age`` seconds."""
    global _shop_tree
    now = time.monotonic()
    cached = _shop_tree
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    tree = _load_shop_tree(session)
    _shop_tree = (now, tree)
    return tree


def forget_shop_tree():
    """Drop this process's cached tree (call after category writes)."""
    global _shop_tree
    _shop_tree = None


def _load_shop_tree(session):
    rows = session.execute(
        sa.select(Category.id, Category.name, Category.parent_id, Category.is_visible)
        .order_by(Category.sort_order, Category.id)
    ).all()
    names = {r.id: r.name for r in rows}
    visible = [r for r in rows if r.is_visible]
    children = {}
    for r in visible:
        if r.parent_id is not None:
            children.setdefault(r.parent_id, []).append(ShopCategory(r.id, r.name, f"{names[r.parent_id]} / {r.name}"))
    by_id = {c.id: c for kids in children.values() for c in kids}
    roots = []
    for r in visible:
        if r.parent_id is None:
            root = ShopCategory(r.id, r.name, r.name, tuple(children.get(r.id, ())))
            by_id[root.id] = root
            roots.append(root)
    return ShopTree(tuple(roots), by_id)


class ShopItem(NamedTuple):
    """What a product card shows, decided once here rather than per card in the template."""

    id: int
    name: str
    tier_label: str | None
    price: object  # Decimal: the promo price while a promo runs, else the sale price
    was_price: object  # Decimal or None: the crossed-out price beside it
    stock_state: StockState
    is_pinned: bool


# The columns shop_item() reads: plain rows of these load about twice as fast as Product objects.
_CARD_COLUMNS = (
    Product.id, Product.name, Product.tier_label, Product.sale_price, Product.market_price,
    Product.promo_price, Product.promo_start, Product.promo_end,
    Product.stock_mode, Product.stock, Product.low_stock_threshold, Product.is_pinned,
)


def shop_item(p, default_threshold, now=None):
    """A ShopItem from a Product or a row of _CARD_COLUMNS; the same rules as
    Product.promo_active() and Product.stock_state() (tests hold them equal)."""
    now = now or utcnow()
    promo = (
        p.promo_price is not None
        and (p.promo_start is None or now >= p.promo_start)
        and (p.promo_end is None or now < p.promo_end)
    )
    if promo:
        price, was = p.promo_price, p.sale_price
    else:
        price = p.sale_price
        was = p.market_price if p.market_price and p.market_price > p.sale_price else None
    threshold = default_threshold if p.low_stock_threshold is None else p.low_stock_threshold
    if p.stock_mode is StockMode.UNLIMITED:
        state = StockState.IN_STOCK
    elif p.stock <= 0:
        state = StockState.OUT
    elif p.stock <= threshold:
        state = StockState.LOW
    else:
        state = StockState.IN_STOCK
    return ShopItem(p.id, p.name, p.tier_label, price, was, state, p.is_pinned)


def _shop_items(session, stmt, default_threshold):
    now = utcnow()
    return [shop_item(row, default_threshold, now) for row in session.execute(stmt)]


@dataclass
class ProductPage:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self):
        return max(1, -(-self.total // self.per_page))


def listed_products(session, *, default_threshold, category_ids=None, search=None, sort="default", page=1, per_page=60):
    """One page of listed products as ShopItems: one query, plus a count only
    when the page is full (a short page already tells the total)."""
    where = [Product.is_listed.is_(True)]
    if category_ids is not None:
        where.append(Product.category_id.in_(category_ids))
    if search:
        where.append(sa.or_(Product.name.ilike(like_pattern(search), escape="\\"), Product.code == search))
    order = SHOP_SORTS.get(sort, SHOP_SORTS["default"])[1]
    page = max(1, page)
    offset = (page - 1) * per_page
    stmt = sa.select(*_CARD_COLUMNS).where(*where).order_by(*order).limit(per_page).offset(offset)
    items = _shop_items(session, stmt, default_threshold)
    if len(items) < per_page and (items or page == 1):
        total = offset + len(items)
    else:
        total = session.scalar(sa.select(sa.func.count()).select_from(Product).where(*where))
    return ProductPage(items, total, page, per_page)


def home_products(session, limit, default_threshold):
    """(pinned, best sellers) for the home page as ShopItems, two queries."""
    base = sa.select(*_CARD_COLUMNS).where(Product.is_listed.is_(True))
    pinned = base.where(Product.is_pinned.is_(True)).order_by(Product.sort_weight.desc(), Product.id).limit(limit)
    hot = (
        base.where(Product.is_pinned.is_(False))
        .order_by(Product.sales_count.desc(), Product.sort_weight.desc(), Product.id)
        .limit(limit)
    )
    return _shop_items(session, pinned, default_threshold), _shop_items(session, hot, default_threshold)


def shop_product(session, product_id):
    """A listed product, or None."""
    return session.scalar(sa.select(Product).where(Product.id == product_id, Product.is_listed.is_(True)))


_pending_views = Counter()
_views_lock = threading.Lock()
_views_written_at = 0.0


def record_view(session, product_id, write_every):
    """Count a product page view in this process; write the counts when
    ``write_every`` seconds have passed since the last write.

    Views are not money: a worker that crashes or restarts loses the views it
    has not written yet (at most ``write_every`` seconds' worth). In exchange a
    product page is a read, not a commit (an fsync on SQLite, where workers
    queue for the one writer)."""
    with _views_lock:
        _pending_views[product_id] += 1
        due = time.monotonic() - _views_written_at >= write_every
    if due:
        write_views(session)


def write_views(session):
    """Add this process's counted views to the products in one UPDATE and commit.
    A view is not a change: updated_at (read by incremental sync) stays as it is."""
    global _views_written_at
    with _views_lock:
        pending = dict(_pending_views)
        _pending_views.clear()
        _views_written_at = time.monotonic()
    if not pending:
        return
    session.execute(
        sa.update(Product)
        .where(Product.id.in_(pending))
        .values(view_count=Product.view_count + sa.case(pending, value=Product.id), updated_at=Product.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def like_pattern(text):
    """A LIKE pattern matching ``text`` anywhere, wildcards escaped with a backslash."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
