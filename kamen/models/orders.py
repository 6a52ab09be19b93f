"""Buying: orders, their timeline, payment channels and coupons.

An order's status only moves through ``kamen.services.transitions.transition``
(one conditional UPDATE), and every move writes one ``OrderEvent`` with the
raw exchange that caused it (secrets redacted). Forwarding to suppliers plugs
in as more statuses and events on the same order.
"""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.types import LabeledEnum, Money, enum_column
from kamen.timeutil import utcnow


class OrderStatus(LabeledEnum):
    PENDING = ("pending", "待支付")
    PAID = ("paid", "已支付，待发货")
    DELIVERED = ("delivered", "已发货")
    EXPIRED = ("expired", "已过期")
    CANCELLED = ("cancelled", "已取消")
    FORWARDING = ("forwarding", "已支付，货源处理中")
    UNCERTAIN = ("uncertain", "货源结果未知，待核实")
    MANUAL = ("manual", "待人工处理")
    UNFULFILLABLE = ("unfulfillable", "已支付，无法发货")
    REFUNDED = ("refunded", "已退款")


class Reservation(LabeledEnum):
    """What an order holds while unpaid, so release gives back exactly that."""

    CODES = ("codes", "卡密")
    STOCK = ("stock", "库存")
    NONE = ("none", "不占库存")


PAY_TYPES = {"alipay": "支付宝", "wxpay": "微信支付", "qqpay": "QQ钱包"}
PAY_MODES = {"jump": "跳转到支付页面（submit.php）", "qrcode": "在本站显示付款二维码（mapi.php）"}


class Order(db.Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(sa.String(32), unique=True)
    status: Mapped[OrderStatus] = mapped_column(enum_column(OrderStatus), default=OrderStatus.PENDING, index=True)

    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"), index=True)
    product_name: Mapped[str] = mapped_column(sa.String(200))
    delivery_type: Mapped[str] = mapped_column(sa.String(16))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    amount: Mapped[Decimal] = mapped_column(Money)  # what the buyer pays
    cost: Mapped[Decimal] = mapped_column(Money)  # cost of the whole order at order time
    coupon_id: Mapped[int | None] = mapped_column(sa.ForeignKey("coupons.id"))
    reservation: Mapped[Reservation] = mapped_column(enum_column(Reservation))

    contact: Mapped[str] = mapped_column(sa.String(64), index=True)
    lookup_password_hash: Mapped[str | None] = mapped_column(sa.String(200))
    buyer_fields: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # {key: value}
    client_ip: Mapped[str] = mapped_column(sa.String(45), index=True)

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    paid_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    channel_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payment_channels.id"))
    pay_type: Mapped[str | None] = mapped_column(sa.String(16))
    pay_started_at: Mapped[datetime | None]
    trade_no: Mapped[str | None] = mapped_column(sa.String(64))  # the gateway's number
    paid_amount: Mapped[Decimal | None] = mapped_column(Money)
    # Lost-notify queries: when to ask the gateway next, and how often we asked.
    next_query_at: Mapped[datetime | None] = mapped_column(index=True)
    query_attempts: Mapped[int] = mapped_column(default=0)

    delivery_note: Mapped[str] = mapped_column(sa.Text, default="")
    refund_reason: Mapped[str | None] = mapped_column(sa.String(200))
    refunded_at: Mapped[datetime | None]
    # Part of a PARTIAL delivery given back (the rest of the order was delivered).
    refund_amount: Mapped[Decimal | None] = mapped_column(Money)
    # 一键代发: when the forwarding job was last asked for (the sweeper asks again
    # for an order whose job never ran), and the apology coupon of an oversold order.
    forward_requested_at: Mapped[datetime | None] = mapped_column(index=True)
    apology_coupon_id: Mapped[int | None] = mapped_column(sa.ForeignKey("coupons.id"))

    # Bought by a 分站 through the upstream API (paid from its balance): its own
    # order number (idempotency key), and where to tell it about the final state.
    station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("downstream_stations.id"), index=True)
    station_order_no: Mapped[str | None] = mapped_column(sa.String(64))
    station_notify_url: Mapped[str | None] = mapped_column(sa.String(500))
    # The callback is due from station_notify_next_at once the order is final;
    # station_notified_status is the final status the station acknowledged.
    station_notify_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    station_notify_next_at: Mapped[datetime | None] = mapped_column(index=True)
    station_notified_status: Mapped[str | None] = mapped_column(sa.String(16))

    product: Mapped["Product"] = relationship()  # noqa: F821
    channel: Mapped["PaymentChannel | None"] = relationship()
    coupon: Mapped["Coupon | None"] = relationship(foreign_keys=[coupon_id])
    apology_coupon: Mapped["Coupon | None"] = relationship(foreign_keys=[apology_coupon_id])
    station: Mapped["DownstreamStation | None"] = relationship()  # noqa: F821

    __table_args__ = (
        # One gateway payment pays one order, ever.
        sa.UniqueConstraint("channel_id", "trade_no", name="uq_orders_channel_trade_no"),
        # A 分站's order number names one order here, ever (its retries find the first).
        sa.UniqueConstraint("station_id", "station_order_no", name="uq_orders_station_order_no"),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
    )

    @property
    def margin(self):
        return self.amount - self.cost


class OrderEvent(db.Model):
    """One row per step of an order (and per payment notify, even refused ones)."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL for a refused notify that names no known order (kept for the admin).
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str] = mapped_column(sa.String(300), default="")
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class PaymentChannel(db.Model):
    """A 易支付 merchant account: gateway address, pid, key (encrypted), enabled types."""

    __tablename__ = "payment_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(60))
    base_url: Mapped[str] = mapped_column(sa.String(300))
    pid: Mapped[str] = mapped_column(sa.String(64))
    key_encrypted: Mapped[str] = mapped_column(sa.Text, default="")
    pay_types: Mapped[list] = mapped_column(sa.JSON, default=list)  # ["alipay", "wxpay", "qqpay"]
    # "jump": send the buyer to the gateway's page (submit.php); "qrcode": ask
    # mapi.php and show its QR code on the shop's own page.
    mode: Mapped[str] = mapped_column(sa.String(8), default="jump", server_default="jump")
    is_enabled: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouponKind(LabeledEnum):
    AMOUNT = ("amount", "立减金额")
    PERCENT = ("percent", "折扣百分比")


class Coupon(db.Model):
    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    kind: Mapped[CouponKind] = mapped_column(enum_column(CouponKind), default=CouponKind.AMOUNT)
    # AMOUNT: yuan off the order; PERCENT: percent off (10 = 九折).
    value: Mapped[Decimal] = mapped_column(Money)
    min_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    max_uses: Mapped[int | None]  # None: no limit
    used_count: Mapped[int] = mapped_column(default=0)
    product_id: Mapped[int | None] = mapped_column(sa.ForeignKey("products.id"))  # None: every product
    is_enabled: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped["Product | None"] = relationship()  # noqa: F821

    __table_args__ = (
        sa.CheckConstraint("used_count >= 0", name="coupon_used_not_negative"),
        sa.CheckConstraint("max_uses IS NULL OR used_count <= max_uses", name="coupon_used_within_limit"),
    )

    @property
    def uses_left(self):
        return None if self.max_uses is None else max(self.max_uses - self.used_count, 0)


class LookupAttempt(db.Model):
    """A 查单 try, for the per-IP throttle."""

    __tablename__ = "order_lookup_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(sa.String(45), index=True)
    succeeded: Mapped[bool]
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
