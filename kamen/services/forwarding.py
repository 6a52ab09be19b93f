"""一键代发: a paid order placed with its supplier exactly once, its result brought back.

The flow (DESIGN.md flow 4):

- payment marks a forwardable order 货源处理中 and asks for ``jobs.forwarding.forward_order``
  (the order's ``forward_requested_at`` says so, and the sweeper asks again when the job
  never ran);
- the job commits a ``ForwardAttempt`` (status 正在提交) *before* the request leaves,
  keyed by our order number: a second job for the same order collides on the attempt's
  unique number and stops; a job killed mid-request leaves "maybe sent", which is
  queried, never placed again;
- answers come from the place reply, the supplier's callback or polling, and every
  one goes through :func:`settle`: one conditional UPDATE of the attempt, so the
  delivery happens once however many of them arrive;
- "can't fill" answers before the supplier accepted (out of stock, unavailable, price
  above the limit, our balance there) move to the product's next source; nothing
  left means oversell recovery (kamen.services.oversell).
"""
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from sqlalchemy.exc import IntegrityError

from kamen import queue, secretbox
from kamen.secretbox import SecretUnreadable
from kamen.models import (
    OPEN_ATTEMPTS,
    AttemptStatus,
    ForwardAttempt,
    Order,
    OrderStatus,
    Product,
    ProductSource,
    StockMode,
    Supplier,
)
from kamen.money import CENT
from kamen.services import alerts, scorecards, settings, sources
from kamen.services.ordering import now, record
from kamen.services.transitions import transition
from kamen.suppliers import base

log = logging.getLogger("kamen.forwarding")

FORWARDABLE_KINDS = sources.FORWARDABLE_KINDS
# Orders whose result is still being worked out with a supplier.
IN_FLIGHT = (OrderStatus.FORWARDING, OrderStatus.UNCERTAIN)
# Where a supplier's late answer can still deliver (the admin took the order over meanwhile).
SETTLEABLE = IN_FLIGHT + (OrderStatus.MANUAL,)
# Before anything was paid: this source cannot fill the order, the next one may.
CANNOT_FILL = (base.OutOfStock, base.ProductUnavailable, base.PriceAboveLimit, base.InsufficientBalance,
               base.AuthFailed)
# Nothing was sent: the same source, the same key, a little later.
NOT_SENT = (base.Transient, base.RateLimited)
POLL_BACKOFF_SECONDS = (30, 60, 120, 300, 600)
MAX_SEND_RETRIES = 5
# A job that committed its attempt is given this long to send it before pollers ask the supplier.
SENDING_GRACE = timedelta(minutes=2)
JOB_GRACE = timedelta(minutes=2)
BALANCE_WINDOW = timedelta(seconds=70)  # one tick, with some slack  # an order asked for a job this long ago with no attempt: ask again

_STATUS_OF = {
    base.OrderStatus.ACCEPTED: AttemptStatus.ACCEPTED,
    base.OrderStatus.PROCESSING: AttemptStatus.PROCESSING,
    base.OrderStatus.UNKNOWN: AttemptStatus.UNKNOWN,
    base.OrderStatus.SUCCESS: AttemptStatus.SUCCESS,
    base.OrderStatus.PARTIAL: AttemptStatus.PARTIAL,
    base.OrderStatus.FAILED: AttemptStatus.FAILED,
}


class ForwardRefused(ValueError):
    """An admin action that does not apply now; str() is the Chinese reason."""


SETTING_FIELDS = ("unknown_alert_minutes", "apology_coupon_amount", "apology_coupon_days", "score_sources")


def forwarding_settings(session):
    values = settings.get(session, "forwarding")
    values["apology_coupon_amount"] = Decimal(str(values["apology_coupon_amount"]))
    return values


def save_settings(session, values):
    """The back office's 代发设置; ForwardRefused (nothing saved) on values out of range."""
    if not 1 <= values["unknown_alert_minutes"] <= 7 * 24 * 60:
        raise ForwardRefused("提醒时间应在 1 分钟到 7 天之间")
    if not 0 <= values["apology_coupon_amount"] <= 1000:
        raise ForwardRefused("致歉优惠券金额应在 0 到 1000 元之间")
    if not 1 <= values["apology_coupon_days"] <= 365:
        raise ForwardRefused("优惠券有效天数应在 1 到 365 天之间")
    settings.put(session, "forwarding", {"unknown_alert_minutes": int(values["unknown_alert_minutes"]),
                                         "apology_coupon_amount": str(values["apology_coupon_amount"]),
                                         "apology_coupon_days": int(values["apology_coupon_days"]),
                                         "score_sources": bool(values.get("score_sources"))})


