"""Supplier scorecards (货源评分): how a supplier has served us over the last 7/30/90 days.

Every figure comes from rows the shop already keeps: sync runs, forward
attempts, orders, after-sales tickets the supplier answers for, and the
balance samples taken when balances are checked. Counts and rates are one
aggregate query each; percentiles are PostgreSQL's ``percentile_cont`` there,
and on SQLite the same linear interpolation over that supplier's sorted
durations (only its rows in the period are read).
"""
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from kamen.models import AttemptStatus, BalanceSample, ForwardAttempt, Order, SyncRun
from kamen.models.aftersales import Responsibility, Ticket
from kamen.services.ordering import now

PERIODS = {7: "近 7 天", 30: "近 30 天", 90: "近 90 天"}
DEFAULT_PERIOD = 30
# Forward-attempt outcomes that are settled: a success, or the supplier could not fill it.
SETTLED = (AttemptStatus.SUCCESS, AttemptStatus.PARTIAL, AttemptStatus.FAILED, AttemptStatus.REFUSED)
FILLED = (AttemptStatus.SUCCESS, AttemptStatus.PARTIAL)
# The ranking of failover sources looks at this window.
RANKING_DAYS = 30


@dataclass
class Durations:
    count: int = 0
    median: float | None = None  # seconds
    p95: float | None = None


@dataclass
class Scorecard:
    days: int
    sync_runs: int
    sync_succeeded: int
    attempts: int  # settled forward attempts
    attempts_filled: int
    attempts_open: int  # still waiting for a result (not counted in the rate)
    answer_time: Durations  # attempt sent → supplier answered success
    delivery_time: Durations  # order paid → delivered, orders this supplier filled
    orders: int  # orders this supplier filled
    tickets: int  # tickets the supplier answers for, opened in the period
    tickets_resolved: int
    resolution_time: Durations
    balances: list  # [(checked_at, balance)] oldest first

    @property
    def sync_rate(self):
        return _percent(self.sync_succeeded, self.sync_runs)

    @property
    def order_rate(self):
        return _percent(self.attempts_filled, self.attempts)

    @property
    def tickets_per_100(self):
        return _percent(self.tickets, self.orders)

    @property
    def balance_change(self):
        if len(self.balances) < 2:
            return None
        return self.balances[-1][1] - self.balances[0][1]


def _percent(part, whole):
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def period_days(value):
    """The period the admin chose (7/30/90), the default for anything else."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def _seconds(session, start, end):
    """``end - start`` in seconds, as SQL on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.extract("epoch", end - start)
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _interpolate(values, fraction):
    """percentile_cont over sorted values."""
    position = (len(values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _durations(session, seconds, where):
    """Count, median and p95 of ``seconds`` over the rows matching ``where``."""
    if session.get_bind().dialect.name == "postgresql":
        count, median, p95 = session.execute(
            sa.select(sa.func.count(), sa.func.percentile_cont(0.5).within_group(seconds),
                      sa.func.percentile_cont(0.95).within_group(seconds)).where(*where)).one()
        return Durations(count, _ms(median), _ms(p95))
    values = [float(v) for v in session.scalars(sa.select(seconds).where(*where).order_by(seconds))]
    if not values:
        return Durations()
    return Durations(len(values), _ms(_interpolate(values, 0.5)), _ms(_interpolate(values, 0.95)))


def _ms(seconds):
    """To the millisecond: julianday arithmetic carries float noise well below that."""
    return None if seconds is None else round(float(seconds), 3)


def scorecard(session, supplier_id, days=DEFAULT_PERIOD):
    since = now() - timedelta(days=days)

    runs, runs_ok = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(SyncRun.status == "succeeded"))
        .where(SyncRun.supplier_id == supplier_id, SyncRun.started_at >= since,
               SyncRun.status.in_(("succeeded", "failed")))).one()

    in_period = (ForwardAttempt.supplier_id == supplier_id, ForwardAttempt.requested_at >= since)
    settled, filled, waiting = session.execute(
        sa.select(sa.func.count().filter(ForwardAttempt.status.in_(SETTLED)),
                  sa.func.count().filter(ForwardAttempt.status.in_(FILLED)),
                  sa.func.count().filter(ForwardAttempt.status.not_in(SETTLED)))
        .where(*in_period)).one()
    answer_time = _durations(
        session, _seconds(session, ForwardAttempt.requested_at, ForwardAttempt.answered_at),
        (*in_period, ForwardAttempt.status.in_(FILLED), ForwardAttempt.answered_at.is_not(None)))

    filled_orders = (sa.select(ForwardAttempt.order_id).where(*in_period, ForwardAttempt.status.in_(FILLED))
                     .distinct().scalar_subquery())
    orders = session.scalar(sa.select(sa.func.count()).select_from(Order).where(Order.id.in_(filled_orders)))
    delivery_time = _durations(
        session, _seconds(session, Order.paid_at, Order.delivered_at),
        (Order.id.in_(filled_orders), Order.paid_at.is_not(None), Order.delivered_at.is_not(None)))

    theirs = (Ticket.supplier_id == supplier_id, Ticket.responsibility == Responsibility.SUPPLIER,
              Ticket.created_at >= since)
    tickets, resolved = session.execute(
        sa.select(sa.func.count(), sa.func.count(Ticket.resolved_at)).where(*theirs)).one()
    resolution_time = _durations(session, _seconds(session, Ticket.created_at, Ticket.resolved_at),
                                 (*theirs, Ticket.resolved_at.is_not(None)))

    balances = session.execute(
        sa.select(BalanceSample.checked_at, BalanceSample.balance)
        .where(BalanceSample.supplier_id == supplier_id, BalanceSample.checked_at >= since)
        .order_by(BalanceSample.checked_at, BalanceSample.id)).all()

    return Scorecard(days, runs, runs_ok, settled, filled, waiting, answer_time, delivery_time, orders,
                     tickets, resolved, resolution_time, [tuple(b) for b in balances])


def ranking(session, supplier_ids, days=RANKING_DAYS):
    """{supplier_id: (order success rate 0..1, median seconds to a successful answer)} for the suppliers
    with settled attempts in the period; suppliers without any are left out (no record to rank by)."""
    if not supplier_ids:
        return {}
    since = now() - timedelta(days=days)
    rows = session.execute(
        sa.select(ForwardAttempt.supplier_id, sa.func.count(), sa.func.count().filter(ForwardAttempt.status.in_(FILLED)))
        .where(ForwardAttempt.supplier_id.in_(supplier_ids), ForwardAttempt.requested_at >= since,
               ForwardAttempt.status.in_(SETTLED))
        .group_by(ForwardAttempt.supplier_id)).all()
    scores = {}
    for supplier_id, settled, filled in rows:
        answer = _durations(
            session, _seconds(session, ForwardAttempt.requested_at, ForwardAttempt.answered_at),
            (ForwardAttempt.supplier_id == supplier_id, ForwardAttempt.requested_at >= since,
             ForwardAttempt.status.in_(FILLED), ForwardAttempt.answered_at.is_not(None)))
        scores[supplier_id] = (filled / settled, answer.median)
    return scores
