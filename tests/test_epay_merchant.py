"""The 易支付 V1 merchant client on its own: names, jump URLs, mapi.php, notify parsing, queries."""
import threading
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from kamen.payments import epay
from kamen.payments.epay_merchant import EpayV1, safe_name
from kamen.payments.gateway import GatewayError, NoticeRejected
from tests.order_helpers import KEY, PID, notify_params


def test_safe_name_fits_127_bytes_without_breaking_a_character():
    name = safe_name("腾讯视频VIP&会员=年卡+" * 20)
    assert len(name.encode("utf-8")) <= 127 and "&" not in name and "=" not in name and "+" not in name
    name.encode("utf-8").decode("utf-8")  # whole characters only
    assert safe_name("") == "商品" and safe_name("Q币 10元") == "Q币 10元"


def test_submit_url_is_signed_and_never_carries_the_key():
    gateway = EpayV1("https://pay.example.com/", PID, KEY)
    url = gateway.submit_url("A1", Decimal("10"), "网易一卡通 50元", "alipay", "https://shop/n", "https://shop/r")
    parts = urlsplit(url)
    assert parts.path == "/submit.php" and KEY not in url
    params = dict(parse_qsl(parts.query))
    assert params["money"] == "10.00" and params["sign_type"] == "MD5" and epay.verify(params, KEY)


def test_parse_notify_checks_sign_pid_and_money_as_decimal():
    gateway = EpayV1("https://pay.example.com", PID, KEY)
    notice = gateway.parse_notify(notify_params("A1", "1"))
    assert notice.money == Decimal("1.00") and notice.paid and notice.out_trade_no == "A1"
    assert not gateway.parse_notify(notify_params("A1", "1", status="WAIT")).paid
    for params, reason in [
        ({**notify_params("A1", "1"), "money": "2"}, "签名错误"),
        (notify_params("A1", "1", pid="7"), "商户号不符"),
        (notify_params("A1", "-1"), "金额格式错误"),
        (notify_params("A1", "1e3"), "金额格式错误"),
        (notify_params("A1", "0"), "金额必须大于 0"),
    ]:
        with pytest.raises(NoticeRejected, match=reason):
            gateway.parse_notify(params)


@pytest.fixture
def mapi_gateway():
    app = Flask("mapi")
    seen = []

    @app.post("/mapi.php")
    def mapi():
        seen.append(request.form.to_dict())
        if not epay.verify(request.form, KEY):
            return jsonify(code=-1, msg="签名错误")
        return jsonify(code=1, trade_no="T9", qrcode="weixin://wxpay/bizpayurl?pr=abc")

    @app.get("/api.php")
    def api():
        return "<html>not json</html>"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_mapi_returns_a_qr_code_and_errors_are_chinese(mapi_gateway):
    base, seen = mapi_gateway
    start = EpayV1(base, PID, KEY).create_payment("A1", Decimal("5"), "名字", "wxpay", "https://s/n", "https://s/r",
                                                  client_ip="1.2.3.4", device="mobile")
    assert start.qrcode.startswith("weixin://") and start.trade_no == "T9"
    assert seen[-1]["clientip"] == "1.2.3.4" and seen[-1]["device"] == "mobile"
    with pytest.raises(GatewayError, match="签名错误"):
        EpayV1(base, PID, "wrong").create_payment("A1", Decimal("5"), "n", "wxpay", "u", "r", client_ip="1.2.3.4")
    with pytest.raises(GatewayError, match="不是 JSON"):
        EpayV1(base, PID, KEY).query("A1")
    with pytest.raises(GatewayError, match="连接支付网关失败"):
        EpayV1("http://127.0.0.1:9", PID, KEY).query("A1")
