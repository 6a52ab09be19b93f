"""Suppliers (货源), their sync runs, and the downstream stations we supply."""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.jobs import JobLease
from kamen.models.types import LabeledEnum, Money, Percent, Step, enum_column
from kamen.timeutil import utcnow


class SupplierKind(LabeledEnum):
    KAMEN = ("kamen", "kamen 主站")
    FULU = ("fulu", "福禄式网关")
    ACGFAKA = ("acgfaka", "acg-faka 共享店铺")
    MANUAL = ("manual", "表格/手工货源")


class Supplier(db.Model):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[SupplierKind] = mapped_column(enum_column(SupplierKind), default=SupplierKind.MANUAL)
    is_active: Mapped[bool] = mapped_column(default=True)

    # Connection: base URL, app id/key, and the secret encrypted at rest.
    base_url: Mapped[str] = mapped_column(sa.String(255), default="")
    app_id: Mapped[str] = mapped_column(sa.String(64), default="")
    secret_encrypted: Mapped[str] = mapped_column(sa.Text, default="")

    # Pricing: sale price = cost × (1 + percent) + fixed, rounded to step,
    # never below cost + min_margin.
    markup_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("5"))
    markup_fixed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    markup_step: Mapped[Decimal] = mapped_column(Step, default=Decimal("0.01"))
    min_margin: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # Imports' default price basis (catalog.PriceBasis value); each import may pick another.
    price_basis: Mapped[str] = mapped_column(sa.String(12), default="file", server_default="file")

    # Sync behaviour.
    auto_list: Mapped[bool] = mapped_column(default=False)
    default_category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("categories.id"))
    category_map: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # "游戏/腾讯" -> category id
    sync_interval_minutes: Mapped[int | None]  # None: auto-sync off
    nightly_sync_at: Mapped[str | None] = mapped_column(sa.String(5))  # HH:MM shop time; None = off
    auto_delist_at_zero: Mapped[bool] = mapped_column(default=True)
    recheck_hours: Mapped[int] = mapped_column(default=8)  # manual suppliers: re-check reminder
    # A cost moving more than this (percent, either way) since the last sync is
    # held as 价格待确认 for an admin instead of repricing the product.
    price_jump_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("30"))
    # Fulu-style replies: refuse a reply whose sign is present and wrong. Off only
    # for gateways documented to sign replies differently.
    verify_reply_sign: Mapped[bool] = mapped_column(default=True)
    # Alert when our prepaid balance at the supplier drops below this (None: off);
    # balance_alerted keeps it to one alert until the balance recovers.
    balance_alert_below: Mapped[Decimal | None] = mapped_column(Money)
    balance_alerted: Mapped[bool] = mapped_column(default=False)
    # 一键代发: the most a unit may cost at ordering time, as percent above the
    # cost the shop priced with; a supplier asking more is refused (never paid).
    order_price_drift_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("5"))

    last_sync_at: Mapped[datetime | None]  # last successful sync (incremental resumes here)
    last_full_sync_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]  # manual suppliers: last confirmed by an admin
    recheck_reminded_at: Mapped[datetime | None]
    failure_streak: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    default_category: Mapped["Category | None"] = relationship()  # noqa: F821


class SyncRun(JobLease, db.Model):
    """One 同步商品库 run: what it saw, what it changed, what went wrong."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(12))  # full | incremental
    status: Mapped[str] = mapped_column(sa.String(12), default="queued")  # queued|running|succeeded|failed
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    pages: Mapped[int] = mapped_column(default=0)
    seen: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    delisted: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list] = mapped_column(sa.JSON, default=list)  # [{"code", "reason"}]
    message: Mapped[str] = mapped_column(sa.Text, default="")

    supplier: Mapped[Supplier] = relationship()

    # At most one active run per supplier: the database refuses a second one,
    # however many clicks, ticks and workers race to start it.
    __table_args__ = (
        sa.Index("ux_sync_runs_one_active", "supplier_id", unique=True,
                 postgresql_where=sa.text("status IN ('queued', 'running')"),
                 sqlite_where=sa.text("status IN ('queued', 'running')")),
    )

    @property
    def duration_seconds(self):
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()


class BalanceSample(db.Model):
    """Our prepaid balance at a supplier as read at one check: the scorecard's balance trend."""

    __tablename__ = "supplier_balance_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id", ondelete="CASCADE"))
    balance: Mapped[Decimal] = mapped_column(Money)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_balance_samples_supplier_time", "supplier_id", "checked_at"),)


class DownstreamStation(db.Model):
    """A 分站 that buys from this shop through the upstream API."""

    __tablename__ = "downstream_stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    app_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    markup_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("0"))
    markup_fixed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]


class UsedNonce(db.Model):
    """Nonces of signed upstream requests, kept long enough to refuse replays."""

    __tablename__ = "used_nonces"

    app_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
