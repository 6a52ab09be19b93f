"""Catalog: two-level categories and the products the shop sells."""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from kamen.extensions import db
from kamen.models.types import LabeledEnum, Money, enum_column
from kamen.search_keys import search_key
from kamen.timeutil import utcnow


class StockMode(LabeledEnum):
    CARDS = ("cards", "本地卡密")
    SYNCED = ("synced", "同步货源库存")
    UNLIMITED = ("unlimited", "不限库存(直充)")


class DeliveryType(LabeledEnum):
    CARD = ("card", "自动发卡密")
    TOPUP = ("topup", "充值到账号")
    MANUAL = ("manual", "人工发货")


class PriceBasis(LabeledEnum):
    """How an import (or a supplier's imports by default) sets sale prices; every
    basis stays at or above cost + the supplier's minimum margin (pricing.py)."""
    FILE = ("file", "按文件中的建议零售价/售价（未填写的按加价）")
    MARKUP = ("markup", "按供货价加价")
    CAP_FACE = ("cap_face", "按供货价加价，不高于面值")
    CAP_MARKET = ("cap_market", "按供货价加价，不高于市场价")


class StockState(LabeledEnum):
    IN_STOCK = ("in", "有货")
    LOW = ("low", "库存紧张")
    OUT = ("out", "缺货")


class Category(db.Model):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(60))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("categories.id"), index=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    is_visible: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped["Category | None"] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Category"]] = relationship(
        back_populates="parent", order_by="(Category.sort_order, Category.id)"
    )

    __table_args__ = (sa.UniqueConstraint("parent_id", "name"),)

    @property
    def full_name(self):
        return f"{self.parent.name} / {self.name}" if self.parent_id else self.name


def _insert_search_key(context):
    """Core inserts (sync, imports) get their key from the row's own name and code."""
    row = context.get_current_parameters()
    return search_key(row.get("name"), row.get("code"))


