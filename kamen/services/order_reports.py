"""Back-office views of orders: the filtered list, period totals, today's numbers."""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from kamen.models import Order, OrderStatus
from kamen.timeutil import from_local, to_local, utcnow

# Money that stays with the shop: paid orders not refunded.
EARNING = (OrderStatus.PAID, OrderStatus.DELIVERED, OrderStatus.UNFULFILLABLE, OrderStatus.FORWARDING,
           OrderStatus.UNCERTAIN, OrderStatus.MANUAL)
# 待人工处理: paid orders waiting for a person (hand delivery, a supplier that failed or went silent).
TODO = "todo"
TODO_STATUSES = (OrderStatus.PAID, OrderStatus.MANUAL, OrderStatus.UNCERTAIN, OrderStatus.UNFULFILLABLE)


@dataclass
class OrderFilters:
    status: str = ""
    product: str = ""
    contact: str = ""
    order_no: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_args(cls, args):
        return cls(
            status=args.get("status", "") if args.get("status") in {s.value for s in OrderStatus} | {TODO} else "",
            product=args.get("product", "").strip()[:60],
            contact=args.get("contact", "").strip()[:64],
            order_no=args.get("order_no", "").strip().upper()[:32],
            date_from=_date(args.get("from")),
            date_to=_date(args.get("to")),
        )

    def where(self):
        conditions = []
        if self.status == TODO:
            conditions.append(Order.status.in_(TODO_STATUSES))
        elif self.status:
            conditions.append(Order.status == OrderStatus(self.status))
        if self.product:
            conditions.append(Order.product_name.contains(self.product, autoescape=True))
        if self.contact:
            conditions.append(Order.contact == self.contact)
        if self.order_no:
            conditions.append(Order.order_no == self.order_no)
        if self.date_from:
            conditions.append(Order.created_at >= from_local(datetime.combine(self.date_from, time.min)))
        if self.date_to:
            conditions.append(Order.created_at < from_local(datetime.combine(self.date_to + timedelta(days=1), time.min)))
        return conditions


def _date(text):
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def todo_count(session):
    return session.scalar(sa.select(sa.func.count()).select_from(Order).where(Order.status.in_(TODO_STATUSES)))


def order_page(session, filters, page=1, per_page=50):
    query = sa.select(Order).where(*filters.where())
    total = session.scalar(sa.select(sa.func.count()).select_from(Order).where(*filters.where()))
    query = query.options(joinedload(Order.station))  # station orders are marked with their 分站
    rows = session.scalars(query.order_by(Order.id.desc()).limit(per_page).offset((max(page, 1) - 1) * per_page)).all()
    return rows, total


@dataclass
class Totals:
    orders: int
    paid: int
    revenue: Decimal
    cost: Decimal

    @property
    def margin(self):
        return self.revenue - self.cost


def totals(session, conditions):
    earning = Order.status.in_(EARNING)
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(earning),
            # A partial delivery gave part of the money back (refund_amount).
            sa.func.coalesce(sa.func.sum(Order.amount - sa.func.coalesce(Order.refund_amount, 0)).filter(earning), 0),
            sa.func.coalesce(sa.func.sum(Order.cost).filter(earning), 0),
        ).where(*conditions)
    ).one()
    return Totals(row[0], row[1], Decimal(row[2]).quantize(Decimal("0.01")), Decimal(row[3]).quantize(Decimal("0.01")))


def period_totals(session, filters):
    return totals(session, filters.where())


def today_totals(session):
    """Today's orders, revenue and margin, in the shop's time zone."""
    today = to_local(utcnow()).date()
    return totals(session, OrderFilters(date_from=today, date_to=today).where())
