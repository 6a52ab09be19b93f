"""Buying in tests: a small signed 易支付 V1 peer, channels, card-code products, notifies.

The peer answers the query API (api.php?act=order) and mapi.php from what the
test tells it was paid; submit.php records the jump. Notifies are signed with
the channel key exactly as a gateway signs them.
"""
import threading
from decimal import Decimal

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from kamen.extensions import db
from kamen.models import PaymentChannel, StockMode
from kamen.payments import epay
from kamen.secretbox import encrypt
from kamen.services import card_codes
from tests.helpers import make_product

PID = "1001"
KEY = "peer-merchant-key-0123456789"


class EpayPeer:
    def __init__(self):
        self.paid = {}  # out_trade_no -> money text
        self.jumps = []
        app = Flask("epay-peer")

        @app.get("/api.php")
        def query():
            args = request.args
            if args.get("pid") != PID or args.get("key") != KEY:
                return jsonify(code=-1, msg="商户密钥错误")
            if args.get("act") == "query":
                return jsonify(code=1, msg="查询商户信息成功！", pid=PID, active=1)
            no = args.get("out_trade_no", "")
            if no not in self.paid:
                return jsonify(code=-1, msg="订单不存在")
            return jsonify(code=1, msg="查询成功", trade_no="T" + no, out_trade_no=no, money=self.paid[no], status=1)

        @app.post("/mapi.php")
        def mapi():
            params = request.form.to_dict()
            self.jumps.append(params)
            if not epay.verify(params, KEY) or not params.get("clientip"):
                return jsonify(code=-1, msg="签名错误")
            return jsonify(code=1, trade_no="T" + params["out_trade_no"], qrcode=f"weixin://wxpay/{params['out_trade_no']}")

        @app.route("/submit.php", methods=["GET", "POST"])
        def submit():
            params = request.values.to_dict()
            self.jumps.append(params)
            return "ok" if epay.verify(params, KEY) else ("bad sign", 400)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def epay_peer():
    peer = EpayPeer()
    yield peer
    peer.stop()


def make_channel(base_url="http://127.0.0.1:9", pid=PID, key=KEY, types=("alipay", "wxpay"), mode="jump"):
    channel = PaymentChannel(name="测试通道", base_url=base_url, pid=pid, key_encrypted=encrypt(key),
                             pay_types=list(types), is_enabled=True, mode=mode)
    db.session.add(channel)
    db.session.commit()
    return channel


def make_card_product(codes=10, **kwargs):
    product = make_product(stock_mode=StockMode.CARDS, stock=0, **kwargs)
    if codes:
        card_codes.upload_text(db.session, product, "\n".join(f"CODE-{product.id}-{i:04d}" for i in range(codes)))
    return product


def notify_params(order_no, money, pid=PID, key=KEY, trade_no=None, status="TRADE_SUCCESS", pay_type="alipay"):
    return epay.signed(
        {"pid": pid, "trade_no": trade_no or f"T{order_no}", "out_trade_no": order_no, "type": pay_type,
         "name": "商品", "money": str(money), "trade_status": status}, key)


def buy_form(**overrides):
    form = {"quantity": "1", "contact": "13800138000"}
    form.update(overrides)
    return form


def money(text):
    return Decimal(text)
