"""Orders: create with stock reserved, expire, pay exactly once, deliver, refund.

Every status change is one conditional UPDATE (kamen.services.transitions)
and writes one timeline row (``OrderEvent``) in the same transaction. The
price comes from the product at order time (promo when active, coupon
applied), never from the buyer's form.
"""
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from kamen import secretbox
from kamen.models import CardCode, Order, OrderEvent, OrderStatus, Product, Reservation
from kamen.money import CENT
from kamen.services import reservations
from kamen.services.alerts import raise_alert
from kamen.services.coupons import CouponError, find_applicable
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.orders")

ORDER_NO_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I
ORDER_NO_RANDOM = 10  # 50 random bits: order numbers cannot be guessed
OUT_OF_STOCK = "库存不足，请减少数量或稍后再试"
CONTACT_PATTERN = re.compile(r"1[3-9]\d{9}|[1-9]\d{4,11}|[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}")
MAX_FIELD_CHARS = 200
SQLITE_RETRIES = 20

_hasher = PasswordHasher()

# Statuses an unpaid order can be paid from (a late payment after expiry too).
PAYABLE = (OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.CANCELLED)
REFUNDABLE = (OrderStatus.PAID, OrderStatus.DELIVERED, OrderStatus.UNFULFILLABLE, OrderStatus.MANUAL)
# Waiting for the admin to deliver by hand.
HAND_DELIVERABLE = (OrderStatus.PAID, OrderStatus.UNFULFILLABLE, OrderStatus.MANUAL)


class OrderRefused(ValueError):
    """Nothing was created or reserved; str() is the Chinese message for the buyer."""


@dataclass
class BuyRequest:
    product_id: int
    quantity: str
    contact: str
    ip: str
    lookup_password: str = ""
    coupon_code: str = ""
    fields: dict = field(default_factory=dict)


def now():
    """The order clock (tests inject ``ORDER_CLOCK``; no sleeps)."""
    clock = current_app.config.get("ORDER_CLOCK")
    return clock() if clock else utcnow()


def new_order_no(at):
    return at.strftime("%y%m%d%H%M%S") + "".join(secrets.choice(ORDER_NO_ALPHABET) for _ in range(ORDER_NO_RANDOM))


def record(session, order_id, kind, message, data=None):
    session.add(OrderEvent(order_id=order_id, at=now(), kind=kind, message=message[:300], data=redact(data or {})))


SECRET_KEYS = {"key", "secret", "password", "lookup_password", "card_pwd", "codes"}


