"""Coupons (优惠券): what a code takes off an order, and the admin's edits.

The discount is computed here on the server; the use is counted atomically
in kamen.services.reservations.take_coupon when the order is created and
given back when the order expires.
"""
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from kamen.models import Coupon, CouponKind, Order, Product
from kamen.money import CENT, MoneyError, parse_money
from kamen.services.order_refs import delete_unless_ordered
from kamen.timeutil import from_local

CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,32}")
MIN_PAY = CENT


class CouponError(ValueError):
    """str() is the Chinese message for the buyer or admin."""


def normalize_code(text):
    return (text or "").strip().upper()


def find_applicable(session, code, product_id, subtotal, now):
    """(coupon, discount) for a code the buyer typed, or CouponError saying why not."""
    code = normalize_code(code)
    if not CODE_PATTERN.fullmatch(code):
        raise CouponError("优惠券码无效")
    coupon = session.scalar(sa.select(Coupon).where(Coupon.code == code))
    if coupon is None or not coupon.is_enabled:
        raise CouponError("优惠券码无效")
    if coupon.valid_from and now < coupon.valid_from:
        raise CouponError("该优惠券尚未到使用时间")
    if coupon.valid_to and now >= coupon.valid_to:
        raise CouponError("该优惠券已过期")
    if coupon.max_uses is not None and coupon.used_count >= coupon.max_uses:
        raise CouponError("该优惠券已被领完")
    if coupon.product_id is not None and coupon.product_id != product_id:
        raise CouponError("该优惠券不能用于这个商品")
    if subtotal < coupon.min_amount:
        raise CouponError(f"订单满 ¥{coupon.min_amount} 才能使用该优惠券")
    return coupon, discount_for(coupon, subtotal)


def discount_for(coupon, subtotal):
    """The amount off, never leaving less than ¥0.01 to pay."""
    if coupon.kind is CouponKind.PERCENT:
        off = (subtotal * coupon.value / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        off = coupon.value
    return max(min(off, subtotal - MIN_PAY), Decimal("0.00"))


def save(session, coupon, form):
    """Create or update from the admin form (a dict of strings); CouponError on bad input."""
    code = normalize_code(form.get("code"))
    if not CODE_PATTERN.fullmatch(code):
        raise CouponError("券码须为 3-32 位字母、数字、下划线或短横线")
    clash = session.scalar(sa.select(Coupon.id).where(Coupon.code == code))
    if clash is not None and (coupon is None or clash != coupon.id):
        raise CouponError(f"券码 {code} 已存在")
    kind = form.get("kind")
    if kind not in {k.value for k in CouponKind}:
        raise CouponError("请选择优惠方式")
    kind = CouponKind(kind)
    try:
        value = parse_money(form.get("value", ""), field="优惠额度")
        min_amount = parse_money(form.get("min_amount") or "0", field="最低订单金额")
    except MoneyError as exc:
        raise CouponError(str(exc)) from exc
    if value <= 0:
        raise CouponError("优惠额度必须大于 0")
    if kind is CouponKind.PERCENT and value >= 100:
        raise CouponError("折扣百分比须小于 100（例如 10 表示减 10%）")
    max_uses = _optional_int(form.get("max_uses"), "可用次数")
    valid_from = _optional_time(form.get("valid_from"), "开始时间")
    valid_to = _optional_time(form.get("valid_to"), "结束时间")
    if valid_from and valid_to and valid_to <= valid_from:
        raise CouponError("结束时间必须晚于开始时间")
    product_id = _optional_int(form.get("product_id"), "适用商品")
    if product_id and session.get(Product, product_id) is None:
        raise CouponError(f"没有编号为 {product_id} 的商品")
    if coupon is None:
        coupon = Coupon(used_count=0)
        session.add(coupon)
    if max_uses is not None and max_uses < coupon.used_count:
        raise CouponError(f"可用次数不能少于已使用的 {coupon.used_count} 次")
    coupon.code, coupon.kind, coupon.value, coupon.min_amount = code, kind, value, min_amount
    coupon.max_uses, coupon.valid_from, coupon.valid_to = max_uses, valid_from, valid_to
    coupon.product_id = product_id or None
    coupon.is_enabled = form.get("is_enabled") in ("1", "on", "y", True)
    coupon.note = (form.get("note") or "").strip()[:200]
    session.commit()
    return coupon


def delete(session, coupon):
    """Delete a coupon no order ever used; otherwise CouponError says to switch it off instead."""
    code = coupon.code
    if not delete_unless_ordered(session, Coupon, coupon.id, Order.coupon_id):
        raise CouponError(f"优惠券 {code} 已有订单使用过，不能删除（订单的优惠记录要用到它）；不再发放请编辑并取消“启用”")
    return code


def _optional_int(text, label):
    text = (text or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise CouponError(f"{label}必须是不小于 0 的整数")
    return int(text)


def _optional_time(text, label):
    """A shop-local time typed as 2026-12-01 10:00 (or the datetime-local form) → naive UTC."""
    text = (text or "").strip().replace("T", " ")
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return from_local(datetime.strptime(text, fmt))
        except ValueError:
            continue
    raise CouponError(f"{label}格式应为 2026-12-01 10:00")
