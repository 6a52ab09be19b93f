"""Back-office product edits: one validation path for inline edits, the form and bulk actions."""
import re
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from kamen.models import Category, ImportRow, Product, StockMode, Supplier
from kamen.money import MoneyError, parse_money
from kamen.services import card_codes, pricing
from kamen.search_keys import search_words
from kamen.services.catalog import like_pattern


class ProductInvalid(ValueError):
    """A rejected edit; ``field`` names the input, str() is the Chinese message."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def check_prices(session, product):
    """The shop's price rule (pricing.py) on the product as it would be saved."""
    with session.no_autoflush:  # an invalid product must not reach the database first
        supplier = session.get(Supplier, product.supplier_id)
    try:
        pricing.check_prices(cost=product.cost_price, sale=product.sale_price, promo=product.promo_price,
                             min_margin=supplier.min_margin if supplier else 0)
    except pricing.PriceRuleError as exc:
        raise ProductInvalid(str(exc), exc.field) from exc
    if product.promo_start and product.promo_end and product.promo_end <= product.promo_start:
        raise ProductInvalid("活动结束时间必须晚于开始时间", "promo_end")


def parse_whole(text, label, *, allow_empty=False):
    text = str(text).strip().translate(str.maketrans("０１２３４５６７８９", "0123456789")).replace(",", "")
    if not text:
        if allow_empty:
            return None
        raise ProductInvalid(f"{label}不能为空")
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ProductInvalid(f"{label}必须是整数：“{text}”")
    value = int(text)
    if value < 0:
        raise ProductInvalid(f"{label}不能为负数")
    if value > 100_000_000:
        raise ProductInvalid(f"{label}过大")
    return value


def _money(label, allow_empty=False):
    def parse(text):
        if allow_empty and not str(text).strip():
            return None
        try:
            return parse_money(text, field=label)
        except MoneyError as exc:
            raise ProductInvalid(str(exc)) from exc

    return parse


@dataclass(frozen=True)
class InlineField:
    name: str
    label: str
    parse: object
    empty_hint: str = ""


INLINE_FIELDS = {
    f.name: f
    for f in (
        InlineField("sale_price", "售价", _money("售价")),
        InlineField("promo_price", "折扣价", _money("折扣价", allow_empty=True), "留空表示无折扣"),
        InlineField("stock", "库存", lambda t: parse_whole(t, "库存")),
        InlineField(
            "low_stock_threshold",
            "预警阈值",
            lambda t: parse_whole(t, "预警阈值", allow_empty=True),
            "留空使用系统默认值",
        ),
    )
}


def update_inline(session, product, field_name, raw):
    """Set one field from an inline edit; nothing is saved when it is invalid."""
    spec = INLINE_FIELDS[field_name]
    try:
        value = spec.parse(raw)
        if field_name == "stock":
            check_stock_editable(product.stock_mode)
        setattr(product, field_name, value)
        check_prices(session, product)
    except ProductInvalid as exc:
        session.rollback()
        exc.field = field_name
        raise
    session.commit()


def check_stock_editable(stock_mode):
    """Unlimited goods have no stock; card-code stock is the count of unsold codes."""
    if stock_mode is StockMode.UNLIMITED:
        raise ProductInvalid("该商品为不限库存（直充），无需设置库存", "stock")
    if stock_mode is StockMode.CARDS:
        raise ProductInvalid("本地卡密商品的库存等于未售卡密数量，请在“管理卡密”中上传或删除卡密", "stock")


FORM_FIELDS = (
    "supplier_id", "code", "name", "category_id", "face_value", "tier_label", "cost_price", "market_price",
    "sale_price", "promo_price", "promo_start", "promo_end", "stock_mode", "stock", "low_stock_threshold",
    "delivery_type", "delivery_minutes", "buyer_fields", "description", "is_listed", "is_pinned", "sort_weight",
    "min_per_order", "max_per_order",
)


def save_product(session, product, values, changed=None):
    """Create a product (``product`` None) or write the ``changed`` fields of ``values``
    (all when None) onto it: a field the admin left alone keeps what the database
    holds now, say stock a sync wrote while the form was open.

    ``values`` holds typed values per FORM_FIELDS (buyer_fields as the form's text).
    A card-code product's stock is never typed: it is recounted from its unsold codes."""
    changed = set(FORM_FIELDS if product is None or changed is None else changed) & set(values)
    current = {name: getattr(product, name) for name in ("supplier_id", "code", "stock_mode")} if product else {}
    supplier_id = values["supplier_id"] if "supplier_id" in changed else current["supplier_id"]
    code = values["code"] if "code" in changed else current["code"]
    if {"supplier_id", "code"} & changed and code_taken(session, supplier_id, code, exclude_id=product and product.id):
        raise ProductInvalid("该货源下已有相同商品编码", "code")
    mode = values["stock_mode"] if "stock_mode" in changed else current["stock_mode"]
    if mode is StockMode.CARDS and "stock" in changed and (product is not None or values["stock"]):
        check_stock_editable(mode)
    writes = {name: values[name] for name in changed}
    if "buyer_fields" in writes:
        writes["buyer_fields"] = parse_buyer_fields(writes["buyer_fields"])
    if mode is StockMode.CARDS:
        writes.pop("stock", None)
    for name, default in (("min_per_order", 1), ("max_per_order", 100)):
        if name in writes:
            writes[name] = writes[name] or default
    low = writes.get("min_per_order", product.min_per_order if product else 1)
    high = writes.get("max_per_order", product.max_per_order if product else 100)
    if low > high:
        raise ProductInvalid("每单最少购买数不能大于每单最多购买数", "min_per_order")
    if product is None:
        product = Product(stock=0)
        session.add(product)
    for name, value in writes.items():
        setattr(product, name, value)
    check_prices(session, product)
    if mode is StockMode.CARDS:
        session.flush()
        card_codes.recount_stock(session, [product.id])
    session.commit()
    return product


