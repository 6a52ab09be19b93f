"""Gateway endpoints: submit.php, mapi.php, api.php (protocol, signed, no
CSRF) and the buyer's pay page (确认支付 / 取消, CSRF-protected forms)."""
from urllib.parse import urljoin

from flask import abort, current_app, jsonify, redirect, render_template, request, url_for

from kamen.blueprints.demopay import bp
from kamen.extensions import csrf, db
from kamen.services import demopay
from kamen.services.demopay import PaymentRefused


@bp.before_request
def _retry_due_notifies():
    """Embedded mode has no schedule: gateway traffic retries due notifies."""
    if not current_app.config["REDIS_URL"]:
        demopay.retry_due_notifies(db.session)


@bp.get("/")
def index():
    return render_template("demopay/index.html", pid=demopay.configured_merchant().pid)


@bp.route("/submit.php", methods=["GET", "POST"])
@csrf.exempt
def submit():
    merchant = demopay.configured_merchant()
    try:
        req = demopay.parse_payment(request.values.to_dict(), merchant)
        trade = demopay.open_trade(db.session, merchant, req)
    except PaymentRefused as exc:
        return _refused_page(exc)
    return redirect(url_for(".pay", trade_no=trade.trade_no), 303)


@bp.route("/mapi.php", methods=["GET", "POST"])
@csrf.exempt
def mapi():
    merchant = demopay.configured_merchant()
    try:
        if request.method != "POST":
            raise PaymentRefused("请使用 POST 提交（mapi.php 是服务器接口）")
        req = demopay.parse_payment(request.values.to_dict(), merchant, api=True)
        trade = demopay.open_trade(db.session, merchant, req)
    except PaymentRefused as exc:
        return jsonify(code=exc.code, msg=str(exc))
    return jsonify(demopay.mapi_answer(trade, req.device, _public_url(f"pay/{trade.trade_no}")))


@bp.route("/api.php", methods=["GET", "POST"])
@csrf.exempt
def api():
    params = request.values.to_dict()
    act = params.get("act", "")
    try:
        merchant = demopay.merchant_from_query(params, demopay.configured_merchant())
        if act == "order":
            return jsonify(demopay.order_answer(db.session, merchant, params))
        if act == "query":
            return jsonify(demopay.merchant_answer(db.session, merchant))
        raise PaymentRefused("不支持的操作（act 只能为 order 或 query）")
    except PaymentRefused as exc:
        return jsonify(code=exc.code, msg=str(exc))


@bp.get("/pay/<trade_no>")
def pay(trade_no):
    trade = _trade_or_404(trade_no)
    return render_template("demopay/pay.html", trade=trade, type_label=demopay.PAY_TYPES.get(trade.type, trade.type),
                           return_url=_return_url(trade), merchant_home=demopay.merchant_home(trade))


BUTTONS = {"confirm": demopay.confirm, "cancel": demopay.cancel}


@bp.post("/pay/<trade_no>/<any(confirm, cancel):button>")
def press(trade_no, button):
    """确认支付 goes back to the merchant (return_url); 取消 shows the cancelled page."""
    trade = _trade_or_404(trade_no)
    try:
        BUTTONS[button](db.session, trade)
    except PaymentRefused as exc:
        return _refused_page(exc)
    back = _return_url(trade) if button == "confirm" else None
    return redirect(back or url_for(".pay", trade_no=trade.trade_no), 303)


def _trade_or_404(trade_no):
    trade = demopay.get_trade(db.session, trade_no)
    if trade is None:
        abort(404)
    return trade


def _public_url(path):
    """``path`` under the gateway's public address (DEMO_GATEWAY_URL), so a
    merchant calling mapi.php on an internal address still gets a link its buyer can open."""
    base = current_app.config["DEMO_GATEWAY_URL"] or url_for(".index", _external=True)
    return urljoin(base.rstrip("/") + "/", path)


def _return_url(trade):
    if not trade.return_url:
        return None
    return demopay.return_location(trade, demopay.configured_merchant())


def _refused_page(exc):
    return render_template("demopay/refused.html", reason=str(exc)), 400
