"""Catalog reads for the shop: a fixed number of queries per page, whatever the size.

Shop pages are the hot path (issue 3, "Fast pages"; bench/shop_bench.py), so
list pages read plain rows of the columns a card shows, with price and stock
state worked out here once; the shop's category tree and 店铺设置 are kept per process for a
few seconds; and product views are counted in memory and written in batches.
"""
import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa

from kamen.models import Category, Product, Setting, StockMode
from kamen.models.catalog import StockState, promo_applies, stock_state_for
from kamen.search_keys import search_key, search_words
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
    parent: "ShopCategory | None" = None

    @property
    def ids(self):
        return [self.id, *(c.id for c in self.children)]

    @property
    def path(self):
        """Root first, this category last: the breadcrumb trail."""
        return (self.parent, self) if self.parent else (self,)


@dataclass(frozen=True)
class ShopTree:
    roots: tuple
    by_id: dict

    def node(self, category_id):
        return self.by_id.get(category_id)


@dataclass(frozen=True)
class ShopLook:
    """What 店铺设置 puts around every shop page: name, logo, 公告, 客服, footer."""

    name: str
    logo_id: int | None = None
    notice: str = ""
    qq: str = ""
    wechat: str = ""
    email: str = ""
    footer: str = ""

    @property
    def has_contact(self):
        return bool(self.qq or self.wechat or self.email)


SHOP_SETTINGS_KEY = "shop"
ALERT_SETTINGS_KEY = "alerts"  # kamen.services.settings: the shop reads its low_stock_threshold


def shop_look(value, default_name):
    """A ShopLook from the stored 店铺设置 (a dict, or None when never saved)."""
    value = value or {}
    fields = {k: value.get(k) or "" for k in ("notice", "qq", "wechat", "email", "footer")}
    return ShopLook(name=value.get("name") or default_name, logo_id=value.get("logo_id"), **fields)


@dataclass(frozen=True)
class ShopFrame:
    tree: ShopTree
    look: ShopLook
    low_stock_threshold: int | None = None  # 告警设置's 库存预警默认阈值; None: the deployment's


_shop_frame = None  # (loaded at, ShopFrame): replaced whole, so threads never see half of one


def shop_frame(session, max_age, default_name):
    """The visible categories and the shop's settings as plain data, reused
    for ``max_age`` seconds.

    Every shop page shows both and they change rarely: reloading them per
    request cost a query and a quarter of the page. A worker that did not
    serve the admin's change shows it after at most ``max_age`` seconds."""
    global _shop_frame
    now = time.monotonic()
    cached = _shop_frame
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    frame = _load_shop_frame(session, default_name)
    _shop_frame = (now, frame)
    return frame


def forget_shop_tree():
    """Drop this process's cached categories and settings (call after writing either)."""
    global _shop_frame
    _shop_frame = None


def _load_shop_frame(session, default_name):
    # One query for all: the settings rows (店铺设置, and 告警设置 for the 库存紧张
    # threshold) ride along as extra rows whose category columns are empty.
    null = sa.null()
    categories = sa.select(
        Category.id, Category.name, Category.parent_id, Category.is_visible, Category.sort_order,
        sa.type_coerce(null, Setting.key.type).label("setting"), sa.type_coerce(null, Setting.value.type).label("value"),
    )
    settings = sa.select(
        sa.type_coerce(null, Category.id.type), sa.type_coerce(null, Category.name.type),
        sa.type_coerce(null, Category.parent_id.type), sa.type_coerce(null, Category.is_visible.type),
        sa.type_coerce(null, Category.sort_order.type), Setting.key, Setting.value,
    ).where(Setting.key.in_((SHOP_SETTINGS_KEY, ALERT_SETTINGS_KEY)))
    union = sa.union_all(categories, settings).subquery()
    rows = session.execute(sa.select(union).order_by(union.c.sort_order, union.c.id)).all()
    stored = {r.setting: r.value for r in rows if r.id is None}
    return ShopFrame(_tree_of([r for r in rows if r.id is not None]),
                     shop_look(stored.get(SHOP_SETTINGS_KEY), default_name),
                     (stored.get(ALERT_SETTINGS_KEY) or {}).get("low_stock_threshold"))


