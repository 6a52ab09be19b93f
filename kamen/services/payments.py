"""Payment as the 易支付 merchant: channels, starting a payment, notifies, queries.

The notify is the source of truth: its signature is checked in constant time
with the channel's key, then ``pid``, ``trade_status``, the order and the
money (as Decimal: "1" equals "1.00"). The order is marked paid exactly once
(kamen.services.ordering.apply_payment). Refused notifies are kept with
their raw parameters and raise one alert per channel every few minutes.
"""
import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from kamen import secretbox
from kamen.models import PAY_MODES, PAY_TYPES, Notification, Order, OrderStatus, PaymentChannel
from kamen.payments.epay_merchant import EpayV1
from kamen.payments.gateway import GatewayError, NoticeRejected
from kamen.services import ordering
from kamen.services.alerts import raise_alert
from kamen.services.order_refs import delete_unless_ordered
from kamen.services.ordering import OrderRefused, now, record

log = logging.getLogger("kamen.payments")

QUERY_BACKOFF_MINUTES = (1, 2, 3, 5, 10, 20, 30, 60, 120, 240, 480, 720)
REJECT_ALERT_MINUTES = 10


class ChannelInvalid(ValueError):
    """str() is the Chinese message for the admin."""


def gateway_for(channel):
    return EpayV1(channel.base_url, channel.pid, secretbox.decrypt(channel.key_encrypted))


def enabled_channels(session):
    return session.scalars(
        sa.select(PaymentChannel).where(PaymentChannel.is_enabled.is_(True)).order_by(PaymentChannel.sort_order,
                                                                                       PaymentChannel.id)
    ).all()


def pay_options(session):
    """[(channel, type, label)] the buyer can choose from."""
    return [(c, t, PAY_TYPES[t]) for c in enabled_channels(session) for t in c.pay_types if t in PAY_TYPES]


# -- channels (back office) ------------------------------------------------------


def save_channel(session, channel, form):
    name = (form.get("name") or "").strip()
    base_url = (form.get("base_url") or "").strip().rstrip("/")
    pid = (form.get("pid") or "").strip()
    key = (form.get("key") or "").strip()
    types = [t for t in form.getlist("pay_types") if t in PAY_TYPES] if hasattr(form, "getlist") else []
    if not name or len(name) > 60:
        raise ChannelInvalid("请填写通道名称（60 字以内）")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(base_url) > 300:
        raise ChannelInvalid("网关地址应以 http:// 或 https:// 开头，例如 https://pay.example.com")
    if not pid or len(pid) > 64:
        raise ChannelInvalid("请填写商户 ID（pid）")
    if channel is None and not key:
        raise ChannelInvalid("请填写商户密钥")
    if not types:
        raise ChannelInvalid("请至少勾选一种支付方式")
    if channel is None:
        channel = PaymentChannel()
        session.add(channel)
    channel.name, channel.base_url, channel.pid, channel.pay_types = name, base_url, pid, types
    channel.mode = form.get("mode") if form.get("mode") in PAY_MODES else "jump"
    if key:  # blank keeps the stored key (the form never shows it)
        channel.key_encrypted = secretbox.encrypt(key)
    channel.is_enabled = form.get("is_enabled") in ("1", "on", "y")
    session.commit()
    return channel


def delete_channel(session, channel):
    """Delete a channel no order ever used (orders keep their channel for notifies,
    queries and the books); otherwise ChannelInvalid says to switch it off instead."""
    name = channel.name
    if not delete_unless_ordered(session, PaymentChannel, channel.id, Order.channel_id):
        raise ChannelInvalid(f"支付通道“{name}”已有订单使用过，不能删除（订单的支付记录要用到它）；不再使用请编辑并取消“启用”")
    return name


def test_channel(channel):
    """测试: ask the gateway for this merchant's info (api.php?act=query): the address, pid and key all count."""
    try:
        ok, reason = gateway_for(channel).check_merchant()
    except (GatewayError, secretbox.SecretUnreadable) as exc:
        return False, str(exc)
    if ok:
        return True, "网关连接正常，商户 ID 和密钥已通过验证"
    return False, f"网关拒绝了商户查询：{reason or '商户 ID 或密钥错误'}"


# -- the buyer pays ---------------------------------------------------------------------


@dataclass
class Redirect:
    url: str | None
    qrcode: str | None


def start_payment(session, order, channel_id, pay_type, notify_url, return_url, client_ip="", mobile=False):
    """Send the buyer to the gateway (or get a QR code from it); the lost-notify query is scheduled too."""
    channel = session.get(PaymentChannel, channel_id) if isinstance(channel_id, int) else None
    if channel is None or not channel.is_enabled or pay_type not in channel.pay_types:
        raise OrderRefused("请选择支付方式")
    if order.status is not OrderStatus.PENDING or order.expires_at <= now():
        raise OrderRefused("订单已过期或已支付，不能再发起支付")
    gateway = gateway_for(channel)
    try:
        start = gateway.create_payment(
            order.order_no, order.amount, order.product_name, pay_type, notify_url, return_url,
            **({"client_ip": client_ip or "127.0.0.1", "device": "mobile" if mobile else "pc"}
               if channel.mode == "qrcode" else {}),
        )
    except GatewayError as exc:
        raise OrderRefused(f"支付暂时不可用：{exc}") from exc
    at = now()
    order.channel_id, order.pay_type, order.pay_started_at = channel.id, pay_type, at
    order.next_query_at = at + timedelta(minutes=QUERY_BACKOFF_MINUTES[0])
    order.query_attempts = 0
    record(session, order.id, "payment_started", f"发起支付：{channel.name} · {PAY_TYPES[pay_type]}",
           {"channel": channel.id, "type": pay_type, "gateway": channel.base_url})
    session.commit()
    return Redirect(start.redirect_url, start.qrcode)