# -- sources ---------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    product_id: int
    supplier_id: int
    code: str
    drift_percent: Decimal


def takes_orders(supplier):
    """The supplier is active and has an ordering API (manual suppliers are fulfilled by hand)."""
    return supplier is not None and supplier.is_active and supplier.kind in FORWARDABLE_KINDS


def sources_for(session, product, ranked=True):
    """The products that can fill ``product``, in the order to try them: itself (when its
    supplier takes orders by API) and its extra sources (kamen.services.sources.ordered), best
    scored first when 代发设置 says so (``ranked=False``: only whether there are any matters).
    Local card-code goods have none."""
    if product.stock_mode is StockMode.CARDS:
        return []
    extras = list(session.scalars(
        sa.select(Product).join(ProductSource, ProductSource.source_id == Product.id)
        .where(ProductSource.product_id == product.id).order_by(ProductSource.position, ProductSource.id)))
    own = product if takes_orders(product.supplier) else None
    extras = [p for p in extras if takes_orders(p.supplier)]
    scores = None
    if ranked and extras and forwarding_settings(session)["score_sources"]:
        scores = scorecards.ranking(session, {p.supplier_id for p in ([own] if own else []) + extras})
    chain = sources.ordered(product, own, extras, scores)
    return [Source(p.id, p.supplier_id, p.code, p.supplier.order_price_drift_percent) for p in chain]


def is_forwardable(session, product_id):
    product = session.get(Product, product_id)
    return product is not None and bool(sources_for(session, product, ranked=False))


def max_unit_cost(order, drift_percent):
    """The cost we priced with, per unit, plus the supplier's allowed drift (rounded down to the cent)."""
    unit = order.cost / order.quantity
    return (unit * (1 + Decimal(drift_percent) / 100)).quantize(CENT, rounding=ROUND_DOWN)


# -- starting --------------------------------------------------------------------


def begin(session, order_id):
    """paid → 货源处理中, inside the payment's transaction. The caller commits, then calls request_job."""
    if transition(session, Order, order_id, OrderStatus.PAID, OrderStatus.FORWARDING, forward_requested_at=now()):
        record(session, order_id, "forwarding", "已支付，正在向货源下单（一键代发）")
        return True
    return False


def request_job(session, order_id, touch=True):
    """Ask for the order's forwarding job. The payment's ask has the order's own job id
    (``kamen-forward-<order no>``: unique across shops sharing a Redis, and one job per order
    while it waits); a later ask (the tick restarting a lost job, 重发) gets the time too, so it
    never reuses the hash of an earlier job that Redis is about to expire. Two jobs for one
    order are harmless: the attempt rows let one place it.
    ``touch``: record the time of asking (``begin`` already did, in the payment's transaction)."""
    order_no = session.scalar(sa.select(Order.order_no).where(Order.id == order_id))
    job_id = f"kamen-forward-{order_no}"
    if touch:
        at = now()
        session.execute(sa.update(Order).where(Order.id == order_id).values(forward_requested_at=at)
                        .execution_options(synchronize_session=False))
        session.commit()
        job_id += f"-{int(at.timestamp())}"
    return queue.enqueue("jobs.forwarding.forward_order", order_id, job_id=job_id)


def callback_url(supplier_id):
    """The absolute address of this supplier's order callback, or None when kamen does not know its own."""
    base_url = current_app.config.get("PUBLIC_URL") or ""
    if base_url:
        return f"{base_url.rstrip('/')}/api/suppliers/{supplier_id}/callback"
    if has_request_context():
        return url_for("api.supplier_callback", supplier_id=supplier_id, _external=True)
    return None


def adapter_for(supplier):
    from kamen.services.syncing import adapter_for_supplier

    return adapter_for_supplier(supplier, callback_url=callback_url(supplier.id),
                                timeout=current_app.config["FORWARD_TIMEOUT_SECONDS"])


# -- the job -----------------------------------------------------------------------


