"""After-sales tickets (售后工单), their history and screenshots.

A ticket's status only moves through ``kamen.services.transitions.transition``
and every move writes one ``TicketEvent``; replies are events too (public ones
the buyer sees, internal ones only admins see). A ticket either concerns one
of our orders (a buyer opened it) or, on a 主站, an order of a 分站 that the
分站 forwarded through the upstream API (``station_id`` + ``station_order_no``).
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.jobs import JobLease
from kamen.models.types import LabeledEnum, enum_column
from kamen.timeutil import utcnow


class TicketKind(LabeledEnum):
    INVALID_CODE = ("invalid_code", "卡密无效")
    NOT_RECEIVED = ("not_received", "未到账")
    WRONG_ACCOUNT = ("wrong_account", "充错账号")
    OTHER = ("other", "其他")


class TicketStatus(LabeledEnum):
    OPEN = ("open", "待处理")
    SUPPLIER = ("supplier", "等待货源处理")
    PROCESSING = ("processing", "处理中")
    RESOLVED = ("resolved", "已解决")
    REJECTED = ("rejected", "已驳回")


OPEN_STATUSES = ("open", "supplier", "processing")
_OPEN_SQL = sa.text("status IN ('open', 'supplier', 'processing')")


class Responsibility(LabeledEnum):
    SUPPLIER = ("supplier", "货源")
    SHOP = ("shop", "本店")
    BUYER = ("buyer", "买家")


class Outcome(LabeledEnum):
    REISSUE = ("reissue", "补发卡密")
    REFUND = ("refund", "退款")
    COUPON = ("coupon", "补偿优惠券")
    REJECTED = ("rejected", "驳回")
    ANSWERED = ("answered", "已答复")


class Ticket(JobLease, db.Model):
    """One after-sales case; its job lease belongs to the forwarding job."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_no: Mapped[str] = mapped_column(sa.String(24), unique=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    # On a 主站: the 分站 that sent it and its own order and ticket numbers.
    station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("downstream_stations.id"), index=True)
    station_order_no: Mapped[str | None] = mapped_column(sa.String(64))
    station_ticket_no: Mapped[str | None] = mapped_column(sa.String(32))
    callback_url: Mapped[str] = mapped_column(sa.String(500), default="")
    callback_state: Mapped[str] = mapped_column(sa.String(12), default="")  # "" | pending | sent | failed
    callback_attempts: Mapped[int] = mapped_column(default=0)
    callback_next_at: Mapped[datetime | None] = mapped_column(index=True)
    callback_error: Mapped[str] = mapped_column(sa.Text, default="")

    kind: Mapped[TicketKind] = mapped_column(enum_column(TicketKind))
    responsibility: Mapped[Responsibility] = mapped_column(enum_column(Responsibility))
    status: Mapped[TicketStatus] = mapped_column(enum_column(TicketStatus), default=TicketStatus.OPEN, index=True)
    text: Mapped[str] = mapped_column(sa.Text, default="")
    contact: Mapped[str] = mapped_column(sa.String(64), default="")
    product_name: Mapped[str] = mapped_column(sa.String(200), default="")
    supplier_id: Mapped[int | None] = mapped_column(sa.ForeignKey("suppliers.id"))
    # What the responsible supplier knows the order by: the idempotency key it was
    # placed with (our order number) and the supplier's own order id when known.
    supplier_order_key: Mapped[str | None] = mapped_column(sa.String(64))
    supplier_order_id: Mapped[str | None] = mapped_column(sa.String(64))

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    first_response_due: Mapped[datetime]
    resolve_due: Mapped[datetime]
    first_responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # One overdue alert per ticket per deadline.
    first_overdue_alerted_at: Mapped[datetime | None]
    resolve_overdue_alerted_at: Mapped[datetime | None]

    outcome: Mapped[Outcome | None] = mapped_column(enum_column(Outcome))
    outcome_note: Mapped[str] = mapped_column(sa.String(300), default="")
    reissued_encrypted: Mapped[str] = mapped_column(sa.Text, default="")  # secretbox; shown to the buyer
    coupon_id: Mapped[int | None] = mapped_column(sa.ForeignKey("coupons.id"))

    # Forwarding to the responsible supplier: "" (not theirs) | pending | sent |
    # failed (kamen 主站 over the API) | manual (a message the admin sends by hand).
    forward_state: Mapped[str] = mapped_column(sa.String(12), default="")
    forward_attempts: Mapped[int] = mapped_column(default=0)
    forward_next_at: Mapped[datetime | None] = mapped_column(index=True)
    forward_error: Mapped[str] = mapped_column(sa.Text, default="")
    upstream_ticket_no: Mapped[str | None] = mapped_column(sa.String(32))
    upstream_status: Mapped[str] = mapped_column(sa.String(16), default="")
    supplier_codes_encrypted: Mapped[str] = mapped_column(sa.Text, default="")  # what the 主站 reissued

    order: Mapped["Order | None"] = relationship()  # noqa: F821
    station: Mapped["DownstreamStation | None"] = relationship()  # noqa: F821
    supplier: Mapped["Supplier | None"] = relationship()  # noqa: F821
    coupon: Mapped["Coupon | None"] = relationship()  # noqa: F821

    __table_args__ = (
        # One open ticket per order, and per 分站 order on a 主站: the database refuses a second.
        sa.Index("ux_tickets_one_open_per_order", "order_id", unique=True,
                 postgresql_where=_OPEN_SQL, sqlite_where=_OPEN_SQL),
        sa.Index("ux_tickets_one_open_per_station_order", "station_id", "station_order_no", unique=True,
                 postgresql_where=_OPEN_SQL, sqlite_where=_OPEN_SQL),
        sa.CheckConstraint("order_id IS NOT NULL OR station_id IS NOT NULL", name="ticket_has_an_order"),
    )

    @property
    def is_open(self):
        return self.status.value in OPEN_STATUSES

    @property
    def next_due(self):
        """The deadline that matters now: the first answer, then the resolution."""
        if not self.is_open:
            return None
        return self.first_response_due if self.first_responded_at is None else self.resolve_due

    def overdue(self, now):
        due = self.next_due
        return due is not None and due <= now


class TicketEvent(db.Model):
    """One row per step and per message of a ticket."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(24))
    author: Mapped[str] = mapped_column(sa.String(12))  # buyer | admin | system | supplier | station
    public: Mapped[bool] = mapped_column(default=False)  # the buyer sees it
    message: Mapped[str] = mapped_column(sa.Text, default="")
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # The other side's id of this message (a 主站's reply): the same reply arrives once.
    source_ref: Mapped[str | None] = mapped_column(sa.String(40))

    __table_args__ = (sa.UniqueConstraint("ticket_id", "source_ref", name="uq_ticket_events_source_ref"),)


class TicketAttachment(db.Model):
    """A screenshot the buyer sent; its bytes are an encrypted Upload."""

    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    upload_id: Mapped[int] = mapped_column(sa.ForeignKey("uploads.id"))
    mimetype: Mapped[str] = mapped_column(sa.String(32))
    width: Mapped[int]
    height: Mapped[int]
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
