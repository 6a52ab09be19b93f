"""This shop as a 主站: orders placed by 分站 through the upstream API.

A station's order is paid from its prepaid balance in the transaction that
creates it (one conditional UPDATE: never below zero), then goes through the
same payment and fulfilment path as a shop order (``ordering.apply_payment``).
The station's order number is its idempotency key: unique per station, so a
retried or doubled create finds the first order and never makes a second.

When the order reaches a final state (delivered, refunded) the station is
told at its ``notify_url`` by a signed POST; due callbacks are found from the
order row (``station_notify_next_at``) by the per-minute tick and retried
with backoff, each attempt on the order's timeline. Wire format:
docs/upstream-api.md.
"""
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen import queue
from kamen.models import DownstreamStation, Order, OrderStatus, Product, Supplier
from kamen.money import CENT
from kamen.outbound import AddressRefused, check_host
from kamen.secretbox import decrypt
from kamen.services import forwarding, ordering, reservations
from kamen.services.ordering import OrderRefused
from kamen.services.stations import public_code, station_price
from kamen.suppliers.kamen_signing import sign_headers

log = logging.getLogger("kamen.station_orders")

ORDER_NO = re.compile(r"[A-Za-z0-9_.|-]{1,64}")
MAX_NOTIFY_URL = 500
FINAL = (OrderStatus.DELIVERED, OrderStatus.REFUNDED)
# Seconds to wait after failed callback attempt 1, 2, … ; after the last the
# 主站 stops (about 10 hours in all) and the station can still query.
NOTIFY_BACKOFF_SECONDS = (15, 60, 180, 600, 1800, 3600, 7200, 21600)
NOTIFY_TIMEOUT = 10
NOTIFY_READ_BYTES = 4096
DUE_BATCH = 200