# -- notify ---------------------------------------------------------------------------


def handle_notify(session, channel_id, params, via="notify"):
    """True: answer ``success`` (paid now, or a duplicate); False: answer ``fail``."""
    raw = {str(k)[:40]: str(v)[:500] for k, v in list(params.items())[:50]}
    channel = session.get(PaymentChannel, channel_id)
    if channel is None:
        return _reject(session, None, None, "未知的支付通道", raw)
    try:
        notice = gateway_for(channel).parse_notify(raw)
    except (NoticeRejected, secretbox.SecretUnreadable) as exc:
        order = ordering.by_number(session, raw.get("out_trade_no"))
        return _reject(session, channel, order, str(exc), raw)
    order = ordering.by_number(session, notice.out_trade_no)
    if order is None:
        return _reject(session, channel, None, f"订单 {notice.out_trade_no[:32]} 不存在", raw)
    if not notice.paid:
        record(session, order.id, via, f"网关通知：未支付（{raw.get('trade_status', '')[:20]}）", raw)
        session.commit()
        return True
    if notice.money != order.amount:
        return _reject(session, channel, order, f"金额不符：应付 ¥{order.amount}，通知 ¥{notice.money}", raw)
    try:
        ordering.retrying(session, lambda: ordering.apply_payment(
            session, order.id, channel.id, notice.trade_no, notice.money, via, raw))
    except sa.exc.IntegrityError:
        session.rollback()
        return _reject(session, channel, order, f"网关流水号 {notice.trade_no} 已用于另一个订单", raw)
    return True


def _reject(session, channel, order, reason, raw):
    order_id = order.id if order is not None else None
    log.warning("payment notify refused (channel %s, order %s): %s", channel.id if channel else "-",
                order.order_no if order else raw.get("out_trade_no", "")[:32], reason)
    record(session, order_id, "notify_rejected", f"拒绝支付通知：{reason}", raw)
    session.commit()
    _alert_once(session, channel, order, reason)
    return False


def _alert_once(session, channel, order, reason):
    """One alert per few minutes: a flood of forged notifies must not flood the robot."""
    since = now() - timedelta(minutes=REJECT_ALERT_MINUTES)
    recent = session.scalar(
        sa.select(sa.func.count()).select_from(Notification)
        .where(Notification.kind == "payment_rejected", Notification.created_at >= since)
    )
    if recent:
        return
    where = f"订单 {order.order_no}" if order is not None else "未知订单"
    raise_alert(session, "payment_rejected", "收到可疑的支付通知",
                [f"{channel.name if channel else '未知通道'}：{where}，{reason}。已回复 fail，原始参数见订单时间线或通知记录"])


# -- lost notifies ----------------------------------------------------------------------


def query_payment(session, order_id):
    """Ask the gateway (api.php?act=order) whether the order was paid; apply it if so.

    Returns a Chinese sentence for the admin."""
    order = session.get(Order, order_id)
    if order is None or order.channel_id is None:
        return "该订单还没有发起过支付"
    channel = order.channel
    attempts = order.query_attempts + 1
    delay = QUERY_BACKOFF_MINUTES[min(attempts, len(QUERY_BACKOFF_MINUTES) - 1)]
    keep_asking = order.status in ordering.PAYABLE and attempts < len(QUERY_BACKOFF_MINUTES)
    order.query_attempts = attempts
    order.next_query_at = now() + timedelta(minutes=delay) if keep_asking else None
    try:
        result = gateway_for(channel).query(order.order_no)
    except (GatewayError, secretbox.SecretUnreadable) as exc:
        record(session, order.id, "query", f"查询支付失败：{exc}")
        session.commit()
        return f"查询失败：{exc}"
    raw = ordering.redact(result.raw or {})
    if not result.paid:
        record(session, order.id, "query", "查询支付：网关显示未支付", raw)
        session.commit()
        return "网关显示该订单未支付"
    if result.money is not None and result.money != order.amount:
        record(session, order.id, "query", f"查询支付：金额不符（网关 ¥{result.money}，应付 ¥{order.amount}）", raw)
        session.commit()
        return "网关显示的金额与订单不符，未入账，请核对"
    session.commit()
    outcome = ordering.retrying(session, lambda: ordering.apply_payment(
        session, order.id, channel.id, result.trade_no, order.amount, "query", raw))
    return "已确认付款，订单已处理" if outcome.applied else f"订单已是“{outcome.status.label}”"


def query_due(session, limit=50):
    """The schedule's lost-notify sweep: orders whose payment started but got no notify."""
    due = session.execute(
        sa.select(Order.id)
        .where(Order.next_query_at.is_not(None), Order.next_query_at <= now(), Order.status.in_(ordering.PAYABLE))
        .order_by(Order.next_query_at)
        .limit(limit)
    ).scalars().all()
    for order_id in due:
        query_payment(session, order_id)
    return len(due)


DEMO_CHANNEL_NAME = "演示支付（不会真实扣款）"


def ensure_demo_channel(session, base_url, pid, key):
    """The payment channel pointing at the built-in demo gateway: created once, its pid/key kept current."""
    channel = session.scalar(sa.select(PaymentChannel).where(PaymentChannel.name == DEMO_CHANNEL_NAME))
    created = channel is None
    if created:
        channel = PaymentChannel(name=DEMO_CHANNEL_NAME, pay_types=list(PAY_TYPES), is_enabled=True)
        session.add(channel)
    channel.base_url, channel.pid = base_url.rstrip("/"), str(pid)
    channel.key_encrypted = secretbox.encrypt(key)
    session.commit()
    return channel, created