def forward(session, order_id):
    """Place the order with its next source; stop at the first source that takes it.

    Safe to run twice at once or again after a crash: the attempt rows decide."""
    order = session.get(Order, order_id)
    if order is None or order.status is not OrderStatus.FORWARDING:
        return None
    while True:
        attempts = _attempts(session, order_id)
        last = attempts[-1] if attempts else None
        if last is not None and last.status not in (AttemptStatus.REFUSED, AttemptStatus.FAILED):
            return last  # the supplier has it (or may have it): polling and callbacks finish it
        tried = {(a.supplier_id, a.code) for a in attempts}
        order = session.get(Order, order_id)
        remaining = [s for s in sources_for(session, order.product) if (s.supplier_id, s.code) not in tried]
        if not remaining and not attempts:  # its suppliers were switched off after the payment
            if transition(session, Order, order_id, OrderStatus.FORWARDING, OrderStatus.MANUAL):
                record(session, order_id, "manual", "没有可自动下单的货源（货源已停用或改为手工），已转人工处理")
                session.commit()
            return None
        if not remaining:
            from kamen.services import oversell

            oversell.recover(session, order_id, [f"{a.supplier.name}：{a.message}" for a in attempts])
            return last
        attempt = _new_attempt(session, order, remaining[0], attempts)
        if attempt is None:
            return None  # another job is placing this order
        _send(session, attempt.id)
        session.expire_all()
        attempt, order_status = session.execute(
            sa.select(ForwardAttempt, Order.status).join(Order, Order.id == ForwardAttempt.order_id)
            .where(ForwardAttempt.id == attempt.id)).one()
        if order_status is not OrderStatus.FORWARDING \
                or attempt.status not in (AttemptStatus.REFUSED, AttemptStatus.FAILED):
            return attempt


def run_job(session, order_id):
    """The forwarding job: ``forward``, with any crash written on the order's timeline
    (the tick asks for the job again while nothing is with a supplier)."""
    try:
        return forward(session, order_id)
    except Exception as exc:
        session.rollback()
        log.exception("forwarding order %s failed", order_id)
        record(session, order_id, "forward_error", f"代发任务出错（{type(exc).__name__}），稍后自动重试；已提交的货源订单只会查询")
        session.commit()
        raise


def _attempts(session, order_id):
    return list(session.scalars(sa.select(ForwardAttempt).where(ForwardAttempt.order_id == order_id)
                                .order_by(ForwardAttempt.attempt_no)))


def _new_attempt(session, order, source, attempts):
    number = len(attempts) + 1
    same_supplier = any(a.supplier_id == source.supplier_id for a in attempts)
    key = f"{order.order_no}-{number}" if same_supplier else order.order_no
    at = now()
    attempt = ForwardAttempt(
        order_id=order.id, attempt_no=number, supplier_id=source.supplier_id, source_product_id=source.product_id,
        code=source.code, idempotency_key=key, status=AttemptStatus.SENDING, accepted=False,
        max_unit_cost=max_unit_cost(order, source.drift_percent), requested_at=at, next_poll_at=at + SENDING_GRACE,
    )
    session.add(attempt)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    supplier = session.get(Supplier, source.supplier_id)
    record(session, order.id, "forward_sent",
           f"第 {number} 次下单：货源“{supplier.name}”商品 {source.code}，最高成本 ¥{attempt.max_unit_cost}/件",
           {"supplier": supplier.code, "code": source.code, "idempotency_key": key, "quantity": order.quantity,
            "max_unit_cost": str(attempt.max_unit_cost)})
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return attempt


def _send(session, attempt_id):
    """One place_order call for a committed attempt; its answer settled."""
    # One statement for what the request needs, and the adapter built before the commit expires the supplier.
    key, code, limit, qty, fields, supplier = session.execute(
        sa.select(ForwardAttempt.idempotency_key, ForwardAttempt.code, ForwardAttempt.max_unit_cost, Order.quantity,
                  Order.buyer_fields, Supplier)
        .join(Order, Order.id == ForwardAttempt.order_id).join(Supplier, Supplier.id == ForwardAttempt.supplier_id)
        .where(ForwardAttempt.id == attempt_id)).one()
    fields = dict(fields or {})
    try:
        adapter, unusable = adapter_for(supplier), None
    except (base.SupplierError, SecretUnreadable) as exc:
        adapter, unusable = None, exc
    session.commit()  # no transaction held open while the supplier answers
    if unusable is not None:  # nothing sent: the admin fixes the settings
        return _retry_later(session, attempt_id, base.SupplierError(f"货源设置有误：{unusable}"))
    try:
        result = adapter.place_order(key, code, qty, fields, limit)
    except CANNOT_FILL as exc:
        return _refuse(session, attempt_id, exc)
    except NOT_SENT as exc:
        return _retry_later(session, attempt_id, exc)
    except base.Ambiguous as exc:
        result = base.OrderResult(base.OrderStatus.UNKNOWN, message=exc.message, idempotency_key=key)
    except base.InvalidAccount as exc:
        return _fail_for_buyer(session, attempt_id, exc)
    except base.SupplierError as exc:
        return _refuse(session, attempt_id, exc)
    except Exception as exc:  # a bug after the request may have left: never place again, ask later
        log.exception("placing attempt %s failed unexpectedly", attempt_id)
        result = base.OrderResult(base.OrderStatus.UNKNOWN, message=f"下单时出现程序错误（{type(exc).__name__}），稍后查询",
                                  idempotency_key=key)
    return settle(session, attempt_id, result, "place")