class StationOrderRefused(Exception):
    """Nothing was created or taken; ``code``/``status`` for the API error body, ``message`` in Chinese."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message):
    return StationOrderRefused(400, "bad_request", message)


@dataclass(frozen=True)
class StationOrderRequest:
    order_no: str
    code: str
    quantity: int
    fields: dict
    max_unit_cost: Decimal | None
    notify_url: str | None

    @classmethod
    def from_json(cls, body):
        """The create-order body, checked for shape; raises StationOrderRefused (400)."""
        if not isinstance(body, dict):
            raise _bad("请求体应为 JSON 对象")
        order_no = body.get("order_no")
        if not isinstance(order_no, str) or not ORDER_NO.fullmatch(order_no):
            raise _bad("order_no 应为 1-64 位字母、数字或 _ . | -")
        code = body.get("code")
        if not isinstance(code, str) or not code or len(code) > 200:
            raise _bad("code 应为主站的商品编码")
        quantity = body.get("quantity")
        if isinstance(quantity, str) and re.fullmatch(r"[0-9]{1,6}", quantity):
            quantity = int(quantity)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 999999:
            raise _bad("quantity 应为正整数")
        fields = body.get("fields") or {}
        if not isinstance(fields, dict) or not all(isinstance(v, (str, int)) for v in fields.values()):
            raise _bad("fields 应为 {字段名: 值} 对象")
        limit = body.get("max_unit_cost")
        if limit is not None:
            try:
                limit = Decimal(str(limit))
            except InvalidOperation:
                raise _bad("max_unit_cost 应为金额字符串，例如 \"9.80\"") from None
            if not limit.is_finite() or limit < 0:
                raise _bad("max_unit_cost 应为金额字符串，例如 \"9.80\"")
        notify_url = body.get("notify_url") or None
        if notify_url is not None:
            notify_url = _checked_notify_url(notify_url)
        return cls(order_no, code, quantity, {str(k): str(v) for k, v in fields.items()}, limit, notify_url)


def _checked_notify_url(url):
    if not isinstance(url, str) or len(url) > MAX_NOTIFY_URL:
        raise _bad(f"notify_url 应为不超过 {MAX_NOTIFY_URL} 个字符的 http(s) 地址")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("notify_url 应为 http:// 或 https:// 开头的完整地址")
    try:
        check_host(parts.hostname, "回调地址 notify_url", resolve=False)
    except AddressRefused as exc:
        raise _bad(str(exc)) from None
    return url


@dataclass
class Placed:
    order: Order
    created: bool  # False: the station's order number was already here (its first order comes back)


def place(session, station, req, ip):
    """Create, pay from the station's balance and fulfil, or find the first order
    for this order number; raises StationOrderRefused with nothing taken."""
    existing = find(session, station.id, req.order_no)
    if existing is not None:
        return Placed(_same_order(session, existing, req), False)
    product = _product(session, req.code)
    try:
        quantity = int(ordering._quantity(str(req.quantity), product))
    except OrderRefused as exc:
        raise _bad(str(exc)) from None
    try:
        values = ordering._buyer_fields(product, req.fields)
    except OrderRefused as exc:
        raise StationOrderRefused(409, "invalid_account", str(exc)) from None
    unit_price = station_price(station, product.cost_price)
    if req.max_unit_cost is not None and unit_price > req.max_unit_cost:
        raise StationOrderRefused(409, "price_above_limit",
                                  f"价格超出上限：分站价 ¥{unit_price} 高于 max_unit_cost ¥{req.max_unit_cost}")
    amount = (unit_price * quantity).quantize(CENT)
    if amount <= 0:
        raise StationOrderRefused(409, "product_unavailable", "该商品暂不能购买（价格未设置）")
    at = ordering.now()
    order_values = dict(
        product_id=product.id, product_name=product.name, delivery_type=product.delivery_type.value,
        quantity=quantity, unit_price=unit_price, discount=Decimal("0.00"), amount=amount,
        cost=(product.cost_price * quantity).quantize(CENT), reservation=reservations.kind_for(product),
        contact=f"分站:{station.app_id}"[:64], buyer_fields=values, client_ip=(ip or "-")[:45],
        created_at=at, expires_at=at, station_id=station.id, station_order_no=req.order_no,
        station_notify_url=req.notify_url, station_notify_next_at=at if req.notify_url else None,
    )
    station_id, station_name = station.id, station.name

    def work():
        order = Order(order_no=ordering.new_order_no(at), status=OrderStatus.PENDING, **order_values)
        session.add(order)
        try:
            session.flush()  # the unique (station, order number) decides a doubled create here
        except IntegrityError:
            session.rollback()
            first = find(session, station_id, req.order_no)
            if first is None:  # an order-number clash of our own: try again
                raise
            return Placed(_same_order(session, first, req), False)
        order_id = order.id
        ordering.record(session, order_id, "created",
                        f"分站“{station_name}”下单（分站订单号 {req.order_no}）：{order.product_name} × {quantity}，"
                        f"从分站余额扣 ¥{amount}",
                        {"station_order_no": req.order_no, "quantity": quantity, "unit_price": str(unit_price),
                         "amount": str(amount), "max_unit_cost": None if req.max_unit_cost is None
                         else str(req.max_unit_cost), "notify_url": req.notify_url})
        if not _debit(session, station_id, amount):
            session.rollback()
            balance = session.scalar(sa.select(DownstreamStation.balance).where(DownstreamStation.id == station_id))
            raise StationOrderRefused(402, "insufficient_balance",
                                      f"分站余额不足：本单需 ¥{amount}，当前余额 ¥{balance}，请联系主站充值")
        try:
            reservations.reserve(session, order_id, order_values["product_id"], order_values["reservation"], quantity)
        except reservations.OutOfStock:
            session.rollback()
            raise StationOrderRefused(409, "out_of_stock", ordering.OUT_OF_STOCK) from None
        # Paid from the balance in this same transaction, then fulfilled as any paid order (it commits).
        ordering.apply_payment(session, order_id, None, None, amount, "balance",
                               {"station": station_name, "station_order_no": req.order_no})
        return Placed(session.get(Order, order_id), True)

    placed = ordering.retrying(session, work)
    if placed.created:
        notify_soon(placed.order)
    return placed


_DEBIT = (
    sa.update(DownstreamStation.__table__)
    .where(DownstreamStation.__table__.c.id == sa.bindparam("sid"),
           DownstreamStation.__table__.c.balance >= sa.bindparam("amount"))
    .values(balance=DownstreamStation.__table__.c.balance - sa.bindparam("amount"))
)
_CREDIT = (
    sa.update(DownstreamStation.__table__)
    .where(DownstreamStation.__table__.c.id == sa.bindparam("sid"))
    .values(balance=DownstreamStation.__table__.c.balance + sa.bindparam("amount"))
)


def _debit(session, station_id, amount):
    return session.execute(_DEBIT, {"sid": station_id, "amount": amount}).rowcount == 1


def credit(session, station_id, amount):
    """Money back to a station's balance (the caller's transaction)."""
    session.execute(_CREDIT, {"sid": station_id, "amount": amount})


def credit_refund(session, order):
    """A refunded station order gives back what the station paid, less any part refunded already; returns it."""
    amount = order.amount - (order.refund_amount or 0)
    credit(session, order.station_id, amount)
    return amount


def refunded_amount(order):
    """What went back to the station's balance for this order, in all."""
    if order.status is OrderStatus.REFUNDED:
        return order.amount
    return order.refund_amount or Decimal("0.00")


