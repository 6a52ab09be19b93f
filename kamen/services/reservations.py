"""Stock held by unpaid orders: take it at order time, give back exactly that.

- Card codes (本地卡密): specific codes move available → reserved for the
  order (PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED``, so buyers never wait
  on each other's codes; SQLite: writers are serialized, and the conditional
  UPDATE's rowcount is checked either way), then sold when paid.
- Synced / limited stock: ``UPDATE … SET stock = stock - :n WHERE stock >= :n``.
- Unlimited top-up: nothing to hold.

The product's stock counter always equals what can be sold: reserving moves
it down, releasing moves it back up by what was really released.
"""
import sqlalchemy as sa

from kamen.models import CardCode, Coupon, Product, Reservation, StockMode
from kamen.services.card_codes import AVAILABLE, RESERVED, SOLD

_codes = CardCode.__table__
_products = Product.__table__
_p = sa.bindparam

# Built once: checkout runs these on every order, and building a statement
# costs as much Python time as sending it.
_TAKE_STOCK = (
    sa.update(_products)
    .where(_products.c.id == _p("pid"), _products.c.stock >= _p("n"))
    .values(stock=_products.c.stock - _p("n"))
)
_PICK_CODES = (
    sa.select(_codes.c.id)
    .where(_codes.c.product_id == _p("pid"), _codes.c.status == AVAILABLE)
    .order_by(_codes.c.id)
    .limit(_p("n", type_=sa.Integer))
)
_PICK_CODES_LOCKED = _PICK_CODES.with_for_update(skip_locked=True)
_HOLD_CODES = (
    sa.update(_codes)
    .where(_codes.c.id.in_(_p("ids", expanding=True)), _codes.c.status == AVAILABLE)
    .values(status=RESERVED, order_id=_p("oid"))
)
_RELEASE_CODES = (
    sa.update(_codes)
    .where(_codes.c.order_id == _p("oid"), _codes.c.status == RESERVED)
    .values(status=AVAILABLE, order_id=None)
)
_SELL_CODES = (
    sa.update(_codes).where(_codes.c.order_id == _p("oid"), _codes.c.status == RESERVED).values(status=SOLD)
)
_MOVE_CARD_STOCK = (
    sa.update(_products)
    .where(_products.c.id == _p("pid"), _products.c.stock_mode == StockMode.CARDS.value)
    .values(stock=sa.case((_products.c.stock + _p("delta") < 0, 0), else_=_products.c.stock + _p("delta")))
)
_RETURN_STOCK = (
    sa.update(_products).where(_products.c.id == _p("pid")).values(stock=_products.c.stock + _p("n"))
)


class OutOfStock(Exception):
    pass


def kind_for(product):
    return {
        StockMode.CARDS: Reservation.CODES,
        StockMode.SYNCED: Reservation.STOCK,
        StockMode.UNLIMITED: Reservation.NONE,
    }[product.stock_mode]


def reserve(session, order_id, product_id, kind, quantity):
    """Hold ``quantity`` for the order, or raise OutOfStock (the caller rolls back)."""
    if kind is Reservation.CODES:
        _reserve_codes(session, order_id, product_id, quantity)
    elif kind is Reservation.STOCK:
        if session.execute(_TAKE_STOCK, {"pid": product_id, "n": quantity}).rowcount != 1:
            raise OutOfStock


def _reserve_codes(session, order_id, product_id, quantity):
    pick = _PICK_CODES_LOCKED if session.get_bind().dialect.name == "postgresql" else _PICK_CODES
    ids = session.execute(pick, {"pid": product_id, "n": quantity}).scalars().all()
    if len(ids) < quantity:
        raise OutOfStock
    taken = session.execute(_HOLD_CODES, {"ids": ids, "oid": order_id}).rowcount
    if taken != quantity:  # cannot happen while the rows are locked or writers serialized; never keep a part
        session.execute(_RELEASE_CODES, {"oid": order_id})
        raise OutOfStock
    _move_card_stock(session, product_id, -quantity)


def _move_card_stock(session, product_id, delta):
    session.execute(_MOVE_CARD_STOCK, {"pid": product_id, "delta": delta})


def release(session, order_id, product_id, kind, quantity):
    """Give back what the order held; returns how much was released."""
    if kind is Reservation.CODES:
        released = session.execute(_RELEASE_CODES, {"oid": order_id}).rowcount
        if released:
            _move_card_stock(session, product_id, released)
        return released
    if kind is Reservation.STOCK:
        session.execute(_RETURN_STOCK, {"pid": product_id, "n": quantity})
        return quantity
    return 0


def sell_reserved_codes(session, order_id):
    """reserved → sold for the order's codes; returns how many."""
    return session.execute(_SELL_CODES, {"oid": order_id}).rowcount


def take_coupon(session, coupon_id, *, force=False):
    """Count one use, atomically; False when none is left (``force``: count it anyway)."""
    table = Coupon.__table__
    stmt = sa.update(table).where(table.c.id == coupon_id).values(used_count=table.c.used_count + 1)
    if not force:
        stmt = stmt.where(sa.or_(table.c.max_uses.is_(None), table.c.used_count < table.c.max_uses))
    else:
        stmt = stmt.values(
            used_count=table.c.used_count + 1,
            max_uses=sa.case(
                (table.c.max_uses.is_not(None) & (table.c.used_count >= table.c.max_uses), table.c.used_count + 1),
                else_=table.c.max_uses,
            ),
        )
    return session.execute(stmt).rowcount == 1


def release_coupon(session, coupon_id):
    table = Coupon.__table__
    session.execute(
        sa.update(table).where(table.c.id == coupon_id, table.c.used_count > 0).values(used_count=table.c.used_count - 1)
    )
