"""超卖 recovery: a paid order no source could fill.

The buyer gets the refund (recorded through ``ordering.refund``), an apology
coupon shown on the order page and mailed when the contact is an email, and a
plain account of what happened; the product goes off sale when every source is
out; the admin gets one alert.
"""
import logging
import re
import secrets
from datetime import timedelta
from decimal import Decimal

from kamen.models import Coupon, CouponKind, Order, OrderStatus, Product, StockMode
from kamen.money import CENT
from kamen.services import alerts, ordering, settings, sources
from kamen.services.ordering import now, record
from kamen.services.transitions import transition

log = logging.getLogger("kamen.oversell")

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
COUPON_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFUND_REASON = "所有货源都缺货，无法发货，已全额退款"


def recover(session, order_id, reasons):
    """Refund, apologise, delist when every source is out, alert. Once per order (a transition)."""
    from kamen.services.forwarding import IN_FLIGHT, sources_for

    if not transition(session, Order, order_id, IN_FLIGHT, OrderStatus.UNFULFILLABLE):
        session.rollback()
        return False
    record(session, order_id, "unfulfillable", "所有货源都无法供货", {"sources": list(reasons)})
    session.commit()
    ordering.refund(session, order_id, REFUND_REASON)
    order = session.get(Order, order_id)
    # A 分站's order: the refund went back to its balance and it tells its own buyer; no coupon here.
    coupon = None if order.station_id else _apology_coupon(session, order)
    product = session.get(Product, order.product_id)
    delisted = _delist_if_all_out(session, product, sources_for(session, product))
    refund_line = "已退回分站余额" if order.station_id else "已记为退款，请在支付平台把钱退给买家"
    lines = [f"订单 {order.order_no}（{order.product_name} × {order.quantity}，¥{order.amount}）{refund_line}"]
    if coupon is not None:
        lines.append(f"已送买家致歉优惠券 {coupon.code}（¥{coupon.value}）")
    if delisted:
        lines.append(f"商品“{product.name}”的所有货源都缺货，已自动下架（货源补货后同步会重新上架）")
    lines += [f"· {reason}" for reason in reasons]
    alerts.raise_alert(session, "order_oversold", "订单超卖：无货源可发货，已退款", lines)
    if coupon is not None and EMAIL.fullmatch(order.contact or ""):
        _mail_buyer(session, order, coupon)
    return True


def _apology_coupon(session, order):
    config = settings.get(session, "forwarding")
    amount = Decimal(str(config["apology_coupon_amount"] or "0")).quantize(CENT)
    if amount <= 0:
        return None
    at = now()
    coupon = Coupon(code="SORRY" + "".join(secrets.choice(COUPON_ALPHABET) for _ in range(10)),
                    kind=CouponKind.AMOUNT, value=amount, min_amount=Decimal("0"), valid_from=at,
                    valid_to=at + timedelta(days=int(config["apology_coupon_days"])), max_uses=1,
                    is_enabled=True, note=f"订单 {order.order_no} 缺货致歉"[:200])
    session.add(coupon)
    session.flush()
    order.apology_coupon_id = coupon.id
    record(session, order.id, "apology_coupon", f"已送致歉优惠券 ¥{amount}（{coupon.valid_to:%Y-%m-%d} 前有效）",
           {"coupon": coupon.code})
    session.commit()
    return coupon


def _delist_if_all_out(session, product, chain):
    """Off sale when no source has stock left (a refusal for stock zeroes that source's count);
    ``auto_delisted`` lets the next sync put it back when a source has stock again."""
    if product.stock_mode is StockMode.CARDS or not product.is_listed:
        return False
    rows = [session.get(Product, s.product_id) for s in chain] or [product]
    if any(p.stock_mode is StockMode.UNLIMITED or sources.own_count(p) > 0 for p in rows if p is not None):
        return False
    product.is_listed, product.auto_delisted, product.stock = False, True, 0
    session.commit()
    return True


def _mail_buyer(session, order, coupon):
    lines = [f"您的订单 {order.order_no}（{order.product_name} × {order.quantity}）付款后，所有货源都暂时缺货，无法发货。",
             f"订单金额 ¥{order.amount} 已全额退款，请留意原支付账户。",
             f"为表歉意，送您一张 ¥{coupon.value} 优惠券：{coupon.code}，{coupon.valid_to:%Y-%m-%d} 前下单可用。",
             "给您带来不便，非常抱歉。"]
    try:
        sent = alerts.send_mail(session, order.contact, "订单缺货退款通知", lines)
    except Exception as exc:  # noqa: BLE001 - the refund stands; the timeline says the mail did not go
        log.warning("apology mail for order %s failed: %s", order.order_no, exc)
        record(session, order.id, "mail_failed", f"致歉邮件发送失败：{type(exc).__name__}")
        session.commit()
        return False
    record(session, order.id, "mailed", f"已发邮件通知买家（{order.contact}）" if sent
           else "未设置邮件服务器（SMTP），没有给买家发邮件")
    session.commit()
    return True
