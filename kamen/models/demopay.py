"""The built-in 易支付 demo gateway's own trades (gateway side, not the shop's orders)."""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kamen.extensions import db
from kamen.models.types import LabeledEnum, Money, enum_column
from kamen.timeutil import utcnow


class DemoTradeStatus(LabeledEnum):
    PENDING = ("pending", "待支付")
    PAID = ("paid", "已支付")
    CANCELLED = ("cancelled", "已取消")


class DemoPayTrade(db.Model):
    """One payment request a merchant sent to the demo gateway, and its notify delivery."""

    __tablename__ = "demo_pay_trades"
    __table_args__ = (
        sa.UniqueConstraint("pid", "out_trade_no", name="uq_demo_pay_trades_pid_out_trade_no"),
        # The notify retry sweep: paid trades whose next attempt is due.
        sa.Index("ix_demo_pay_trades_notify_due", "notify_next_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_no: Mapped[str] = mapped_column(sa.String(32), unique=True)  # the gateway's number
    pid: Mapped[str] = mapped_column(sa.String(32))
    out_trade_no: Mapped[str] = mapped_column(sa.String(64))  # the merchant's number
    type: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(128))
    money: Mapped[Decimal] = mapped_column(Money)
    param: Mapped[str] = mapped_column(sa.Text, default="")
    notify_url: Mapped[str] = mapped_column(sa.String(512))
    return_url: Mapped[str] = mapped_column(sa.String(512), default="")
    client_ip: Mapped[str] = mapped_column(sa.String(45), default="")
    status: Mapped[DemoTradeStatus] = mapped_column(enum_column(DemoTradeStatus), default=DemoTradeStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]

    # Notify delivery: attempts so far, when the next one is due (None: none
    # planned), what the merchant last answered, when it answered "success".
    notify_attempts: Mapped[int] = mapped_column(default=0)
    notify_next_at: Mapped[datetime | None]
    notify_last_at: Mapped[datetime | None]
    notify_last_answer: Mapped[str] = mapped_column(sa.String(255), default="")
    notified_at: Mapped[datetime | None]
