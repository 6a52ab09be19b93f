"""Catalog reads for the shop: a fixed number of queries per page, whatever the size.

Shop pages are the hot path (issue 3, "Fast pages"; bench/shop_bench.py), so
list pages read plain rows of the columns a card shows, with price and stock
state worked out here once; the shop's category tree is kept per process for a
few seconds; and product views are counted in memory and written in batches.
"""
import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa

from kamen.models import Category, Product
from kamen.models.catalog import StockState, promo_applies, stock_state_for
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


# What a card needs, in the order _card() unpacks: plain rows of these load
# about twice as fast as Product objects.
_CARD_COLUMNS = (
    Product.id, Product.name, Product.tier_label, Product.sale_price, Product.market_price,
    Product.promo_price, Product.promo_start, Product.promo_end,
    Product.stock_mode, Product.stock, Product.low_stock_threshold, Product.is_pinned,
)


def shop_item(product, default_threshold):
    """A Product's card values: the product page shows the same price and stock."""
    return _card([getattr(product, c.key) for c in _CARD_COLUMNS], default_threshold, utcnow())


def _card(values, default_threshold, now):
    """A ShopItem from values in _CARD_COLUMNS order, by the Product model's rules.
    Unpacked, not read by name: a row's named fields cost more than the query."""
    id_, name, tier_label, sale, market, promo, promo_start, promo_end, mode, stock, threshold, pinned, *_ = values
    if promo_applies(promo, promo_start, promo_end, now):
        price, was = promo, sale
    else:
        price, was = sale, (market if market and market > sale else None)
    state = stock_state_for(mode, stock, default_threshold if threshold is None else threshold)
    return ShopItem(id_, name, tier_label, price, was, state, pinned)


def _shop_items(session, stmt, params, default_threshold):
    # Run on the connection (Core): plain rows, no ORM loading step.
    rows = session.connection().execute(stmt, params).all()
    now = utcnow()
    return [_card(row, default_threshold, now) for row in rows]


@dataclass
class ProductPage:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self):
        return max(1, -(-self.total // self.per_page))


@functools.cache
def _list_statements(sort, by_category, by_search):
    """(rows, count) statements for one shape of list page, built once.

    A statement object reused with new parameters skips building it and
    matching its result columns to the cached compiled form: 0.2 ms of a
    1 ms page."""
    where = [Product.is_listed.is_(True)]
    if by_category:
        where.append(Product.category_id.in_(sa.bindparam("category_ids", expanding=True)))
    if by_search:
        where.append(sa.or_(Product.name.ilike(sa.bindparam("like"), escape="\\"), Product.code == sa.bindparam("code")))
    rows = (
        sa.select(*_CARD_COLUMNS)
        .where(*where)
        .order_by(*SHOP_SORTS[sort][1])
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
    )
    return rows, sa.select(sa.func.count()).select_from(Product).where(*where)


def listed_products(session, *, default_threshold, category_ids=None, search=None, sort="default", page=1, per_page=60):
    """One page of listed products as ShopItems: one query, plus a count only
    when the page is full (a short page already tells the total)."""
    if sort not in SHOP_SORTS:
        sort = "default"
    rows_stmt, count_stmt = _list_statements(sort, category_ids is not None, bool(search))
    params = {}
    if category_ids is not None:
        params["category_ids"] = list(category_ids)
    if search:
        params.update(like=like_pattern(search), code=search)
    page = max(1, page)
    offset = (page - 1) * per_page
    items = _shop_items(session, rows_stmt, {**params, "limit": per_page, "offset": offset}, default_threshold)
    if len(items) < per_page and (items or page == 1):
        total = offset + len(items)
    else:
        total = session.connection().execute(count_stmt, params).scalar()
    return ProductPage(items, total, page, per_page)


def _home_part(pinned, order):
    return (
        sa.select(*_CARD_COLUMNS, Product.sort_weight, Product.sales_count)
        .where(Product.is_listed.is_(True), Product.is_pinned.is_(pinned))
        .order_by(*order)
        .limit(sa.bindparam("limit"))
        .subquery()
    )


# Every key descending, so each part is a backward scan of its index.
_pinned = _home_part(True, (Product.sort_weight.desc(), Product.id.desc()))
_best_sellers = _home_part(False, (Product.sales_count.desc(), Product.sort_weight.desc(), Product.id.desc()))
_home = sa.union_all(sa.select(_pinned), sa.select(_best_sellers)).subquery()
# A union keeps no order of its own: pinned by weight first, then best sellers by sales.
_HOME = sa.select(_home).order_by(
    _home.c.is_pinned.desc(),
    sa.case((_home.c.is_pinned, 0), else_=_home.c.sales_count).desc(),
    _home.c.sort_weight.desc(),
    _home.c.id.desc(),
)


def home_products(session, limit, default_threshold):
    """(pinned, best sellers) for the home page as ShopItems, in one query."""
    items = _shop_items(session, _HOME, {"limit": limit}, default_threshold)
    pinned = [i for i in items if i.is_pinned]
    return pinned, items[len(pinned):]


def shop_product(session, product_id):
    """A listed product, or None."""
    return session.scalar(sa.select(Product).where(Product.id == product_id, Product.is_listed.is_(True)))


_pending_views = Counter()
_views_lock = threading.Lock()
_views_written_at = time.monotonic()


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
