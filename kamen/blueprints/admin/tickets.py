"""售后工单: the queue by deadline, one ticket with its whole history and the admin's answers,
and the after-sales settings (who is responsible, deadlines)."""
from flask import abort, current_app, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.shop.tickets import shot_response
from kamen.extensions import db
from kamen.models import OrderStatus, Responsibility, Ticket, TicketAttachment, TicketKind, TicketStatus
from kamen.secretbox import decrypt
from kamen.services import aftersales, ticket_forwarding
from kamen.services.aftersales import TicketRefused
from kamen.services.ordering import now


@bp.get("/tickets")
def tickets():
    if not current_app.config["REDIS_URL"]:  # embedded mode has no schedule: the queue raises its own alerts
        aftersales.alert_overdue(db.session)
    status = request.args.get("status") or "active"
    page = request.args.get("page", 1, type=int) or 1
    per_page = current_app.config["ADMIN_PAGE_SIZE"]
    rows, total = aftersales.queue_page(db.session, status, page, per_page)
    open_count, overdue = aftersales.open_counts(db.session)
    return render_template("admin/tickets.html", rows=rows, total=total, page=page,
                           pages=max((total + per_page - 1) // per_page, 1), status=status,
                           filters=aftersales.QUEUE_FILTERS, open_count=open_count, overdue=overdue, now=now())


def _ticket_or_404(ticket_id):
    return db.session.get(Ticket, ticket_id) or abort(404)


@bp.get("/tickets/<int:ticket_id>")
def ticket_detail(ticket_id):
    ticket = _ticket_or_404(ticket_id)
    order = ticket.order
    return render_template(
        "admin/ticket_detail.html", ticket=ticket, order=order, now=now(),
        events=aftersales.events(db.session, ticket.id), shots=aftersales.attachments(db.session, ticket.id),
        reissued=aftersales.reissued(ticket),
        supplier_codes=decrypt(ticket.supplier_codes_encrypted) if ticket.supplier_codes_encrypted else "",
        message=ticket_forwarding.prepared_message(db.session, ticket) if ticket.forward_state == "manual" else "",
        refundable=order is not None and order.status in (OrderStatus.PAID, OrderStatus.DELIVERED,
                                                          OrderStatus.UNFULFILLABLE),
        statuses=TicketStatus, responsibilities=Responsibility,
    )


@bp.get("/tickets/<int:ticket_id>/shots/<int:shot_id>")
def ticket_shot(ticket_id, shot_id):
    shot = db.session.get(TicketAttachment, shot_id)
    if shot is None or shot.ticket_id != ticket_id:
        abort(404)
    return shot_response(shot)


def _form(name):
    return request.form.get(name, "")


ACTIONS = {
    "reply": (lambda t: aftersales.reply(db.session, t, _form("text"), public=True), "已回复买家。"),
    "note": (lambda t: aftersales.reply(db.session, t, _form("text"), public=False), "内部备注已保存（买家看不到）。"),
    "supplier_answer": (lambda t: aftersales.supplier_answer(db.session, t, _form("text")), "已记录货源答复。"),
    "forwarded": (lambda t: aftersales.mark_sent_by_hand(db.session, t), "已标记为转交货源。"),
    "retry_forward": (lambda t: ticket_forwarding.retry_forward(db.session, t), "已重新转交货源。"),
    "to_supplier": (lambda t: ticket_forwarding.message_upstream(db.session, t, _form("text")),
                    "已转告货源（通过接口发送，结果见下方记录）。"),
    "reissue": (lambda t: aftersales.resolve_reissue(db.session, t, _form("codes")),
                "已补发，买家在工单和订单页可以看到新的内容。"),
    "refund": (lambda t: aftersales.resolve_refund(db.session, t, _form("reason")), None),
    "coupon": (lambda t: aftersales.resolve_coupon(db.session, t, _form("amount")), "已发放补偿优惠券并关闭工单。"),
    "answer": (lambda t: aftersales.resolve_answered(db.session, t, _form("note")), "工单已解决。"),
    "reject": (lambda t: aftersales.reject(db.session, t, _form("reason")), "工单已驳回，买家可以看到理由。"),
}


@bp.post("/tickets/<int:ticket_id>/<any(" + ", ".join(ACTIONS) + "):action>")
def ticket_act(ticket_id, action):
    _ticket_or_404(ticket_id)
    work, done = ACTIONS[action]
    try:
        said = work(ticket_id)
    except TicketRefused as exc:
        flash(str(exc), "error")
    else:
        flash(done or said, "success")
    return redirect(url_for("admin.ticket_detail", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/refresh")
def ticket_refresh(ticket_id):
    _ticket_or_404(ticket_id)
    try:
        flash(ticket_forwarding.refresh_from_upstream(db.session, ticket_id), "info")
    except TicketRefused as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.ticket_detail", ticket_id=ticket_id))


@bp.route("/settings/aftersales", methods=["GET", "POST"])
def aftersales_settings():
    error = None
    if request.method == "POST":
        try:
            aftersales.save_config(db.session, request.form)
        except TicketRefused as exc:
            error = str(exc)
        else:
            flash("售后设置已保存，新工单按新规则处理。", "success")
            return redirect(url_for("admin.aftersales_settings"))
    values = aftersales.config(db.session)
    return render_template("admin/aftersales_settings.html", cfg=values, kinds=TicketKind, error=error,
                           form=request.form if error else None, responsibilities=Responsibility), 400 if error else 200
