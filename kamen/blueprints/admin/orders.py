"""订单: list with filters and totals, the order page with its timeline, and the admin's actions."""
from flask import abort, current_app, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.models import PAY_TYPES, Order, OrderStatus
from kamen.services import aftersales, forwarding, order_reports, ordering, payments
from kamen.services.ordering import OrderRefused


@bp.get("/orders")
def orders():
    ordering.expire_due(db.session)  # embedded mode has no schedule: the list is never stale
    filters = order_reports.OrderFilters.from_args(request.args)
    page = request.args.get("page", 1, type=int) or 1
    per_page = current_app.config["ADMIN_PAGE_SIZE"]
    rows, total = order_reports.order_page(db.session, filters, page, per_page)
    return render_template(
        "admin/orders.html", rows=rows, total=total, page=page, pages=max((total + per_page - 1) // per_page, 1),
        filters=filters, totals=order_reports.period_totals(db.session, filters), statuses=OrderStatus,
        todo_count=order_reports.todo_count(db.session),
    )


def _order_or_404(order_id):
    return db.session.get(Order, order_id) or abort(404)


@bp.get("/orders/<int:order_id>")
def order_detail(order_id):
    order = _order_or_404(order_id)
    attempts = forwarding.attempts_of(db.session, order.id)
    return render_template(
        "admin/order_detail.html", order=order, events=ordering.timeline(db.session, order.id),
        codes_count=len(ordering.delivered_codes(db.session, order)), statuses=OrderStatus, pay_types=PAY_TYPES,
        attempts=attempts, actions=forwarding.admin_actions(db.session, order, attempts),
        tickets=aftersales.tickets_of_order(db.session, order.id),
    )


def _act(order_id, action, done):
    _order_or_404(order_id)
    try:
        message = action()
    except (OrderRefused, forwarding.ForwardRefused) as exc:
        flash(str(exc), "error")
    else:
        flash(message if isinstance(message, str) else done, "success")
    return redirect(url_for("admin.order_detail", order_id=order_id))


@bp.post("/orders/<int:order_id>/deliver")
def order_deliver(order_id):
    return _act(order_id, lambda: ordering.deliver_by_hand(db.session, order_id, request.form.get("content", "")),
                "已发货，买家在订单页可以看到发货内容。")


@bp.post("/orders/<int:order_id>/refund")
def order_refund(order_id):
    done = "已记录退款。请在支付平台后台完成实际退款（易支付 V1 没有退款接口）。"
    if _order_or_404(order_id).station_id is not None:
        done = "已退款：货款已退回分站余额，并会通知分站。"
    return _act(order_id, lambda: ordering.refund(db.session, order_id, request.form.get("reason", "")), done)


@bp.post("/orders/<int:order_id>/cancel")
def order_cancel(order_id):
    def cancel():
        if not ordering.cancel(db.session, order_id):
            raise OrderRefused("只有待支付的订单可以取消")

    return _act(order_id, cancel, "订单已取消，占用的库存已释放。")


@bp.post("/orders/<int:order_id>/query")
def order_query(order_id):
    _order_or_404(order_id)
    flash(payments.query_payment(db.session, order_id), "info")
    return redirect(url_for("admin.order_detail", order_id=order_id))


@bp.post("/orders/<int:order_id>/forward/query")
def order_forward_query(order_id):
    return _act(order_id, lambda: forwarding.query_now(db.session, order_id), "已向货源查询。")


@bp.post("/orders/<int:order_id>/forward/manual")
def order_forward_manual(order_id):
    return _act(order_id, lambda: forwarding.take_over(db.session, order_id, request.form.get("note", "")),
                "已改为人工处理：不再自动查询货源。货源之后若确认发货，仍会自动发给买家。")


@bp.post("/orders/<int:order_id>/forward/next")
def order_forward_next(order_id):
    def resend():
        handle = forwarding.resend_next(db.session, order_id)
        if handle.paused:
            return "已重发，后台任务暂停中，恢复后自动向下一个货源下单。"
        return None

    return _act(order_id, resend, "已向下一个货源重新下单，结果会显示在下方时间线。")
