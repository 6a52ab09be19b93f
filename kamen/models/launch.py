"""上线测试 (launch test): proving new goods sell before customers find out they don't."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.jobs import JobLease
from kamen.timeutil import utcnow


class LaunchRun(JobLease, db.Model):
    """One launch test over sampled goods; its job checks them, the per-minute
    tick then waits for the test orders' deliveries."""

    __tablename__ = "launch_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # queued | running | waiting (test orders not delivered yet) | done | failed
    status: Mapped[str] = mapped_column(sa.String(10), default="queued", index=True)
    label: Mapped[str] = mapped_column(sa.String(120))  # what was tested: 导入批次 #3, 同步 #8, 手动选择
    # The admin's explicit yes to buy supplier goods for real (test orders of
    # goods the shop delivers itself never cost supplier money).
    allow_supplier_orders: Mapped[bool] = mapped_column(default=False)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    passed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    delisted: Mapped[int] = mapped_column(default=0)  # failed goods taken off sale (the setting)
    message: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    checks: Mapped[list["LaunchCheck"]] = relationship(back_populates="run", order_by="LaunchCheck.id")


class LaunchCheck(db.Model):
    """One sampled product in a run: what was checked and why it failed."""

    __tablename__ = "launch_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("launch_runs.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(sa.ForeignKey("products.id", ondelete="SET NULL"))
    product_name: Mapped[str] = mapped_column(sa.String(200))
    why: Mapped[str] = mapped_column(sa.String(60), default="")  # 游戏点卡 · ¥10-50, or 管理员指定
    # pending | delivering (test order paid, waiting) | passed | failed
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    problems: Mapped[list] = mapped_column(sa.JSON, default=list)  # Chinese reasons, one per failed check
    notes: Mapped[list] = mapped_column(sa.JSON, default=list)  # what was checked and found right
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id", ondelete="SET NULL"))
    order_no: Mapped[str | None] = mapped_column(sa.String(32))
    promised_minutes: Mapped[int | None]
    delivery_seconds: Mapped[int | None]  # paid → delivered, as measured
    checked_at: Mapped[datetime | None]

    run: Mapped[LaunchRun] = relationship(back_populates="checks")
