"""售后 for buyers: the ticket form on an order, the ticket's status page, screenshots.

Whoever may see the order (its browser, a signed order link, a 查单) may open
and follow its tickets; nobody else learns that they exist.
"""
from flask import Response, abort, redirect, render_template, request, url_for

from kamen.blueprints.shop import bp
from kamen.blueprints.shop.orders import _visible_order
from kamen.extensions import db
from kamen.models import Responsibility, TicketAttachment, TicketKind
from kamen.services import aftersales
from kamen.services.aftersales import TicketRefused


@bp.app_template_filter("reissued_text")
def _reissued_text(token):
    """Reissued codes for the order page (stored encrypted)."""
    from kamen import secretbox

    return secretbox.decrypt(token)


def _order_or_404(order_no):
    order = _visible_order(order_no)
    if order is None:
        abort(404)
    return order


def _ticket_or_404(order, ticket_no):
    ticket = aftersales.by_number(db.session, ticket_no)
    if ticket is None or ticket.order_id != order.id:
        abort(404)
    return ticket


def _form(order, error=None, values=None, status=200):
    return render_template("shop/ticket_new.html", order=order, kinds=TicketKind, error=error, values=values or {},
                           refused=aftersales.can_open(db.session, order), max_shots=aftersales.MAX_SHOTS,
                           max_mb=aftersales.shot_max_bytes() // (1024 * 1024),
                           guide=aftersales.WRONG_ACCOUNT_GUIDE), status


@bp.route("/order/<order_no>/ticket", methods=["GET", "POST"])
def ticket_new(order_no):
    order = _order_or_404(order_no)
    if request.method == "GET":
        return _form(order)
    text = request.form.get("text", "")
    values = {"kind": request.form.get("kind", ""), "text": text[:aftersales.MAX_TEXT]}  # echoed back on refusal
    files = [f for f in request.files.getlist("shots") if f and f.filename]
    try:
        if len(files) > aftersales.MAX_SHOTS:
            raise TicketRefused(f"最多上传 {aftersales.MAX_SHOTS} 张截图")
        shots = [aftersales.read_shot(f.stream, f.filename) for f in files]
        ticket_no = aftersales.open_ticket(db.session, order.id, values["kind"], text, shots,
                                           callback_url=url_for("api.ticket_callback", _external=True))
    except TicketRefused as exc:
        return _form(order, error=str(exc), values=values, status=400)
    return redirect(url_for("shop.ticket_page", order_no=order.order_no, ticket_no=ticket_no))


def _ticket_view(order, ticket, error=None, status=200):
    return render_template(
        "shop/ticket.html", order=order, ticket=ticket, error=error,
        events=aftersales.events(db.session, ticket.id, public_only=True),
        shots=aftersales.attachments(db.session, ticket.id), reissued=aftersales.reissued(ticket),
        buyer_side=ticket.responsibility is Responsibility.BUYER, guide=aftersales.WRONG_ACCOUNT_GUIDE,
        can_reopen=not ticket.is_open and aftersales.can_open(db.session, order) is None,
    ), status


@bp.get("/order/<order_no>/tickets/<ticket_no>")
def ticket_page(order_no, ticket_no):
    order = _order_or_404(order_no)
    return _ticket_view(order, _ticket_or_404(order, ticket_no))


@bp.post("/order/<order_no>/tickets/<ticket_no>/reply")
def ticket_buyer_reply(order_no, ticket_no):
    order = _order_or_404(order_no)
    ticket = _ticket_or_404(order, ticket_no)
    try:
        aftersales.buyer_reply(db.session, ticket.id, request.form.get("text", ""))
    except TicketRefused as exc:
        return _ticket_view(order, ticket, error=str(exc), status=400)
    return redirect(url_for("shop.ticket_page", order_no=order.order_no, ticket_no=ticket.ticket_no))


@bp.post("/order/<order_no>/tickets/<ticket_no>/close")
def ticket_buyer_close(order_no, ticket_no):
    order = _order_or_404(order_no)
    ticket = _ticket_or_404(order, ticket_no)
    try:
        aftersales.buyer_close(db.session, ticket.id)
    except TicketRefused as exc:
        return _ticket_view(order, ticket, error=str(exc), status=400)
    return redirect(url_for("shop.ticket_page", order_no=order.order_no, ticket_no=ticket.ticket_no))


@bp.get("/order/<order_no>/tickets/<ticket_no>/shots/<int:shot_id>")
def ticket_shot(order_no, ticket_no, shot_id):
    order = _order_or_404(order_no)
    ticket = _ticket_or_404(order, ticket_no)
    shot = db.session.get(TicketAttachment, shot_id)
    if shot is None or shot.ticket_id != ticket.id:
        abort(404)
    return shot_response(shot)


def shot_response(shot):
    """The image, never cached by shared caches, never sniffed as anything else."""
    return Response(aftersales.shot_bytes(db.session, shot), mimetype=shot.mimetype,
                    headers={"Cache-Control": "private, no-store", "Content-Disposition": "inline"})