def redact(data):
    """Raw exchanges for the timeline, without keys or passwords."""
    if isinstance(data, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def retrying(session, work):
    """Run ``work()`` (which commits); on SQLite retry when another writer holds the file.

    A WAL transaction that read before another writer committed cannot upgrade
    to a write (SQLITE_BUSY): start it over."""
    for attempt in range(SQLITE_RETRIES):
        try:
            return work()
        except sa.exc.OperationalError as exc:
            session.rollback()
            if "database is locked" not in str(exc) or attempt == SQLITE_RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    return None  # pragma: no cover


# -- creating ---------------------------------------------------------------


def create_order(session, req):
    """Validate, price, reserve and store a pending order; returns its number, or OrderRefused says why not."""
    at = now()
    product = session.get(Product, req.product_id)
    if product is None or not product.is_listed or product.pending_review:
        raise OrderRefused("该商品已下架，暂时不能购买")
    quantity = _quantity(req.quantity, product)
    contact = (req.contact or "").strip()
    if not CONTACT_PATTERN.fullmatch(contact):
        raise OrderRefused("请填写正确的联系方式：手机号、QQ号或邮箱，用于查单")
    values = _buyer_fields(product, req.fields)
    password = (req.lookup_password or "").strip()
    if password and not 4 <= len(password) <= 32:
        raise OrderRefused("查单密码须为 4-32 位")
    password_hash = _hasher.hash(password) if password else None
    product_id, product_name = product.id, product.name
    unit_price = product.current_price(at)
    subtotal = unit_price * quantity
    coupon_id, discount = None, Decimal("0.00")
    if (req.coupon_code or "").strip():
        try:
            coupon, discount = find_applicable(session, req.coupon_code, product.id, subtotal, at)
        except CouponError as exc:
            raise OrderRefused(str(exc)) from exc
        coupon_id = coupon.id
    amount = (subtotal - discount).quantize(CENT)
    if amount <= 0:
        raise OrderRefused("该商品暂不能购买（价格未设置）")
    kind = reservations.kind_for(product)
    order_values = dict(
        product_id=product_id, product_name=product_name, delivery_type=product.delivery_type.value,
        quantity=quantity, unit_price=unit_price, discount=discount, amount=amount,
        cost=(product.cost_price * quantity).quantize(CENT), coupon_id=coupon_id, reservation=kind,
        contact=contact, lookup_password_hash=password_hash, buyer_fields=values, client_ip=(req.ip or "-")[:45],
        created_at=at, expires_at=at + timedelta(minutes=current_app.config["ORDER_EXPIRE_MINUTES"]),
    )

    def work():
        _expire_lazily(session)
        _lock_unpaid_limits(session, contact, order_values["client_ip"])
        order = Order(order_no=new_order_no(at), status=OrderStatus.PENDING, **order_values)
        session.add(order)
        session.flush()
        _check_unpaid_limits(session, contact, order_values["client_ip"], at)
        record(session, order.id, "created", f"下单：{product_name} × {quantity}，应付 ¥{amount}",
               {"quantity": quantity, "unit_price": str(unit_price), "discount": str(discount),
                "amount": str(amount), "reservation": kind.value})
        session.flush()
        # The contended rows (codes, the product's stock, the coupon) come last: their
        # locks are held only until the commit right after.
        try:
            reservations.reserve(session, order.id, product_id, kind, quantity)
        except reservations.OutOfStock:
            session.rollback()
            raise OrderRefused(OUT_OF_STOCK) from None
        if coupon_id is not None and not reservations.take_coupon(session, coupon_id):
            session.rollback()
            raise OrderRefused("该优惠券已被领完")
        order_no = order.order_no
        session.commit()
        return order_no

    return retrying(session, work)


LAZY_EXPIRY_SECONDS = 10
_lazy_expiry = {"at": float("-inf")}


def _expire_lazily(session):
    """Embedded mode has no schedule: new orders expire overdue ones, at most every few seconds per process."""
    if time.monotonic() - _lazy_expiry["at"] >= LAZY_EXPIRY_SECONDS:
        _lazy_expiry["at"] = time.monotonic()
        expire_due(session, limit=50)


def _quantity(text, product):
    text = str(text or "").strip()
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise OrderRefused("购买数量必须是正整数")
    quantity = int(text)
    low, high = max(product.min_per_order, 1), max(product.max_per_order, 1)
    if quantity < low:
        raise OrderRefused(f"该商品每单至少购买 {low} 件")
    if quantity > high:
        raise OrderRefused(f"该商品每单最多购买 {high} 件")
    return quantity


def _buyer_fields(product, given):
    values = {}
    for spec in product.buyer_fields or []:
        key, label = spec.get("key"), spec.get("label") or spec.get("key")
        value = str(given.get(key) or "").strip()
        if not value:
            raise OrderRefused(f"请填写{label}")
        if len(value) > MAX_FIELD_CHARS:
            raise OrderRefused(f"{label}太长")
        if not _matches(spec.get("pattern") or "", value):
            hint = f"（{spec['hint']}）" if spec.get("hint") else ""
            raise OrderRefused(f"{label}格式不正确{hint}")
        values[key] = value
    return values


def _matches(pattern, value):
    """The value fits the field's pattern (a broken pattern from a supplier checks nothing, and is logged)."""
    if not pattern:
        return True
    try:
        return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None
    except re.error:
        log.warning("buyer field pattern %r is not a valid regular expression; not checked", pattern)
        return True


_UNPAID = (
    sa.select(
        sa.func.count().filter(Order.contact == sa.bindparam("contact")),
        sa.func.count().filter(Order.client_ip == sa.bindparam("ip")),
    ).where(
        Order.status == OrderStatus.PENDING, Order.expires_at > sa.bindparam("at"),
        sa.or_(Order.contact == sa.bindparam("contact"), Order.client_ip == sa.bindparam("ip")),
    )
)
# Two advisory-lock namespaces (pg_advisory_xact_lock(int, int)), so a contact never shares a key with an IP.
_LOCK_CONTACT, _LOCK_IP = 0x6B6D0001, 0x6B6D0002
_LOCK_UNPAID = sa.text(
    "SELECT pg_advisory_xact_lock(:contact_space, hashtext(:contact)), pg_advisory_xact_lock(:ip_space, hashtext(:ip))"
)


def _lock_unpaid_limits(session, contact, ip):
    """Serialize order creation per contact and per IP until the commit, so the count
    of unpaid orders that follows sees every order committed before it (PostgreSQL).

    Every transaction takes the contact's lock before the IP's, and both before
    any stock or code row: no lock cycle. SQLite needs none: the new order's
    INSERT holds the database's one write lock until the commit, and the count
    comes after it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_UNPAID, {"contact_space": _LOCK_CONTACT, "contact": contact,
                                       "ip_space": _LOCK_IP, "ip": ip})


def _check_unpaid_limits(session, contact, ip, at):
    """Counted after the new order is written (it counts itself), under _lock_unpaid_limits."""
    limit = current_app.config["ORDER_UNPAID_LIMIT"]
    by_contact, by_ip = session.execute(_UNPAID, {"contact": contact, "ip": ip, "at": at}).one()
    if by_contact > limit:
        session.rollback()
        raise OrderRefused(f"该联系方式已有 {limit} 笔未支付的订单，请先完成支付或等待其自动取消")
    if by_ip > limit:
        session.rollback()
        raise OrderRefused(f"您已有 {limit} 笔未支付的订单，请先完成支付或等待其自动取消")


# -- expiry and cancel --------------------------------------------------------


def expire_due(session, limit=200):
    """Expire unpaid orders past their time, releasing exactly what each held.

    Runs from the schedule and, lazily, before new orders (embedded mode has no
    schedule). Returns how many this call expired. The caller's transaction is
    committed per order."""
    due = session.execute(
        sa.select(Order.id).where(Order.status == OrderStatus.PENDING, Order.expires_at <= now()).limit(limit)
    ).scalars().all()
    return sum(1 for order_id in due if close_unpaid(session, order_id, OrderStatus.EXPIRED, "订单超时未支付，已自动取消"))


def close_unpaid(session, order_id, new_status, message):
    """pending → expired/cancelled, and the reservation and coupon use given back."""
    if not transition(session, Order, order_id, OrderStatus.PENDING, new_status):
        return False
    order = session.get(Order, order_id)
    released = reservations.release(session, order.id, order.product_id, order.reservation, order.quantity)
    if order.coupon_id:
        reservations.release_coupon(session, order.coupon_id)
    record(session, order.id, new_status.value, message, {"released": released})
    session.commit()
    return True


def cancel(session, order_id):
    return close_unpaid(session, order_id, OrderStatus.CANCELLED, "管理员取消了订单")


# -- payment and delivery -------------------------------------------------------


@dataclass
class PaymentOutcome:
    applied: bool  # this call marked the order paid
    status: OrderStatus


def apply_payment(session, order_id, channel_id, trade_no, money, via, raw):
    """Mark the order paid exactly once and deliver what can be delivered now.

    ``money`` was already checked against the order's amount. Duplicates (the
    gateway retries, a query racing the notify) only add a timeline row."""
    at = now()
    label = {"notify": "支付通知", "query": "查询支付", "return": "支付返回", "balance": "分站余额支付"}.get(via, via)
    money = Decimal(money).quantize(CENT)
    values = dict(paid_at=at, trade_no=trade_no or None, paid_amount=money, channel_id=channel_id, next_query_at=None)
    order = session.get(Order, order_id)  # usually already loaded by the caller: no query
    held = Held(order.id, order.product_id, order.quantity, order.reservation, order.coupon_id)
    with session.no_autoflush:  # the timeline rows go in together at the commit
        return _apply(session, order_id, held, values, label, money, trade_no, via, raw)


def _apply(session, order_id, held, values, label, money, trade_no, via, raw):
    if transition(session, Order, order_id, OrderStatus.PENDING, OrderStatus.PAID, **values):
        record(session, order_id, "paid", f"{label}：已支付 ¥{money}", raw)
        status = _fulfil(session, held)
        _count_sale(session, held)
        session.commit()
        return PaymentOutcome(True, _after_commit(session, order_id, status))
    if transition(session, Order, order_id, (OrderStatus.EXPIRED, OrderStatus.CANCELLED), OrderStatus.PAID, **values):
        record(session, order_id, "paid", f"{label}：订单已过期后收到付款 ¥{money}", raw)
        try:  # reserve() changes nothing when it refuses
            reservations.reserve(session, held.order_id, held.product_id, held.reservation, held.quantity)
        except reservations.OutOfStock:
            transition(session, Order, order_id, OrderStatus.PAID, OrderStatus.UNFULFILLABLE)
            record(session, order_id, "unfulfillable", "过期后付款，但库存已不足：请退款或补货后手动发货")
            _count_sale(session, held)
            session.commit()
            _alert_unfulfillable(session, session.get(Order, order_id))
            return PaymentOutcome(True, OrderStatus.UNFULFILLABLE)
        if held.coupon_id:
            reservations.take_coupon(session, held.coupon_id, force=True)
        status = _fulfil(session, held)
        _count_sale(session, held)
        session.commit()
        return PaymentOutcome(True, _after_commit(session, order_id, status))
    order = session.get(Order, order_id)
    status, paid_twice = order.status, bool(trade_no and order.trade_no and trade_no != order.trade_no)
    note = f"{label}：重复通知，订单已是“{status.label}”"
    if paid_twice:
        note = f"{label}：另一笔支付（{trade_no}）也付了这个订单，请核对后退款"
    record(session, order_id, via, note, raw)
    session.commit()
    if paid_twice:
        raise_alert(session, "order_paid_twice", "同一订单收到两笔付款",
                    [f"订单 {order.order_no}：网关流水 {order.trade_no} 之外又收到 {trade_no}，请在支付平台核对并退还多付的一笔"])
    return PaymentOutcome(False, status)


@dataclass(frozen=True)
class Held:
    """What a paid order needs for delivery, read before its row is updated."""

    order_id: int
    product_id: int
    quantity: int
    reservation: Reservation
    coupon_id: int | None


_COUNT_SALE = (
    sa.update(Product.__table__)
    .where(Product.__table__.c.id == sa.bindparam("pid"))
    .values(sales_count=Product.__table__.c.sales_count + sa.bindparam("n"))
)


def _count_sale(session, held):
    session.execute(_COUNT_SALE, {"pid": held.product_id, "n": held.quantity})


def _after_commit(session, order_id, status):
    """A forwarded order's job is asked for once the order is committed (the job reads it)."""
    if status is OrderStatus.FORWARDING:
        from kamen.services import forwarding

        forwarding.request_job(session, order_id, touch=False)
    return status


