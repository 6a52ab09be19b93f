"""一键代发: each try at placing a paid order with a supplier, and a product's extra sources.

A ``ForwardAttempt`` is committed *before* its request leaves, so a job that
dies mid-request leaves a row that says "maybe sent": the order resumes by
querying that supplier with the same key, never by placing it again.
"""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.types import LabeledEnum, Money, enum_column
from kamen.timeutil import utcnow


class AttemptStatus(LabeledEnum):
    SENDING = ("sending", "正在提交")  # committed before the request; a crash here means "maybe sent"
    RETRY = ("retry", "待重试")  # the request never left (network down, rate limit): same key later
    ACCEPTED = ("accepted", "货源已接单")
    PROCESSING = ("processing", "货源处理中")
    UNKNOWN = ("unknown", "结果未知")
    SUCCESS = ("success", "成功")
    PARTIAL = ("partial", "部分成功")
    FAILED = ("failed", "货源处理失败")
    REFUSED = ("refused", "未下单")  # refused before anything was paid: out of stock, price above limit …


# Attempts whose outcome is still to come (polled, or settled by a callback).
OPEN_ATTEMPTS = (AttemptStatus.SENDING, AttemptStatus.RETRY, AttemptStatus.ACCEPTED, AttemptStatus.PROCESSING,
                 AttemptStatus.UNKNOWN)


class ForwardAttempt(db.Model):
    __tablename__ = "forward_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    attempt_no: Mapped[int]
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id"))
    source_product_id: Mapped[int | None] = mapped_column(sa.ForeignKey("products.id"))
    code: Mapped[str] = mapped_column(sa.String(64))  # the supplier's product code
    # Our order number (with the attempt number only when this order already
    # used this supplier): the supplier's duplicate check makes placing once.
    idempotency_key: Mapped[str] = mapped_column(sa.String(64))
    supplier_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[AttemptStatus] = mapped_column(enum_column(AttemptStatus), default=AttemptStatus.SENDING)
    # Set when the supplier's answer said "accepted": from then on no failover.
    accepted: Mapped[bool] = mapped_column(default=False)
    max_unit_cost: Mapped[Decimal] = mapped_column(Money)
    unit_cost: Mapped[Decimal | None] = mapped_column(Money)  # what the supplier said it charged
    message: Mapped[str] = mapped_column(sa.String(300), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    polls: Mapped[int] = mapped_column(default=0)
    alerted_at: Mapped[datetime | None]  # the "still unknown after the deadline" alert went out

    supplier: Mapped["Supplier"] = relationship()  # noqa: F821

    __table_args__ = (
        sa.UniqueConstraint("order_id", "attempt_no", name="uq_forward_attempts_order_attempt"),
        # A key names one order at one supplier, ever (callbacks find the attempt by it).
        sa.UniqueConstraint("supplier_id", "idempotency_key", name="uq_forward_attempts_supplier_key"),
    )


class ProductSource(db.Model):
    """Another supplier product (same 面值) a shop product can be filled from, after its own."""

    __tablename__ = "product_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"), index=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    source: Mapped["Product"] = relationship(foreign_keys=[source_id])  # noqa: F821

    __table_args__ = (
        sa.UniqueConstraint("product_id", "source_id", name="uq_product_sources_pair"),
        sa.CheckConstraint("product_id <> source_id", name="product_source_not_itself"),
    )