def set_listed(session, product, listed):
    product.is_listed = listed
    session.commit()


def _selected(session, ids):
    ids = [int(i) for i in ids]
    if not ids:
        raise ProductInvalid("请先勾选商品")
    products = session.scalars(
        sa.select(Product).options(joinedload(Product.supplier)).where(Product.id.in_(ids)).order_by(Product.id)
    ).all()
    if len(products) != len(set(ids)):
        raise ProductInvalid("部分商品已不存在，请刷新后重试")
    return products


def bulk_set_listed(session, ids, listed):
    products = _selected(session, ids)
    session.execute(sa.update(Product).where(Product.id.in_([p.id for p in products])).values(is_listed=listed))
    session.commit()
    return len(products)


def bulk_move(session, ids, category_id):
    products = _selected(session, ids)
    if session.get(Category, category_id) is None:
        raise ProductInvalid("目标分类不存在")
    for product in products:
        product.category_id = category_id
    session.commit()
    return len(products)


def bulk_markup(session, ids, markup):
    """Reprice from cost (never below each supplier's minimum margin); all or nothing:
    one conflicting product rejects the batch."""
    products = _selected(session, ids)
    problems = []
    for product in products:
        product.sale_price = replace(markup, min_margin=product.supplier.min_margin).apply(product.cost_price)
        try:
            check_prices(session, product)
        except ProductInvalid as exc:
            problems.append(f"{product.code}：{exc}")
    if problems:
        session.rollback()
        shown = "；".join(problems[:5]) + (f" 等 {len(problems)} 个" if len(problems) > 5 else "")
        raise ProductInvalid(f"未修改任何商品。{shown}")
    session.commit()
    return len(products)


BUYER_FIELD_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)\|(?P<label>[^|]+)(\|(?P<pattern>[^|]*))?(\|(?P<hint>.*))?$")


def parse_buyer_fields(text):
    """'account|充值账号|^1\\d{10}$|11 位手机号' per line -> list of dicts."""
    fields = []
    for n, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = BUYER_FIELD_LINE.match(line)
        if not m:
            raise ProductInvalid(f"第 {n} 行格式应为：字段名|显示名称|正则(可选)|提示(可选)", "buyer_fields")
        pattern = (m["pattern"] or "").strip()
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ProductInvalid(f"第 {n} 行的正则表达式无效：{exc}", "buyer_fields") from exc
        fields.append(
            {"key": m["key"], "label": m["label"].strip(), "pattern": pattern, "hint": (m["hint"] or "").strip()}
        )
    if len({f["key"] for f in fields}) != len(fields):
        raise ProductInvalid("买家填写字段名重复", "buyer_fields")
    return fields


def format_buyer_fields(fields):
    return "\n".join(
        "|".join([f["key"], f["label"], f.get("pattern", ""), f.get("hint", "")]).rstrip("|") for f in fields or []
    )


def code_taken(session, supplier_id, code, exclude_id=None):
    stmt = sa.select(Product.id).where(Product.supplier_id == supplier_id, Product.code == code)
    if exclude_id:
        stmt = stmt.where(Product.id != exclude_id)
    return session.scalar(stmt) is not None


ADMIN_SORTS = {
    "updated": ("最近更新", (Product.updated_at.desc(), Product.id.desc())),
    "name": ("名称", (Product.name, Product.id)),
    "price": ("售价", (Product.sale_price, Product.id)),
    "stock": ("库存", (Product.stock, Product.id)),
    "sales": ("销量", (Product.sales_count.desc(), Product.id)),
    "views": ("浏览量", (Product.view_count.desc(), Product.id)),
    "margin": ("毛利", ((Product.sale_price - Product.cost_price).desc(), Product.id)),
}


@dataclass
class AdminFilters:
    q: str = ""
    category_id: int | None = None
    listed: str = ""  # "", "1" (listed) or "0" (delisted)
    low_stock: bool = False
    sort: str = "updated"
    batch_id: int | None = None  # the goods one import wrote (its report links here)


def admin_products(session, filters, *, default_threshold, page, per_page):
    """(products with category, total) for the back-office list."""
    stmt = sa.select(Product)
    if filters.q:
        like = like_pattern(filters.q)
        by_words = sa.and_(*[Product.search_key.like(like_pattern(w), escape="\\") for w in search_words(filters.q)])
        stmt = stmt.where(sa.or_(Product.name.ilike(like, escape="\\"), Product.code.ilike(like, escape="\\"), by_words))
    if filters.category_id:
        child_ids = sa.select(Category.id).where(Category.parent_id == filters.category_id)
        stmt = stmt.where(sa.or_(Product.category_id == filters.category_id, Product.category_id.in_(child_ids)))
    if filters.listed in ("0", "1"):
        stmt = stmt.where(Product.is_listed.is_(filters.listed == "1"))
    if filters.batch_id:
        stmt = stmt.where(Product.id.in_(
            sa.select(ImportRow.product_id).where(ImportRow.batch_id == filters.batch_id, ImportRow.committed.is_(True))
        ))
    if filters.low_stock:
        threshold = sa.func.coalesce(Product.low_stock_threshold, default_threshold)
        stmt = stmt.where(Product.stock_mode != StockMode.UNLIMITED, Product.stock <= threshold)
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    order = ADMIN_SORTS.get(filters.sort, ADMIN_SORTS["updated"])[1]
    rows = session.scalars(
        stmt.options(joinedload(Product.category), joinedload(Product.supplier))
        .order_by(*order)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).all()
    return rows, total
