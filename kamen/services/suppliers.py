"""Suppliers in the back office. The shop's own goods belong to a built-in manual supplier."""
from decimal import Decimal

import sqlalchemy as sa

from kamen import outbound
from kamen.models import Category, Product, Supplier, SupplierKind
from kamen.services import categories, supplier_kinds
from kamen.secretbox import encrypt

OWN_SUPPLIER_CODE = "self"
DEFAULT_ORDER_DRIFT = Decimal("5")


def default_supplier(session):
    """The built-in 自营 supplier, created on first use."""
    supplier = session.scalar(sa.select(Supplier).filter_by(code=OWN_SUPPLIER_CODE))
    if supplier is None:
        supplier = Supplier(code=OWN_SUPPLIER_CODE, name="自营", kind=SupplierKind.MANUAL)
        session.add(supplier)
        session.commit()
    return supplier


class SupplierInvalid(ValueError):
    pass


SETTINGS_FIELDS = (
    "name", "code", "kind", "base_url", "app_id", "markup_percent", "markup_fixed", "markup_step", "min_margin",
    "price_basis", "auto_list", "default_category_id", "sync_interval_minutes", "nightly_sync_at", "auto_delist_at_zero",
    "recheck_hours", "is_active", "price_jump_percent", "balance_alert_below", "verify_reply_sign",
    "order_price_drift_percent",
)


def save_supplier(session, supplier, values, secret=None):
    """Create or update a supplier; ``secret`` None or "" keeps the stored one."""
    clash = sa.select(Supplier.id).where(Supplier.code == values["code"])
    if supplier is not None:
        clash = clash.where(Supplier.id != supplier.id)
    if session.scalar(clash) is not None:
        raise SupplierInvalid(f"货源代号“{values['code']}”已被使用")
    if supplier is not None and supplier.code == OWN_SUPPLIER_CODE and values["code"] != OWN_SUPPLIER_CODE:
        raise SupplierInvalid("自营货源的代号不能修改")
    kind = SupplierKind(values["kind"])
    if kind is not SupplierKind.MANUAL and not values.get("base_url"):
        raise SupplierInvalid("接口货源必须填写接口地址")
    try:
        outbound.check_url(values.get("base_url"), "货源地址")
    except outbound.AddressRefused as exc:
        raise SupplierInvalid(str(exc)) from None
    try:
        values["app_id"], secret = supplier_kinds.normalize_credentials(kind, values.get("app_id"), secret)
    except supplier_kinds.CredentialsInvalid as exc:
        raise SupplierInvalid(str(exc)) from None
    if values["recheck_hours"] < 1:
        raise SupplierInvalid("核对提醒间隔至少 1 小时（0 会每分钟提醒一次）")
    if values["price_jump_percent"] <= 0:
        raise SupplierInvalid("供货价变动确认线应大于 0%")
    if values.get("order_price_drift_percent") is None:  # left empty: the usual 5 %
        values["order_price_drift_percent"] = DEFAULT_ORDER_DRIFT
    if not 0 <= values["order_price_drift_percent"] <= 100:
        raise SupplierInvalid("下单进价最多高出的比例应在 0% 到 100% 之间")
    if supplier is None:
        supplier = Supplier()
        session.add(supplier)
    for name in SETTINGS_FIELDS:
        setattr(supplier, name, values[name])
    supplier.kind = kind
    if secret:
        supplier.secret_encrypted = encrypt(secret)
    session.commit()
    return supplier


def connection_warnings(supplier):
    """What the admin should know about a supplier's address (no lookups)."""
    if supplier.kind is SupplierKind.MANUAL or not supplier.base_url:
        return []
    warning = outbound.check_url(supplier.base_url, "货源地址", resolve=False)
    return [warning] if warning else []


def pending_count(session, supplier):
    """New goods waiting for review, counted in SQL (a supplier may have 100k)."""
    return session.scalar(
        sa.select(sa.func.count()).select_from(Product)
        .where(Product.supplier_id == supplier.id, Product.pending_review.is_(True))
    )


def pending_products(session, supplier):
    return session.scalars(
        sa.select(Product)
        .where(Product.supplier_id == supplier.id, Product.pending_review.is_(True))
        .order_by(Product.remote_category, Product.name)
    ).all()


def review_pending(session, supplier, ids, *, approve, category_id=None):
    """List (approve) or keep delisted (reject) new remote products; all or nothing."""
    ids = [int(i) for i in ids]
    if not ids:
        raise SupplierInvalid("请先勾选商品")
    if category_id is not None and session.get(Category, category_id) is None:
        raise SupplierInvalid("目标分类不存在")
    values = {"pending_review": False}
    if approve:
        values.update(is_listed=True, auto_delisted=False)
    if category_id is not None:
        values["category_id"] = category_id
    result = session.execute(
        sa.update(Product)
        .where(Product.id.in_(ids), Product.supplier_id == supplier.id, Product.pending_review.is_(True))
        .values(**values)
    )
    if result.rowcount != len(set(ids)):
        session.rollback()
        raise SupplierInvalid("部分商品已处理或不存在，请刷新后重试")
    session.commit()
    return result.rowcount


def remote_categories(session, supplier):
    """[(remote path, products, products in no category)] of this supplier's goods."""
    no_category = sa.func.sum(sa.case((Product.category_id.is_(None), 1), else_=0))
    return session.execute(
        sa.select(Product.remote_category, sa.func.count(), no_category)
        .where(Product.supplier_id == supplier.id, Product.remote_category.is_not(None))
        .group_by(Product.remote_category)
        .order_by(Product.remote_category)
    ).all()


def map_remote_category(session, supplier, remote_path, category_id):
    """Remember where a remote category goes, and move its products there."""
    if session.get(Category, category_id) is None:
        raise SupplierInvalid("目标分类不存在")
    _apply_map(session, supplier, {remote_path: category_id})
    session.commit()


def create_remote_categories(session, supplier):
    """Create (or find) a two-level category for every remote path not mapped yet,
    map it, and move its products there. Returns how many paths were mapped."""
    mapped = supplier.category_map or {}
    paths = [path for path, *_ in remote_categories(session, supplier) if path not in mapped]
    created = {path: categories.ensure_path(session, path.split("/")).id for path in paths}
    _apply_map(session, supplier, created)
    session.commit()
    categories.forget_shop_tree()
    return len(created)


def _apply_map(session, supplier, new_entries):
    """The map is the rule for every product of those paths, listed or waiting."""
    supplier.category_map = {**(supplier.category_map or {}), **new_entries}
    for path, category_id in new_entries.items():
        session.execute(
            sa.update(Product)
            .where(Product.supplier_id == supplier.id, Product.remote_category == path)
            .values(category_id=category_id)
        )