def _tree_of(rows):
    names = {r.id: r.name for r in rows}
    visible = [r for r in rows if r.is_visible]
    children = {}
    for r in visible:
        if r.parent_id is not None:
            children.setdefault(r.parent_id, []).append(r)
    roots = {
        r.id: ShopCategory(r.id, r.name, r.name, tuple(
            ShopCategory(c.id, c.name, f"{r.name} / {c.name}") for c in children.get(r.id, ())))
        for r in visible if r.parent_id is None
    }
    by_id = {}
    for parent_id, kids in children.items():
        parent = roots.get(parent_id)  # None: under a hidden root, reachable but without a trail
        for c in kids:
            by_id[c.id] = ShopCategory(c.id, c.name, f"{names[parent_id]} / {c.name}", parent=parent)
    by_id.update(roots)
    return ShopTree(tuple(roots.values()), by_id)


class ShopItem(NamedTuple):
    """What a product card shows, decided once here rather than per card in the template."""

    id: int
    name: str
    tier_label: str | None
    price: object  # Decimal: the promo price while a promo runs, else the sale price
    was_price: object  # Decimal or None: the crossed-out price beside it
    stock_state: StockState
    is_pinned: bool
    image_id: int | None
    cover_url: str | None
    category_id: int | None

    @property
    def placeholder(self):
        """Which of the placeholder colours (shop.css .ph-0 … .ph-7) this category's cards use."""
        return (self.category_id or 0) % 8


# What a card needs, in the order _card() unpacks: plain rows of these load
# about twice as fast as Product objects.
_CARD_COLUMNS = (
    Product.id, Product.name, Product.tier_label, Product.sale_price, Product.market_price,
    Product.promo_price, Product.promo_start, Product.promo_end,
    Product.stock_mode, Product.stock, Product.low_stock_threshold, Product.is_pinned,
    Product.image_id, Product.cover_url, Product.category_id,
)


def shop_item(product, default_threshold):
    """A Product's card values: the product page shows the same price and stock."""
    return _card([getattr(product, c.key) for c in _CARD_COLUMNS], default_threshold, utcnow())


def _card(values, default_threshold, now):
    """A ShopItem from values in _CARD_COLUMNS order, by the Product model's rules.
    Unpacked, not read by name: a row's named fields cost more than the query."""
    (id_, name, tier_label, sale, market, promo, promo_start, promo_end, mode, stock, threshold, pinned,
     image_id, cover_url, category_id, *_) = values
    if promo_applies(promo, promo_start, promo_end, now):
        price, was = promo, sale
    else:
        price, was = sale, (market if market and market > sale else None)
    state = stock_state_for(mode, stock, default_threshold if threshold is None else threshold)
    return ShopItem(id_, name, tier_label, price, was, state, pinned, image_id, cover_url, category_id)


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
def _list_statements(sort, by_category, word_count):
    """(rows, count) statements for one shape of list page, built once.

    A statement object reused with new parameters skips building it and
    matching its result columns to the cached compiled form: 0.2 ms of a
    1 ms page."""
    where = [Product.is_listed.is_(True)]
    if by_category:
        where.append(Product.category_id.in_(sa.bindparam("category_ids", expanding=True)))
    # Every word must match (爱奇艺 月卡); the key is lower-cased, so are the words.
    where += [Product.search_key.like(sa.bindparam(f"word{i}"), escape="\\") for i in range(word_count)]
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
    words = search_words(search or "")
    rows_stmt, count_stmt = _list_statements(sort, category_ids is not None, len(words))
    params = {f"word{i}": like_pattern(w) for i, w in enumerate(words)}
    if category_ids is not None:
        params["category_ids"] = list(category_ids)
    page = max(1, page)
    offset = (page - 1) * per_page
    items = _shop_items(session, rows_stmt, {**params, "limit": per_page, "offset": offset}, default_threshold)
    if len(items) < per_page and (items or page == 1):
        total = offset + len(items)
    else:
        total = session.connection().execute(count_stmt, params).scalar()
    return ProductPage(items, total, page, per_page)


_IN_STOCK = sa.or_(Product.stock_mode == StockMode.UNLIMITED, Product.stock > 0)


def _home_part(where, order):
    return (
        sa.select(*_CARD_COLUMNS, Product.featured_rank, Product.sales_count, Product.sort_weight)
        .where(Product.is_listed.is_(True), *where)
        .order_by(*order)
        .limit(sa.bindparam("limit"))
        .subquery()
    )


