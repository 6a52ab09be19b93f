"""Buying: the buy form, the pay page, the gateway's notify and return, the order page, 查单."""
from urllib.parse import urlsplit

from flask import abort, redirect, render_template, request, session, url_for
from markupsafe import Markup

from kamen.blueprints.shop import bp
from kamen.blueprints.shop.routes import render_product
from kamen.extensions import csrf, db
from kamen.models import PAY_TYPES, OrderStatus
from kamen.services import aftersales, order_lookup, ordering, payments
from kamen.services.ordering import OrderRefused

MY_ORDERS = "my_orders"
MY_ORDERS_KEPT = 20
FIELD_PREFIX = "f_"
BUY_FORM_MAX_BYTES = 64 * 1024  # a buy form is a few short fields
ECHO_MAX_CHARS = 200


def _client_ip():
    return request.remote_addr or "-"


def _remember(order_no):
    """This browser may see the order (the buyer's own session)."""
    kept = [n for n in session.get(MY_ORDERS, []) if n != order_no][-(MY_ORDERS_KEPT - 1):]
    session[MY_ORDERS] = kept + [order_no]


def _visible_order(order_no):
    """The order if this browser may see it (its buyer, or a valid signed link), else None."""
    granted = order_no in session.get(MY_ORDERS, []) or order_lookup.order_no_from_token(request.args.get("t")) == order_no
    order = ordering.by_number(db.session, order_no) if granted else None
    if order is not None and request.args.get("t"):
        _remember(order_no)
    return order


def _from_this_site():
    """The buy form's CSRF defence. Product pages set no session cookie (they stay
    cheap and cacheable), so there is no token to check: a browser names the page
    a POST comes from, and one from another site is refused."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return not source or urlsplit(source).netloc == request.host


@bp.post("/p/<int:product_id>/buy")
@csrf.exempt
def buy(product_id):
    if not _from_this_site():
        return render_template("errors/400.html", reason="页面来源无效，请回到商品页重新下单。"), 400
    if (request.content_length or 0) > BUY_FORM_MAX_BYTES:
        return render_product(product_id, buy_error="提交的内容太长，请检查填写的信息", status=413)
    form = request.form
    req = ordering.BuyRequest(
        product_id=product_id,
        quantity=form.get("quantity", ""),
        contact=form.get("contact", ""),
        lookup_password=form.get("lookup_password", ""),
        coupon_code=form.get("coupon", ""),
        fields={k[len(FIELD_PREFIX):]: v for k, v in form.items() if k.startswith(FIELD_PREFIX)},
        ip=_client_ip(),
    )
    try:
        order_no = ordering.create_order(db.session, req)
    except OrderRefused as exc:
        status = 409 if str(exc) == ordering.OUT_OF_STOCK else 400
        echo = {k: v[:ECHO_MAX_CHARS] for k, v in form.items() if k != "lookup_password"}
        return render_product(product_id, buy_error=str(exc), form=echo, status=status)
    _remember(order_no)
    return redirect(url_for("shop.order_page", order_no=order_no))


@bp.get("/order/<order_no>")
def order_page(order_no):
    order = _visible_order(order_no)
    if order is None:
        return render_template("shop/query.html", error=order_lookup.NOT_FOUND, order_no=order_no), 404
    if order.status is OrderStatus.PENDING and order.expires_at <= ordering.now():
        ordering.expire_due(db.session, limit=20)
        db.session.refresh(order)
    return render_template("shop/order.html", **_order_context(order))


@bp.get("/order/<order_no>/status")
def order_status(order_no):
    """The part of the order page that polls (HTMX) until the order settles."""
    order = _visible_order(order_no)
    if order is None:
        abort(404)
    return render_template("shop/_order_status.html", **_order_context(order))


def _order_context(order):
    return {
        "order": order,
        "codes": ordering.delivered_codes(db.session, order),
        "note": ordering.delivery_note(order) if order.status is OrderStatus.DELIVERED else "",
        "options": payments.pay_options(db.session) if order.status is OrderStatus.PENDING else [],
        "link": url_for("shop.order_page", order_no=order.order_no, t=order_lookup.link_token(order.order_no),
                        _external=True),
        "polling": order.status is OrderStatus.PENDING and order.pay_started_at is not None
        or order.status in (OrderStatus.PAID, OrderStatus.FORWARDING, OrderStatus.UNCERTAIN, OrderStatus.MANUAL),
        "statuses": OrderStatus,
        "tickets": aftersales.tickets_of_order(db.session, order.id),
    }


@bp.post("/order/<order_no>/pay")
def pay(order_no):
    order = _visible_order(order_no)
    if order is None:
        abort(404)
    channel, _, pay_type = request.form.get("method", "").partition(":")
    channel_id = int(channel) if channel.isdigit() else None
    try:
        target = payments.start_payment(
            db.session, order, channel_id, pay_type,
            notify_url=url_for("shop.pay_notify", channel_id=channel_id or 0, _external=True),
            return_url=url_for("shop.pay_return", order_no=order.order_no, _external=True),
            client_ip=_client_ip(), mobile="Mobile" in request.headers.get("User-Agent", ""),
        )
    except OrderRefused as exc:
        return render_template("shop/order.html", pay_error=str(exc), **_order_context(order)), 400
    if target.url:
        return redirect(target.url)
    qr = _qr_svg(target.qrcode) if target.qrcode else None
    return render_template("shop/order.html", qr_svg=Markup(qr) if qr else None, pay_label=PAY_TYPES.get(pay_type, ""),
                           **_order_context(order))


def _qr_svg(text):
    import segno  # here: only QR-code channels need it

    return segno.make(text, error="m").svg_inline(scale=5, border=2)


@bp.route("/pay/notify/<int:channel_id>", methods=["GET", "POST"])
@csrf.exempt
def pay_notify(channel_id):
    """The gateway's server-to-server notify: ``success`` or ``fail``, plain text."""
    params = request.values.to_dict()
    ok = payments.handle_notify(db.session, channel_id, params)
    return ("success" if ok else "fail"), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/pay/return/<order_no>")
def pay_return(order_no):
    """The buyer comes back from the gateway. Signed notify fields on the URL are
    handled like a notify (it may arrive before the notify itself)."""
    order = ordering.by_number(db.session, order_no)
    signed = False
    if order is not None and request.args.get("sign") and order.channel_id:
        signed = payments.handle_notify(db.session, order.channel_id, request.args.to_dict(), via="return")
    if order is None or not signed and order_no not in session.get(MY_ORDERS, []):
        return redirect(url_for("shop.lookup", no=order_no[:32]))
    return redirect(url_for("shop.order_page", order_no=order_no, t=order_lookup.link_token(order_no)))


@bp.route("/query", methods=["GET", "POST"])
def lookup():
    if request.method == "GET":
        return render_template("shop/query.html", order_no=request.args.get("no", ""))
    order_no = request.form.get("order_no", "")[:40]
    try:
        order = order_lookup.find(db.session, order_no, request.form.get("secret", "")[:100], _client_ip())
    except order_lookup.LookupRefused as exc:
        return render_template("shop/query.html", error=str(exc), order_no=order_no), 400
    _remember(order.order_no)
    if request.form.get("next") == "ticket":  # 查单 → 申请售后
        return redirect(url_for("shop.ticket_new", order_no=order.order_no))
    return redirect(url_for("shop.order_page", order_no=order.order_no))