def refund_values(order, at):
    """Columns a refund sets on a station order: the station is told again."""
    if order.station_id is None or not order.station_notify_url:
        return {}
    return {"station_notify_next_at": at, "station_notify_attempts": 0}


def _product(session, code):
    supplier_code, _, product_code = code.partition(".")
    product = session.scalar(
        sa.select(Product).join(Supplier).where(Supplier.code == supplier_code, Product.code == product_code)
    ) if product_code else None
    if product is None or not product.is_listed or product.pending_review:
        raise StationOrderRefused(409, "product_unavailable", f"商品 {code} 不存在或已下架")
    return product


def _same_order(session, order, req):
    """The first order for this number, when the repeat asks for the same goods."""
    product = session.get(Product, order.product_id)
    if public_code(product) != req.code or order.quantity != req.quantity:
        raise StationOrderRefused(
            409, "duplicate_order",
            f"分站订单号 {req.order_no} 已用于另一笔订单（{public_code(product)} × {order.quantity}），请换一个订单号")
    return order


def find(session, station_id, order_no):
    return session.scalar(sa.select(Order).where(Order.station_id == station_id, Order.station_order_no == order_no))


# -- what the station sees ---------------------------------------------------------


def api_status(order):
    if order.status is OrderStatus.DELIVERED:
        return "success"
    if order.status in (OrderStatus.REFUNDED, OrderStatus.EXPIRED, OrderStatus.CANCELLED):
        return "failed"
    return "processing"


def _iso(dt):
    return None if dt is None else dt.replace(microsecond=0).isoformat() + "Z"


def order_json(session, order):
    """The order as the API answers and the callback sends it; card codes only once delivered."""
    status = api_status(order)
    cards, note = [], ""
    if status == "success":
        cards = [{"number": number or None, "password": secret} for number, secret in ordering.delivered_codes(session, order)]
        note = ordering.delivery_note(order)
        if not cards and note and order.delivery_type == "card":
            # Card goods this shop got from its own supplier (or an admin typed in): still cards to the station.
            cards = [{"number": c["number"], "password": c["password"]} for c in forwarding.parse_card_text(note)]
            note = ""
    message = {"success": "已发货", "processing": "处理中"}.get(status, "")
    if order.status is OrderStatus.REFUNDED:
        what = "主站已退款" if order.delivered_at else "主站未能完成，已退款"
        message = f"{what} ¥{order.amount} 到分站余额：{order.refund_reason or ''}".rstrip("：")
    elif status == "success" and order.refund_amount:
        message = f"部分发货：{order.refund_reason or ''}（¥{order.refund_amount} 已退回分站余额）"
    elif order.status is OrderStatus.UNFULFILLABLE:
        message = "处理中：主站暂时无法发货，等待主站处理"
    return {
        "order_no": order.station_order_no,
        "order_id": order.order_no,
        "code": public_code(session.get(Product, order.product_id)),
        "quantity": order.quantity,
        "unit_price": str(order.unit_price),
        "amount": str(order.amount),
        "status": status,
        "refunded": order.status is OrderStatus.REFUNDED,
        "refunded_amount": str(refunded_amount(order)),
        "cards": cards,
        "note": note,
        "message": message,
        "created_at": _iso(order.created_at),
        "finished_at": _iso(order.refunded_at if order.status is OrderStatus.REFUNDED else order.delivered_at),
    }


