"""A shop product's sources (货源): its own supplier product first, then others of the same 面值.

Forwarding walks them in order (kamen.services.forwarding.sources_for). The
shop's stock is what the sellable sources can fill together: a product with
extra sources keeps its own supplier's count in ``own_stock`` (the sync writes
it) and ``stock`` = own + the extra sources' counts, refreshed whenever a sync
or a refusal changes one of them.
"""
import sqlalchemy as sa

from kamen.models import Product, ProductSource, StockMode, Supplier, SupplierKind

FORWARDABLE_KINDS = (SupplierKind.KAMEN, SupplierKind.FULU, SupplierKind.ACGFAKA)
# A source that sells without a count (direct top-up) is counted as this many.
UNCOUNTED_STOCK = 999
ORDERS = {"priority": "按优先级（列表顺序）", "cheapest": "最便宜的货源优先"}
MAX_SOURCES = 10


class SourceInvalid(ValueError):
    """str() is the Chinese reason; nothing was changed."""


def own_count(product):
    """What the product's own supplier can fill."""
    return product.stock if product.own_stock is None else product.own_stock


def _count(product):
    if product.stock_mode is StockMode.UNLIMITED:
        return UNCOUNTED_STOCK
    return max(own_count(product), 0)


def _sellable(product):
    supplier = product.supplier
    return supplier is not None and supplier.is_active and supplier.kind in FORWARDABLE_KINDS \
        and product.stock_mode is not StockMode.CARDS


def extra_stock(session, product_id):
    """What the product's extra sources can fill together."""
    rows = session.scalars(sa.select(Product).join(ProductSource, ProductSource.source_id == Product.id)
                           .where(ProductSource.product_id == product_id)
                           .execution_options(populate_existing=True)).all()  # a bulk update may have run
    return sum(_count(p) for p in rows if _sellable(p))


def source_rows(session, product_id):
    return session.scalars(sa.select(ProductSource).where(ProductSource.product_id == product_id)
                           .order_by(ProductSource.position, ProductSource.id)).all()


def refresh(session, product_id):
    """stock = own + extra sources (only for a product that has extra sources). The caller commits."""
    product = session.get(Product, product_id, populate_existing=True)
    if product is None or product.own_stock is None or product.stock_mode is not StockMode.SYNCED:
        return
    product.stock = max(product.own_stock, 0) + extra_stock(session, product_id)


def refresh_users_of(session, source_ids):
    """Shop products filled by any of these products (a sync page or a refusal changed them)."""
    source_ids = list(source_ids)
    if not source_ids:
        return 0
    users = session.scalars(sa.select(ProductSource.product_id).distinct()
                            .where(ProductSource.source_id.in_(source_ids))).all()
    for product_id in users:
        refresh(session, product_id)
    return len(users)


def mark_out(session, product_id):
    """A supplier refused this product for stock: its own count is 0 now, and so are its users' shares."""
    product = session.get(Product, product_id)
    if product is None or product.stock_mode is not StockMode.SYNCED:
        return
    if product.own_stock is None:
        product.stock = 0
    else:
        product.own_stock = 0
        refresh(session, product_id)
    session.flush()
    refresh_users_of(session, [product_id])


def candidates(session, product, limit=200):
    """Supplier products that may fill ``product``: same 面值 (when it has one), from a supplier
    that takes orders by API, not already one of its sources."""
    taken = sa.select(ProductSource.source_id).where(ProductSource.product_id == product.id)
    query = (sa.select(Product).join(Supplier, Supplier.id == Product.supplier_id)
             .where(Product.id != product.id, Product.id.not_in(taken), Supplier.is_active,
                    Supplier.kind.in_([k.value for k in FORWARDABLE_KINDS]),
                    Product.stock_mode != StockMode.CARDS)
             .order_by(Product.cost_price, Product.id).limit(limit))
    if product.face_value is not None:
        query = query.where(Product.face_value == product.face_value)
    return session.scalars(query).all()


def add(session, product, source_id):
    source = session.get(Product, source_id)
    if source is None or source.id == product.id:
        raise SourceInvalid("请选择另一个货源商品")
    if not _sellable(source):
        raise SourceInvalid("该商品的货源不能自动下单（手工货源或已停用）")
    if product.face_value is not None and source.face_value is not None and source.face_value != product.face_value:
        raise SourceInvalid(f"面值不同（¥{source.face_value} ≠ ¥{product.face_value}），不能作为这个商品的货源")
    rows = source_rows(session, product.id)
    if any(r.source_id == source.id for r in rows):
        raise SourceInvalid("该商品已经是这个商品的货源")
    if len(rows) >= MAX_SOURCES:
        raise SourceInvalid(f"每个商品最多 {MAX_SOURCES} 个备用货源")
    session.add(ProductSource(product_id=product.id, source_id=source.id,
                              position=(rows[-1].position + 1) if rows else 1))
    if product.own_stock is None and product.stock_mode is StockMode.SYNCED:
        product.own_stock = product.stock
    session.flush()
    refresh(session, product.id)
    session.commit()
    return source


def remove(session, product, row_id):
    row = session.get(ProductSource, row_id)
    if row is None or row.product_id != product.id:
        raise SourceInvalid("该货源已不在列表中")
    session.delete(row)
    session.flush()
    if not source_rows(session, product.id) and product.own_stock is not None:
        product.stock, product.own_stock = max(product.own_stock, 0), None
    else:
        refresh(session, product.id)
    session.commit()


def move(session, product, row_id, step):
    """上移 / 下移 one place."""
    rows = list(source_rows(session, product.id))
    index = next((i for i, r in enumerate(rows) if r.id == row_id), None)
    if index is None:
        raise SourceInvalid("该货源已不在列表中")
    target = index + (1 if step > 0 else -1)
    if not 0 <= target < len(rows):
        return
    rows[index], rows[target] = rows[target], rows[index]
    for position, row in enumerate(rows, 1):
        row.position = position
    session.commit()


def _score_key(score):
    if score is None:
        return (1, 0, 0)
    rate, median = score
    return (0, -rate, float("inf") if median is None else median)


def set_order(session, product, order):
    if order not in ORDERS:
        raise SourceInvalid("请选择货源顺序")
    product.source_order = order
    session.commit()


def ordered(product, own, extras, scores=None):
    """The sources in the order forwarding tries them: the product's own first unless cheapest-first,
    and sources known to be out after those with stock. With ``scores`` (代发设置 按货源评分排序,
    {supplier_id: (success rate, median answer seconds)}) the scored suppliers come first, best
    success rate then fastest, and the ones without a record keep their order after them."""
    chain = [own] + extras if own is not None else list(extras)
    if product.source_order == "cheapest":
        chain.sort(key=lambda p: p.cost_price)
    if scores is not None:
        chain.sort(key=lambda p: _score_key(scores.get(p.supplier_id)))
    return sorted(chain, key=lambda p: _count(p) <= 0)  # stable: order kept within each group
