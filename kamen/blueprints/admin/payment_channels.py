"""支付通道: 易支付 merchant accounts (address, pid, key kept encrypted and masked), the 测试 button, delete while unused."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.crud import delete_then_back, save_or_show
from kamen.extensions import db
from kamen.models import PAY_MODES, PAY_TYPES, PaymentChannel
from kamen.secretbox import mask
from kamen.services import payments


def _channels():
    return db.session.scalars(sa.select(PaymentChannel).order_by(PaymentChannel.sort_order, PaymentChannel.id)).all()


def _render(channel=None, error=None, status=200):
    return render_template(
        "admin/payment_channels.html", rows=_channels(), channel=channel, error=error, pay_types=PAY_TYPES, pay_modes=PAY_MODES,
        form=request.form if request.method == "POST" else {}, key_state=mask(channel.key_encrypted if channel else ""),
        notify_base=url_for("shop.pay_notify", channel_id=0, _external=True)[:-1],
    ), status


@bp.route("/payment-channels", methods=["GET", "POST"])
def payment_channels():
    if request.method == "POST":
        return save_or_show(lambda: payments.save_channel(db.session, None, request.form), _render,
                            payments.ChannelInvalid, lambda c: f"支付通道“{c.name}”已添加。建议点一下“测试”确认密钥正确。",
                            "admin.payment_channels")
    return _render()


@bp.route("/payment-channels/<int:channel_id>", methods=["GET", "POST"])
def payment_channel_edit(channel_id):
    channel = db.session.get(PaymentChannel, channel_id) or abort(404)
    if request.method == "POST":
        return save_or_show(lambda: payments.save_channel(db.session, channel, request.form),
                            lambda **kw: _render(channel, **kw), payments.ChannelInvalid, "支付通道已保存。",
                            "admin.payment_channels")
    return _render(channel)


@bp.post("/payment-channels/<int:channel_id>/test")
def payment_channel_test(channel_id):
    channel = db.session.get(PaymentChannel, channel_id) or abort(404)
    ok, message = payments.test_channel(channel)
    flash(f"{channel.name}：{message}", "success" if ok else "error")
    return redirect(url_for("admin.payment_channels"))


@bp.post("/payment-channels/<int:channel_id>/delete")
def payment_channel_delete(channel_id):
    channel = db.session.get(PaymentChannel, channel_id) or abort(404)
    return delete_then_back(lambda: payments.delete_channel(db.session, channel), payments.ChannelInvalid,
                            lambda name: f"支付通道“{name}”已删除。", "admin.payment_channels")