# -- callbacks to the station ------------------------------------------------------


def notify_soon(order):
    """Start the callback now when the order is already final (the tick retries it otherwise)."""
    if order.station_id is not None and order.station_notify_url and order.status in FINAL:
        queue.enqueue("jobs.station_orders.notify_station", order.id)


def enqueue_due(session, now=None):
    """Every minute: a callback job for each final station order whose callback is due."""
    now = now or ordering.now()
    due = session.scalars(
        sa.select(Order.id).where(Order.station_notify_next_at <= now, Order.status.in_(FINAL),
                                  Order.station_notify_url.is_not(None))
        .order_by(Order.station_notify_next_at).limit(DUE_BATCH)
    ).all()
    for order_id in due:
        queue.enqueue("jobs.station_orders.notify_station", order_id)
    return len(due)


def deliver_callback(session, order_id, now=None):
    """One callback attempt, claimed by one conditional UPDATE (a doubled job sends
    nothing) and committed before sending, so a crash still leaves the next
    attempt planned. True when the station acknowledged, None when nothing was due."""
    now = now or ordering.now()
    row = session.execute(
        sa.select(Order.station_notify_attempts).where(
            Order.id == order_id, Order.station_notify_next_at <= now, Order.status.in_(FINAL),
            Order.station_notify_url.is_not(None))
    ).first()
    if row is None:
        return None
    attempt = row.station_notify_attempts + 1
    delay = NOTIFY_BACKOFF_SECONDS[attempt - 1] if attempt <= len(NOTIFY_BACKOFF_SECONDS) else None
    claimed = session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.station_notify_attempts == attempt - 1,
               Order.station_notify_next_at <= now, Order.status.in_(FINAL))
        .values(station_notify_attempts=attempt,
                station_notify_next_at=None if delay is None else now + timedelta(seconds=delay))
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.commit()
    if not claimed:
        return None
    order = session.get(Order, order_id)
    session.refresh(order)
    station = session.get(DownstreamStation, order.station_id)
    payload = order_json(session, order)
    ok, answer = send_callback(order.station_notify_url, station.app_id, decrypt(station.secret_encrypted), payload)
    if ok:
        session.execute(
            sa.update(Order).where(Order.id == order_id, Order.status == order.status)
            .values(station_notified_status=order.status.value, station_notify_next_at=None)
            .execution_options(synchronize_session=False)
        )
    if not ok:
        log.warning("callback %s of order %s to station %s failed: %s", attempt, order.order_no, station.app_id, answer)
    after = "" if ok or delay is None else f"，{delay} 秒后重试"
    if not ok and delay is None:
        after = "，已停止重试（分站仍可查询订单）"
    ordering.record(session, order_id, "station_notify",
                    f"回调分站（第 {attempt} 次，{payload['status']}）：{'分站已确认' if ok else '失败'}{after}",
                    {"url": order.station_notify_url, "status": payload["status"], "answer": answer})
    session.commit()
    return ok


def callback_body(payload):
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def send_callback(url, app_id, secret, payload):
    """POST the signed order JSON; (the station answered 2xx ``success``, what it said)."""
    parts = urlsplit(url)
    try:
        check_host(parts.hostname, "回调地址 notify_url")
    except AddressRefused as exc:
        return False, str(exc)
    body = callback_body(payload)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**sign_headers(app_id, secret, "POST", target, body), "Content-Type": "application/json"}
    try:
        with requests.post(url, data=body, headers=headers, timeout=NOTIFY_TIMEOUT, allow_redirects=False,
                           stream=True) as resp:
            text = resp.raw.read(NOTIFY_READ_BYTES, decode_content=True).decode("utf-8", "replace")
    except requests.RequestException as exc:
        return False, f"请求失败：{type(exc).__name__}"
    ok = 200 <= resp.status_code < 300 and text.strip() == "success"
    return ok, f"HTTP {resp.status_code}：{text.strip()[:200]}"