class CategoryRule(db.Model):
    """Goods whose name contains ``keyword`` go into ``category`` (imports and syncs)."""

    __tablename__ = "category_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    keyword: Mapped[str] = mapped_column(sa.String(40), unique=True)
    category_id: Mapped[int] = mapped_column(sa.ForeignKey("categories.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    category: Mapped[Category] = relationship()


class Product(db.Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id"))
    code: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("categories.id"), index=True)

    face_value: Mapped[Decimal | None] = mapped_column(Money)
    tier_label: Mapped[str | None] = mapped_column(sa.String(32))
    cost_price: Mapped[Decimal] = mapped_column(Money)
    market_price: Mapped[Decimal | None] = mapped_column(Money)
    sale_price: Mapped[Decimal] = mapped_column(Money)
    promo_price: Mapped[Decimal | None] = mapped_column(Money)
    # 价格待确认: a synced cost that jumped past the supplier's limit; cost_price
    # and sale_price stay as they were until an admin accepts or rejects it.
    pending_cost: Mapped[Decimal | None] = mapped_column(Money)
    promo_start: Mapped[datetime | None]
    promo_end: Mapped[datetime | None]

    stock_mode: Mapped[StockMode] = mapped_column(enum_column(StockMode), default=StockMode.SYNCED)
    stock: Mapped[int] = mapped_column(default=0)
    # A product with extra sources (ProductSource): its own supplier's count (the sync
    # writes it); ``stock`` is then that plus the extra sources' counts. None: no extra sources.
    own_stock: Mapped[int | None]
    # The order forwarding tries the sources in: "priority" (as listed) or "cheapest".
    source_order: Mapped[str] = mapped_column(sa.String(8), default="priority", server_default="priority")
    low_stock_threshold: Mapped[int | None]
    delivery_type: Mapped[DeliveryType] = mapped_column(enum_column(DeliveryType), default=DeliveryType.CARD)
    # What the buyer must fill in: [{"key", "label", "pattern", "hint"}].
    buyer_fields: Mapped[list] = mapped_column(sa.JSON, default=list)
    delivery_minutes: Mapped[int] = mapped_column(default=5)
    # Quantity one order may buy.
    min_per_order: Mapped[int] = mapped_column(default=1, server_default="1")
    max_per_order: Mapped[int] = mapped_column(default=100, server_default="100")
    description: Mapped[str] = mapped_column(sa.Text, default="")

    is_listed: Mapped[bool] = mapped_column(default=True)
    # Sync bookkeeping: delisted by the sync (stock hit zero / gone upstream),
    # so the sync may relist it; waiting for an admin to review a new remote
    # product; alerted once for low stock until it recovers.
    auto_delisted: Mapped[bool] = mapped_column(default=False)
    pending_review: Mapped[bool] = mapped_column(default=False)
    low_stock_alerted: Mapped[bool] = mapped_column(default=False)
    remote_category: Mapped[str | None] = mapped_column(sa.String(200))
    is_pinned: Mapped[bool] = mapped_column(default=False)
    sort_weight: Mapped[int] = mapped_column(default=0)
    view_count: Mapped[int] = mapped_column(default=0)
    # Views of the product page while it was sold out: sales the shop missed.
    out_of_stock_views: Mapped[int] = mapped_column(default=0, server_default="0")
    sales_count: Mapped[int] = mapped_column(default=0)
    # Name, code and pinyin, lower-cased (kamen/search_keys.py): what shop search matches.
    search_key: Mapped[str] = mapped_column(sa.Text, default=_insert_search_key, server_default="")
    # The picture: an uploaded one (checked and resized, services/images.py) wins
    # over the supplier's cover address; neither means the category placeholder.
    image_id: Mapped[int | None] = mapped_column(sa.ForeignKey("uploads.id", ondelete="SET NULL"))
    cover_url: Mapped[str | None] = mapped_column(sa.String(500))
    # 推荐位: the home page's hand-picked list, in this order (None: not on it).
    featured_rank: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    supplier: Mapped["Supplier"] = relationship()  # noqa: F821
    category: Mapped[Category | None] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("supplier_id", "code"),
        sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("sale_price >= 0 AND cost_price >= 0", name="prices_not_negative"),
        sa.Index("ix_products_listing", "is_listed", "category_id", "is_pinned", "sort_weight"),
        # The home page's two lists (pinned by weight, best sellers by sales), read
        # backwards off an index instead of sorting every listed product.
        sa.Index("ix_products_featured", "featured_rank"),
        sa.Index("ix_products_best_sellers", "is_listed", "sales_count", "sort_weight", "id"),
    )

    @validates("name", "code")
    def _keep_search_key(self, key, value):
        other = self.code if key == "name" else self.name
        name, code = (value, other) if key == "name" else (other, value)
        self.search_key = search_key(name, code)
        return value

    def promo_active(self, at=None):
        return promo_applies(self.promo_price, self.promo_start, self.promo_end, at or utcnow())

    def current_price(self, at=None):
        return self.promo_price if self.promo_active(at) else self.sale_price

    def effective_threshold(self, default):
        return default if self.low_stock_threshold is None else self.low_stock_threshold

    def stock_state(self, default_threshold):
        return stock_state_for(self.stock_mode, self.stock, self.effective_threshold(default_threshold))

    @property
    def margin(self):
        return self.current_price() - self.cost_price


def promo_applies(promo_price, start, end, at):
    """The promo price is on sale at ``at`` (naive UTC): set, started, not ended."""
    return promo_price is not None and (start is None or at >= start) and (end is None or at < end)


def stock_state_for(mode, stock, threshold):
    """有货 / 库存紧张 / 缺货 as customers see it; unlimited top-up is always in stock."""
    if mode is StockMode.UNLIMITED:
        return StockState.IN_STOCK
    if stock <= 0:
        return StockState.OUT
    if stock <= threshold:
        return StockState.LOW
    return StockState.IN_STOCK
