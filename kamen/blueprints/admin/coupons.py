"""优惠券: create, edit, switch off, delete while unused; uses are counted by orders."""
import sqlalchemy as sa
from flask import abort, render_template, request

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.crud import delete_then_back, save_or_show
from kamen.extensions import db
from kamen.models import Coupon, CouponKind
from kamen.services import coupons as coupon_service


def _render(coupon=None, error=None, status=200):
    rows = db.session.scalars(sa.select(Coupon).order_by(Coupon.id.desc())).all()
    return render_template(
        "admin/coupons.html", rows=rows, coupon=coupon, error=error, kinds=CouponKind,
        form=request.form if request.method == "POST" else {},
    ), status


@bp.route("/coupons", methods=["GET", "POST"])
def coupons():
    if request.method == "POST":
        return save_or_show(lambda: coupon_service.save(db.session, None, request.form), _render,
                            coupon_service.CouponError, lambda c: f"优惠券 {c.code} 已创建。", "admin.coupons")
    return _render()


@bp.route("/coupons/<int:coupon_id>", methods=["GET", "POST"])
def coupon_edit(coupon_id):
    coupon = db.session.get(Coupon, coupon_id) or abort(404)
    if request.method == "POST":
        return save_or_show(lambda: coupon_service.save(db.session, coupon, request.form),
                            lambda **kw: _render(coupon, **kw), coupon_service.CouponError, "优惠券已保存。",
                            "admin.coupons")
    return _render(coupon)


@bp.post("/coupons/<int:coupon_id>/delete")
def coupon_delete(coupon_id):
    coupon = db.session.get(Coupon, coupon_id) or abort(404)
    return delete_then_back(lambda: coupon_service.delete(db.session, coupon), coupon_service.CouponError,
                            lambda code: f"优惠券 {code} 已删除。", "admin.coupons")