# 推荐位 in the admin's order, then 热销: best sellers a customer can buy now
# (sold-out goods would be a dead end at the top of the shop), each read off an index.
_featured = _home_part((Product.featured_rank.is_not(None),), (Product.featured_rank, Product.id))
_best_sellers = _home_part(
    (Product.featured_rank.is_(None), _IN_STOCK),
    (Product.sales_count.desc(), Product.sort_weight.desc(), Product.id.desc()),
)
_home = sa.union_all(sa.select(_featured), sa.select(_best_sellers)).subquery()
# A union keeps no order of its own.
_HOME = sa.select(_home).order_by(
    _home.c.featured_rank.is_(None),
    _home.c.featured_rank,
    _home.c.sales_count.desc(),
    _home.c.sort_weight.desc(),
    _home.c.id.desc(),
)


def home_products(session, limit, default_threshold):
    """(推荐位, 热销) for the home page as ShopItems, in one query."""
    rows = session.connection().execute(_HOME, {"limit": limit}).all()
    now = utcnow()
    featured = [_card(r, default_threshold, now) for r in rows if r.featured_rank is not None]
    hot = [_card(r, default_threshold, now) for r in rows if r.featured_rank is None]
    return featured, hot


def shop_product(session, product_id):
    """A listed product, or None."""
    return session.scalar(sa.select(Product).where(Product.id == product_id, Product.is_listed.is_(True)))


# A request environ key: the page was rendered by the shop itself (上线测试), not a customer.
UNCOUNTED_VIEW = "kamen.uncounted_view"

_pending_views = Counter()
_pending_sold_out_views = Counter()
_views_lock = threading.Lock()
_views_written_at = time.monotonic()


def record_view(session, product_id, write_every, sold_out=False):
    """Count a product page view in this process (``sold_out``: one the shop
    could not sell on); write the counts when ``write_every`` seconds have
    passed since the last write.

    Views are not money: a worker that crashes or restarts loses the views it
    has not written yet (at most ``write_every`` seconds' worth). In exchange a
    product page is a read, not a commit (an fsync on SQLite, where workers
    queue for the one writer)."""
    with _views_lock:
        _pending_views[product_id] += 1
        if sold_out:
            _pending_sold_out_views[product_id] += 1
        due = time.monotonic() - _views_written_at >= write_every
    if due:
        write_views(session)


def write_views(session):
    """Add this process's counted views to the products in one UPDATE and commit.
    A view is not a change: updated_at (read by incremental sync) stays as it is."""
    global _views_written_at
    with _views_lock:
        pending = dict(_pending_views)
        sold_out = dict(_pending_sold_out_views)
        _pending_views.clear()
        _pending_sold_out_views.clear()
        _views_written_at = time.monotonic()
    if not pending:
        return
    session.execute(
        sa.update(Product)
        .where(Product.id.in_(pending))
        .values(
            view_count=Product.view_count + sa.case(pending, value=Product.id),
            out_of_stock_views=Product.out_of_stock_views + sa.case(sold_out, value=Product.id, else_=0)
            if sold_out else Product.out_of_stock_views,
            updated_at=Product.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


def like_pattern(text):
    """A LIKE pattern matching ``text`` anywhere, wildcards escaped with a backslash."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def refresh_search_keys(session, product_ids, chunk=2000):
    """Bring the search keys of the products ``product_ids`` (a select of ids) up to
    date with their names, after writes that bypass the model (imports' set-based
    SQL, undo). Only keys that differ are written; the caller commits."""
    rows = session.execute(
        sa.select(Product.id, Product.name, Product.code, Product.search_key)
        .where(Product.id.in_(product_ids))
        .execution_options(yield_per=chunk)
    )
    postgresql = session.get_bind().dialect.name == "postgresql"
    for part in rows.partitions():
        stale = [(pid, key) for pid, name, code, old in part if (key := search_key(name, code)) != old]
        if not stale:
            continue
        if postgresql:  # one UPDATE … FROM (VALUES …) per chunk: an executemany is a round trip a row
            keys = sa.values(sa.column("pid", sa.Integer), sa.column("key", sa.String), name="stale").data(stale)
            session.execute(sa.update(_products).where(_products.c.id == keys.c.pid)
                            .values(search_key=keys.c.key, updated_at=_products.c.updated_at))
        else:
            session.execute(_SET_SEARCH_KEY, [{"pid": pid, "key": key} for pid, key in stale])


# A key is not an edit: updated_at (undo's "changed since" check, incremental sync) stays.
_products = Product.__table__
_SET_SEARCH_KEY = (
    sa.update(_products)
    .where(_products.c.id == sa.bindparam("pid"))
    .values(search_key=sa.bindparam("key"), updated_at=_products.c.updated_at)
)