def _refuse(session, attempt_id, exc):
    """Refused before anything was paid: this source is done, failover decides what next."""
    attempt = session.get(ForwardAttempt, attempt_id)
    if not transition(session, ForwardAttempt, attempt_id, (AttemptStatus.SENDING, AttemptStatus.RETRY),
                      AttemptStatus.REFUSED, message=str(exc)[:300], answered_at=now(), next_poll_at=None):
        session.rollback()
        return False
    record(session, attempt.order_id, "forward_refused", f"货源未接单：{exc}", {"error": type(exc).__name__})
    if isinstance(exc, (base.OutOfStock, base.ProductUnavailable)) and attempt.source_product_id:
        sources.mark_out(session, attempt.source_product_id)  # fresher news than the last sync
    session.commit()
    if isinstance(exc, (base.InsufficientBalance, base.AuthFailed)):
        supplier = session.get(Supplier, attempt.supplier_id)
        alerts.raise_alert(session, "forward_supplier_refused", "货源拒绝下单，请检查货源账户",
                           [f"货源“{supplier.name}”：{exc}"])
    return True


def _retry_later(session, attempt_id, exc):
    attempt = session.get(ForwardAttempt, attempt_id)
    polls = attempt.polls + 1
    if polls >= MAX_SEND_RETRIES:
        return _refuse(session, attempt_id, base.SupplierError(f"{exc}（已重试 {polls} 次）"))
    if transition(session, ForwardAttempt, attempt_id, (AttemptStatus.SENDING, AttemptStatus.RETRY),
                  AttemptStatus.RETRY, message=str(exc)[:300], polls=polls, next_poll_at=now() + _backoff(polls)):
        record(session, attempt.order_id, "forward_retry", f"下单请求未能送达货源，稍后用同一订单号重试：{exc}")
    session.commit()
    return True


def _fail_for_buyer(session, attempt_id, exc):
    """The buyer's details are wrong: no other source would take them either. An admin decides."""
    attempt = session.get(ForwardAttempt, attempt_id)
    if not transition(session, ForwardAttempt, attempt_id, (AttemptStatus.SENDING, AttemptStatus.RETRY),
                      AttemptStatus.REFUSED, message=str(exc)[:300], answered_at=now(), next_poll_at=None):
        session.rollback()
        return False
    record(session, attempt.order_id, "forward_refused", f"货源拒绝：{exc}")
    if transition(session, Order, attempt.order_id, IN_FLIGHT, OrderStatus.MANUAL):
        record(session, attempt.order_id, "manual", "买家填写的充值信息有误，已转人工处理（联系买家更正后手动发货或退款）")
    session.commit()
    return True


def _backoff(polls):
    """How long to wait after ``polls`` questions: 30 s, 1, 2, 5, then every 10 minutes."""
    return timedelta(seconds=POLL_BACKOFF_SECONDS[min(polls, len(POLL_BACKOFF_SECONDS) - 1)])


# -- results -------------------------------------------------------------------------


def settle(session, attempt_id, result, via):
    """Apply one answer about an attempt (place reply, callback or query). Returns True when it moved anything.

    The attempt moves with one conditional UPDATE from an open status, so of a callback
    and a poll arriving together exactly one delivers; the other only adds a timeline row."""
    attempt = session.get(ForwardAttempt, attempt_id)
    order = session.get(Order, attempt.order_id)
    label = {"place": "下单回复", "callback": "货源回调", "query": "查询结果"}.get(via, via)
    status = _STATUS_OF[result.status]
    cards = list(result.cards or [])
    if status is AttemptStatus.SUCCESS and order.delivery_type == "card" and len(cards) < order.quantity:
        # A card order is delivered by its cards: none yet is still coming, some is partial.
        status = AttemptStatus.PARTIAL if cards else AttemptStatus.PROCESSING
    values = dict(answered_at=now(), message=(result.message or "")[:300])
    if result.supplier_order_id:
        values["supplier_order_id"] = str(result.supplier_order_id)[:64]
    if result.cost is not None:
        values["unit_cost"] = result.cost
    raw = {"via": via, "status": result.status.value, "message": result.message, **(result.raw or {})}

    if status in (AttemptStatus.ACCEPTED, AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN):
        return _still_open(session, attempt, status, values, label, raw, via)
    if not transition(session, ForwardAttempt, attempt_id, OPEN_ATTEMPTS, status, next_poll_at=None,
                      accepted=attempt.accepted or status is not AttemptStatus.FAILED or via != "place", **values):
        session.rollback()
        _duplicate(session, attempt, order, status, label, result, raw)
        return False
    if status is AttemptStatus.FAILED:
        return _failed(session, attempt, via, label, result, raw)
    return _deliver(session, attempt, order, status, cards, label, result, raw)