def _fulfil(session, held):
    """Card codes go out at once; supplier goods are forwarded (一键代发); the rest waits for the admin."""
    if held.reservation is Reservation.CODES:
        sold = reservations.sell_reserved_codes(session, held.order_id)
        if transition(session, Order, held.order_id, OrderStatus.PAID, OrderStatus.DELIVERED, delivered_at=now()):
            record(session, held.order_id, "delivered", f"已自动发货：{sold} 张卡密")
            return OrderStatus.DELIVERED
        return OrderStatus.PAID
    from kamen.services import forwarding

    if forwarding.is_forwardable(session, held.product_id) and forwarding.begin(session, held.order_id):
        return OrderStatus.FORWARDING
    record(session, held.order_id, "awaiting", "已支付，待人工发货")
    return OrderStatus.PAID


def _alert_unfulfillable(session, order):
    raise_alert(session, "order_unfulfillable", "订单已付款但无法发货",
                [f"订单 {order.order_no}（{order.product_name} × {order.quantity}）过期后付款，库存已不足，请退款或补货"])


def deliver_by_hand(session, order_id, text):
    """The admin delivers a paid order (codes or a note, stored encrypted)."""
    text = (text or "").strip()
    if not text:
        raise OrderRefused("请填写发货内容（卡密或说明）")
    if len(text) > 20000:
        raise OrderRefused("发货内容太长")
    if not transition(session, Order, order_id, HAND_DELIVERABLE,
                      OrderStatus.DELIVERED, delivered_at=now(), delivery_note=secretbox.encrypt(text)):
        session.rollback()
        raise OrderRefused("只有已支付、未发货的订单可以手动发货")
    record(session, order_id, "delivered", "管理员手动发货")
    session.commit()
    from kamen.services import station_orders

    station_orders.notify_soon(session.get(Order, order_id))


