"""This shop as a 主站: downstream stations (分站), their keys, prices and balance,
and the catalog pages the upstream API serves them."""
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from kamen.models import Category, DownstreamStation, Product, StockMode, Supplier, UsedNonce
from kamen.money import parse_money
from kamen.secretbox import decrypt, encrypt
from kamen.services.pricing import Markup
from kamen.suppliers.kamen_signing import NONCE_TTL_SECONDS
from kamen.timeutil import utcnow

MAX_PAGE = 500
DEFAULT_PAGE = 200


class StationInvalid(ValueError):
    pass


def create_station(session, name, markup_percent, markup_fixed):
    """Returns (station, secret); the secret is shown to the admin this once."""
    secret = secrets.token_urlsafe(32)
    station = DownstreamStation(
        name=name,
        app_id="ks" + secrets.token_hex(6),
        secret_encrypted=encrypt(secret),
        markup_percent=markup_percent,
        markup_fixed=markup_fixed,
    )
    session.add(station)
    session.commit()
    return station, secret


def rotate_secret(session, station):
    secret = secrets.token_urlsafe(32)
    station.secret_encrypted = encrypt(secret)
    session.commit()
    return secret


def top_up(session, station, amount_text):
    amount = parse_money(amount_text, field="充值金额", allow_negative=True)
    if amount == 0:
        raise StationInvalid("充值金额不能为 0")
    result = session.execute(
        sa.update(DownstreamStation)
        .where(DownstreamStation.id == station.id, DownstreamStation.balance + amount >= 0)
        .values(balance=DownstreamStation.balance + amount)
    )
    if result.rowcount != 1:
        session.rollback()
        raise StationInvalid("扣减后余额不能为负数")
    session.commit()
    session.refresh(station)
    return station.balance


def secret_of(station):
    """A station's secret, disabled or not: a disabled station's signed request
    is then answered 403 station_disabled, as documented, not "unknown app"."""
    return None if station is None else decrypt(station.secret_encrypted)


def nonce_seen(session, app_id, nonce):
    """Record a nonce; True when it was used before (atomic through the primary key)."""
    session.execute(sa.delete(UsedNonce).where(UsedNonce.at < utcnow() - timedelta(seconds=NONCE_TTL_SECONDS)))
    session.add(UsedNonce(app_id=app_id, nonce=nonce))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return True
    return False


def station_by_app_id(session, app_id):
    return session.scalar(sa.select(DownstreamStation).filter_by(app_id=app_id))


def station_price(station, cost):
    return Markup(percent=station.markup_percent, fixed=station.markup_fixed).apply(cost)


def _stock_json(product, default_threshold):
    if product.stock_mode is StockMode.UNLIMITED:
        return {"level": "IN", "qty": None}
    if product.stock <= 0:
        return {"level": "OUT", "qty": 0}
    level = "LOW" if product.stock <= product.effective_threshold(default_threshold) else "IN"
    return {"level": level, "qty": product.stock}


def _iso(dt):
    return dt.replace(microsecond=0).isoformat() + "Z"


def public_code(product):
    """Codes are unique per supplier here, so the API names a product by both."""
    return f"{product.supplier.code}.{product.code}"


def product_json(station, product, default_threshold):
    category = []
    if product.category is not None:
        if product.category.parent is not None:
            category.append(product.category.parent.name)
        category.append(product.category.name)
    return {
        "code": public_code(product),
        "name": product.name,
        "category": category,
        "face_value": None if product.face_value is None else str(product.face_value),
        "price": str(station_price(station, product.cost_price)),
        "market_price": None if product.market_price is None else str(product.market_price),
        "stock": _stock_json(product, default_threshold),
        "available": product.is_listed,
        "delivery": "card" if product.delivery_type.value == "card" else "topup",
        "fields": [{"name": f["key"], "label": f["label"], "required": True, "pattern": f.get("pattern") or "",
                    "hint": f.get("hint") or ""} for f in product.buyer_fields or []] or None,
        "updated_at": _iso(product.updated_at),
    }


def catalog_page(session, station, *, cursor, limit, updated_after, default_threshold):
    """One page of products, keyset-paged by id. Without ``updated_after`` only
    what we offer (listed); with it, every change, delistings included."""
    stmt = sa.select(Product).options(
        joinedload(Product.supplier), joinedload(Product.category).joinedload(Category.parent)
    )
    if updated_after is None:
        stmt = stmt.where(Product.is_listed.is_(True))
    else:
        stmt = stmt.where(Product.updated_at > updated_after)
    if cursor:
        stmt = stmt.where(Product.id > cursor)
    rows = session.scalars(stmt.order_by(Product.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [product_json(station, p, default_threshold) for p in rows]
    return items, (str(rows[-1].id) if more else None)


def stock_levels(session, codes, default_threshold):
    pairs = [tuple(code.split(".", 1)) for code in codes if "." in code]
    found = {}
    if pairs:
        rows = session.scalars(
            sa.select(Product)
            .join(Supplier)
            .options(joinedload(Product.supplier))
            .where(sa.tuple_(Supplier.code, Product.code).in_(pairs))
        ).all()
        found = {public_code(p): _stock_json(p, default_threshold) for p in rows if p.is_listed}
    return {code: found.get(code, {"level": "OUT", "qty": 0}) for code in codes}


SEEN_EVERY_SECONDS = 60


def touch(session, station):
    """Note that the station called, at most once a minute: every order also updates the
    station's row (its balance), and a write per request would queue them behind each other."""
    at = utcnow()
    if station.last_seen_at is not None and at - station.last_seen_at < timedelta(seconds=SEEN_EVERY_SECONDS):
        return
    session.execute(
        sa.update(DownstreamStation)
        .where(DownstreamStation.id == station.id,
               sa.or_(DownstreamStation.last_seen_at.is_(None),
                      DownstreamStation.last_seen_at < at - timedelta(seconds=SEEN_EVERY_SECONDS)))
        .values(last_seen_at=at)
        .execution_options(synchronize_session=False)
    )
    session.commit()