def _still_open(session, attempt, status, values, label, raw, via):
    polls = attempt.polls + (1 if via == "query" else 0)
    accepted = attempt.accepted or status in (AttemptStatus.ACCEPTED, AttemptStatus.PROCESSING)
    moved = transition(session, ForwardAttempt, attempt.id, OPEN_ATTEMPTS, status, polls=polls, accepted=accepted,
                       next_poll_at=now() + _backoff(polls), **values)
    if moved and (status is not attempt.status or via != "query"):
        text = {AttemptStatus.ACCEPTED: "货源已接单，等待结果", AttemptStatus.PROCESSING: "货源处理中",
                AttemptStatus.UNKNOWN: "结果未知（不会重复下单，稍后查询）"}[status]
        record(session, attempt.order_id, f"forward_{status.value}", f"{label}：{text}"
               + (f"：{values['message']}" if values["message"] and status is AttemptStatus.UNKNOWN else ""), raw)
    session.commit()
    return moved


def _duplicate(session, attempt, order, status, label, result, raw):
    session.expire_all()
    now_status = session.get(ForwardAttempt, attempt.id).status
    if status is AttemptStatus.FAILED and now_status in (AttemptStatus.SUCCESS, AttemptStatus.PARTIAL):
        # The supplier took back a delivered order (a kamen 主站 refunding it after a 售后 ticket):
        # the money is back on our balance there; the buyer still holds what was delivered.
        record(session, attempt.order_id, "forward_reversed",
               f"{label}：货源已撤销此前的发货并退款：{result.message or '未说明原因'}", raw)
        session.commit()
        alerts.raise_alert(session, "forward_reversed", "货源在发货后退款，请核对",
                           [f"订单 {order.order_no}（{order.product_name} × {order.quantity}）：{result.message or '货源已退款'}。"
                            "如买家也应退款，请在订单页处理"])
        return
    record(session, attempt.order_id, "forward_duplicate", f"{label}：该次下单已是“{now_status.label}”，已忽略", raw)
    session.commit()


def _failed(session, attempt, via, label, result, raw):
    before_accept = via == "place" and not attempt.accepted
    text = f"{label}：货源处理失败：{result.message or '未说明原因'}"
    record(session, attempt.order_id, "forward_failed", text, raw)
    session.commit()
    if before_accept:
        return True  # forward() moves on to the next source
    if transition(session, Order, attempt.order_id, IN_FLIGHT, OrderStatus.MANUAL):
        record(session, attempt.order_id, "manual",
               "货源接单后处理失败，已转人工处理：可“重发到下一个货源”或退款")
        session.commit()
        order = session.get(Order, attempt.order_id)
        alerts.raise_alert(session, "forward_failed", "代发订单失败，需要处理",
                           [f"订单 {order.order_no}（{order.product_name} × {order.quantity}）：{result.message or '货源处理失败'}"])
    return True


def _card_text(cards):
    lines = []
    for card in cards:
        number, password = card.get("number"), card.get("password")
        parts = [f"卡号：{number}"] if number else []
        if password:
            parts.append(f"卡密：{password}")
        if card.get("expires"):
            parts.append(f"有效期：{card['expires']}")
        lines.append("  ".join(parts))
    return "\n".join(lines)


_CARD_PART = re.compile(r"(卡号|卡密|有效期)：(.*?)(?=  (?:卡号|卡密|有效期)：|$)")


def parse_card_text(text):
    """Cards back from a delivery note: the lines ``_card_text`` wrote, and any other
    non-empty line (typed by an admin delivering by hand) as one card's secret."""
    cards = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        parts = dict(_CARD_PART.findall(line)) if line.startswith(("卡号：", "卡密：")) else {}
        if parts:
            cards.append({"number": parts.get("卡号") or None, "password": parts.get("卡密") or None,
                          "expires": parts.get("有效期") or None})
        else:
            cards.append({"number": None, "password": line.strip(), "expires": None})
    return cards