def refund(session, order_id, reason):
    """Record a refund made outside kamen (易支付 V1 has no refund API)."""
    reason = (reason or "").strip()
    if not reason:
        raise OrderRefused("请填写退款原因")
    from kamen.services import station_orders  # it builds on this module

    order = session.get(Order, order_id)
    was, at = order.status, now()
    if not transition(session, Order, order_id, REFUNDABLE, OrderStatus.REFUNDED,
                      refund_reason=reason[:200], refunded_at=at, **station_orders.refund_values(order, at)):
        session.rollback()
        raise OrderRefused("该订单当前状态不能退款")
    released = 0
    if was is OrderStatus.PAID:  # paid, nothing delivered: the stock it held goes back
        released = reservations.release(session, order_id, order.product_id, order.reservation, order.quantity)
    message = f"已退款：{reason[:200]}"
    if order.station_id is not None:  # a 分站 paid from its balance: the money goes back there, atomically
        credited = station_orders.credit_refund(session, order)
        message = f"已退款：¥{credited} 退回分站余额。{reason[:200]}"
    record(session, order_id, "refunded", message, {"from": was.value, "released": released})
    session.commit()
    session.refresh(order)
    station_orders.notify_soon(order)


# -- reading ---------------------------------------------------------------------


def by_number(session, order_no):
    return session.scalar(sa.select(Order).where(Order.order_no == (order_no or "")[:32]))


def delivered_codes(session, order):
    """[(number, secret)] the order received; never logged."""
    if order.status not in (OrderStatus.DELIVERED, OrderStatus.REFUNDED):
        return []
    codes = session.execute(
        sa.select(CardCode.number, CardCode.secret_encrypted)
        .where(CardCode.order_id == order.id, CardCode.status == reservations.SOLD)
        .order_by(CardCode.id)
    ).all()
    return [(number, secretbox.decrypt(secret)) for number, secret in codes]


def delivery_note(order):
    return secretbox.decrypt(order.delivery_note) if order.delivery_note else ""


def timeline(session, order_id):
    return session.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)).all()


def check_lookup_secret(order, secret):
    """查单: the 查单密码 when one was set, else the contact."""
    secret = (secret or "").strip()
    if order.lookup_password_hash:
        try:
            return _hasher.verify(order.lookup_password_hash, secret)
        except (VerificationError, InvalidHashError):
            return False
    return secrets.compare_digest(order.contact.lower().encode(), secret.lower().encode())