def _deliver(session, attempt, order, status, cards, label, result, raw):
    order_id, station_id = order.id, order.station_id  # read now: the transition and the commit expire the order
    note = _card_text(cards) or (result.message or "")
    values = dict(delivered_at=now())
    if note:
        values["delivery_note"] = secretbox.encrypt(note)
    missing = order.quantity - len(cards) if status is AttemptStatus.PARTIAL and cards else 0
    if status is AttemptStatus.PARTIAL and missing > 0:
        values.update(refund_amount=(order.amount * missing / order.quantity).quantize(CENT),
                      refund_reason=f"货源只发出 {len(cards)}/{order.quantity} 件，其余已退款"[:200])
    if not transition(session, Order, order.id, SETTLEABLE, OrderStatus.DELIVERED, **values):
        record(session, order.id, "forward_late", f"{label}：货源已发货，但订单已是“{order.status.label}”，请核对", raw)
        session.commit()
        alerts.raise_alert(session, "forward_late", "货源在订单处理完后才发货，请核对",
                           [f"订单 {order.order_no}（{order.product_name} × {order.quantity}）已是“{order.status.label}”，"
                            "货源随后确认发货并已扣款：请向货源申请退款，或联系买家"])
        return True
    if station_id is not None and values.get("refund_amount"):
        # A 分站 paid from its balance: the part not delivered goes back there, in this transaction.
        from kamen.services import station_orders

        station_orders.credit(session, station_id, values["refund_amount"])
    if status is AttemptStatus.PARTIAL and missing > 0:
        record(session, order_id, "delivered",
               f"{label}：部分发货 {len(cards)}/{order.quantity} 件；缺 {missing} 件，已退款 ¥{values['refund_amount']}",
               raw)
    else:
        record(session, order_id, "delivered",
               f"{label}：货源已发货" + (f"（{len(cards)} 张卡密）" if cards else ""), raw)
    session.commit()
    if station_id is not None:
        from kamen.services import station_orders

        station_orders.notify_soon(order)
    if status is AttemptStatus.PARTIAL and missing > 0 and station_id is None:
        alerts.raise_alert(session, "forward_partial", "代发订单部分发货",
                           [f"订单 {order.order_no}：发出 {len(cards)}/{order.quantity} 件，余款 ¥{values['refund_amount']} "
                            "已记为退款，请在支付平台退还买家"])
    return True


# -- callbacks -------------------------------------------------------------------------


@dataclass
class CallbackAnswer:
    status: int
    body: str


def handle_callback(session, supplier_id, headers, body):
    """A supplier's order notification: verified by its adapter, settled like any answer.

    The body ``success`` tells Fulu-style gateways to stop retrying (docs/fulu.md);
    a forged or unreadable notification gets an error, and changes nothing."""
    supplier = session.get(Supplier, supplier_id)
    if supplier is None or not takes_orders(supplier):
        return CallbackAnswer(404, "unknown supplier")
    try:
        result = adapter_for(supplier).parse_callback(headers, body)
    except base.SupplierError as exc:
        log.warning("supplier %s callback refused: %s", supplier.code, exc)
        return CallbackAnswer(403 if isinstance(exc, base.AuthFailed) else 400, "fail")
    attempt = session.scalar(sa.select(ForwardAttempt).where(
        ForwardAttempt.supplier_id == supplier_id, ForwardAttempt.idempotency_key == (result.idempotency_key or "")))
    if attempt is None:
        log.warning("supplier %s callback for unknown order %r", supplier.code, result.idempotency_key)
        return CallbackAnswer(404, "unknown order")
    settle(session, attempt.id, result, "callback")
    session.expire_all()
    if result.status is base.OrderStatus.SUCCESS and session.get(ForwardAttempt, attempt.id).status in OPEN_ATTEMPTS:
        poll(session, attempt.id)  # done without its cards (Fulu callbacks carry none): fetch them now
    return CallbackAnswer(200, "success")


# -- polling -----------------------------------------------------------------------------


def poll_due(session, limit=100):
    """The schedule's step: ask suppliers about open attempts whose time has come, retry unsent
    ones, restart orders whose job never ran, and alert once about answers overdue."""
    at = now()
    due = session.execute(
        sa.select(ForwardAttempt.id, ForwardAttempt.next_poll_at)
        .join(Order, Order.id == ForwardAttempt.order_id)
        .where(ForwardAttempt.status.in_(OPEN_ATTEMPTS), ForwardAttempt.next_poll_at <= at,
               Order.status.in_(IN_FLIGHT))
        .order_by(ForwardAttempt.next_poll_at).limit(limit)
    ).all()
    polled = 0
    for attempt_id, due_at in due:
        if _claim_poll(session, attempt_id, due_at, at):
            poll(session, attempt_id)
            polled += 1
    _restart_stalled(session, at)
    _alert_overdue(session, at)
    _check_balances(session, at)
    return polled


def _check_balances(session, at):
    """Orders spend our balance at suppliers: after a minute with orders placed, each such supplier
    with a 余额告警 line is asked for its balance (one alert until it recovers)."""
    from kamen.services.syncing import check_balance

    supplier_ids = session.scalars(
        sa.select(ForwardAttempt.supplier_id).distinct()
        .join(Supplier, Supplier.id == ForwardAttempt.supplier_id)
        .where(ForwardAttempt.requested_at > at - BALANCE_WINDOW, Supplier.balance_alert_below.is_not(None))
    ).all()
    for supplier_id in supplier_ids:
        supplier = session.get(Supplier, supplier_id)
        try:
            check_balance(session, supplier, adapter_for(supplier))
        except base.SupplierError as exc:
            log.warning("balance of supplier %s not checked: %s", supplier.code, exc)


def supplier_summary(session, supplier_id):
    """What the supplier page shows of 一键代发: orders waiting on it, unknown, failed today."""
    since = now() - timedelta(days=1)
    rows = session.execute(
        sa.select(ForwardAttempt.status, sa.func.count()).where(
            ForwardAttempt.supplier_id == supplier_id,
            sa.or_(ForwardAttempt.status.in_(OPEN_ATTEMPTS), ForwardAttempt.requested_at >= since))
        .group_by(ForwardAttempt.status)).all()
    counts = {status: n for status, n in rows}
    return {"open": sum(counts.get(s, 0) for s in OPEN_ATTEMPTS if s is not AttemptStatus.UNKNOWN),
            "unknown": counts.get(AttemptStatus.UNKNOWN, 0),
            "failed": counts.get(AttemptStatus.FAILED, 0) + counts.get(AttemptStatus.REFUSED, 0),
            "succeeded": counts.get(AttemptStatus.SUCCESS, 0) + counts.get(AttemptStatus.PARTIAL, 0)}


def _claim_poll(session, attempt_id, due_at, at):
    """Of two pollers reaching the same attempt, one asks (the other sees next_poll_at moved)."""
    stmt = (sa.update(ForwardAttempt).where(ForwardAttempt.id == attempt_id, ForwardAttempt.next_poll_at == due_at)
            .values(next_poll_at=at + SENDING_GRACE).execution_options(synchronize_session=False))
    taken = session.execute(stmt).rowcount == 1
    session.commit()
    return taken


def poll(session, attempt_id):
    """Ask the supplier once about an open attempt (or send an unsent one again, same key)."""
    attempt = session.get(ForwardAttempt, attempt_id)
    if attempt.status not in OPEN_ATTEMPTS:
        return False
    if attempt.status is AttemptStatus.RETRY:
        order_id = attempt.order_id
        _send(session, attempt_id)
        forward(session, order_id)  # refused this time: the next source
        return True
    supplier = session.get(Supplier, attempt.supplier_id)
    key, supplier_order_id = attempt.idempotency_key, attempt.supplier_order_id
    session.commit()
    try:
        result = adapter_for(supplier).query_order(key, supplier_order_id)
    except base.SupplierError as exc:
        result = base.OrderResult(base.OrderStatus.UNKNOWN, message=f"查询失败：{exc}", idempotency_key=key)
    return settle(session, attempt_id, result, "query")


def _restart_stalled(session, at):
    """Orders 货源处理中 with no open attempt and no job for a while: the job never ran, died
    between sources, or failover is due after a refusal. Ask for the job again."""
    open_attempt = sa.exists().where(ForwardAttempt.order_id == Order.id, ForwardAttempt.status.in_(OPEN_ATTEMPTS))
    stalled = session.scalars(
        sa.select(Order.id).where(Order.status == OrderStatus.FORWARDING, ~open_attempt,
                                  sa.or_(Order.forward_requested_at.is_(None),
                                         Order.forward_requested_at <= at - JOB_GRACE)).limit(100)
    ).all()
    for order_id in stalled:
        log.warning("order %s: forwarding job missing, asking again", order_id)
        request_job(session, order_id)


def _alert_overdue(session, at):
    """One alert for every order whose supplier has not answered by the deadline (the order
    becomes 结果未知; polling goes on, nothing is placed again or refunded)."""
    minutes = int(forwarding_settings(session)["unknown_alert_minutes"])
    overdue = session.execute(
        sa.select(ForwardAttempt.id, ForwardAttempt.order_id)
        .join(Order, Order.id == ForwardAttempt.order_id)
        .where(ForwardAttempt.status.in_(OPEN_ATTEMPTS), ForwardAttempt.alerted_at.is_(None),
               ForwardAttempt.requested_at <= at - timedelta(minutes=minutes), Order.status.in_(IN_FLIGHT))
    ).all()
    lines = []
    for attempt_id, order_id in overdue:
        taken = session.execute(sa.update(ForwardAttempt)
                                .where(ForwardAttempt.id == attempt_id, ForwardAttempt.alerted_at.is_(None))
                                .values(alerted_at=at).execution_options(synchronize_session=False)).rowcount == 1
        if not taken:
            continue
        if transition(session, Order, order_id, OrderStatus.FORWARDING, OrderStatus.UNCERTAIN):
            record(session, order_id, "uncertain",
                   f"货源超过 {minutes} 分钟仍未给出结果：继续查询，不会重复下单或自动退款；请到货源后台核对")
        session.commit()
        order = session.get(Order, order_id)
        lines.append(f"订单 {order.order_no}（{order.product_name} × {order.quantity}）")
    session.commit()
    if lines:
        alerts.raise_alert(session, "forward_unknown", f"{len(lines)} 个代发订单超过 {minutes} 分钟没有结果，请核对", lines)
    return len(lines)


# -- the admin's actions -------------------------------------------------------------------


def attempts_of(session, order_id):
    return _attempts(session, order_id)


@dataclass(frozen=True)
class AdminActions:
    query: bool  # 重新查询
    take_over: bool  # 改为人工处理
    resend: bool  # 重发到下一个货源


def admin_actions(session, order, attempts):
    """Which forwarding buttons the order page shows (each action checks again when clicked)."""
    last = attempts[-1] if attempts else None
    resend = False
    if last is not None and last.status is AttemptStatus.FAILED and order.status in SETTLEABLE:
        tried = {(a.supplier_id, a.code) for a in attempts}
        resend = any((s.supplier_id, s.code) not in tried for s in sources_for(session, order.product))
    return AdminActions(query=last is not None and last.status in OPEN_ATTEMPTS and order.status in SETTLEABLE,
                        take_over=order.status in IN_FLIGHT, resend=resend)


def latest_attempt(session, order_id):
    return session.scalar(sa.select(ForwardAttempt).where(ForwardAttempt.order_id == order_id)
                          .order_by(ForwardAttempt.attempt_no.desc()).limit(1))


def query_now(session, order_id):
    """重新查询: ask the supplier about the order's open attempt now. Returns a message for the admin."""
    attempt = latest_attempt(session, order_id)
    if attempt is None or attempt.status not in OPEN_ATTEMPTS:
        raise ForwardRefused("该订单没有等待结果的货源订单")
    poll(session, attempt.id)
    session.expire_all()
    attempt = session.get(ForwardAttempt, attempt.id)
    return f"已向货源查询：{attempt.status.label}" + (f"（{attempt.message}）" if attempt.message else "")


def take_over(session, order_id, admin_note=""):
    """改为人工处理: stop waiting on the supplier; a late answer that delivers is still applied."""
    if not transition(session, Order, order_id, IN_FLIGHT, OrderStatus.MANUAL):
        session.rollback()
        raise ForwardRefused("只有货源处理中或结果未知的订单可以改为人工处理")
    session.execute(sa.update(ForwardAttempt)
                    .where(ForwardAttempt.order_id == order_id, ForwardAttempt.status.in_(OPEN_ATTEMPTS))
                    .values(next_poll_at=None).execution_options(synchronize_session=False))
    record(session, order_id, "manual", "管理员改为人工处理：不再自动查询货源" + (f"：{admin_note}" if admin_note else ""))
    session.commit()


def resend_next(session, order_id):
    """重发到下一个货源: only after the last attempt is known FAILED (never on unknown)."""
    last = latest_attempt(session, order_id)
    if last is None or last.status is not AttemptStatus.FAILED:
        raise ForwardRefused("只有上一次下单已确认失败时才能重发到下一个货源")
    order = session.get(Order, order_id)
    tried = {(a.supplier_id, a.code) for a in _attempts(session, order_id)}
    if not [s for s in sources_for(session, order.product) if (s.supplier_id, s.code) not in tried]:
        raise ForwardRefused("没有其他可用货源了：请手动发货或退款")
    if not transition(session, Order, order_id, (OrderStatus.MANUAL,) + IN_FLIGHT, OrderStatus.FORWARDING):
        session.rollback()
        raise ForwardRefused("该订单当前状态不能重发")
    record(session, order_id, "forwarding", "管理员重发到下一个货源")
    session.commit()
    return request_job(session, order_id)
