"""The kamen upstream adapter ordering from a real 主站 process over HTTP:
place, query, callbacks, every refusal mapped, and a lost answer left UNKNOWN."""
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Order
from kamen.services import ordering, stations
from kamen.suppliers import adapter_for
from kamen.suppliers.base import (
    AuthFailed,
    DuplicateOrder,
    InsufficientBalance,
    InvalidAccount,
    OrderStatus,
    OutOfStock,
    PriceAboveLimit,
    ProductUnavailable,
    Transient,
)


def _adapter(main, url=None, secret=None, callback_url=None):
    adapter = adapter_for("kamen", {"base_url": url or main["url"], "app_id": main["app_id"],
                                    "secret": secret or main["secret"], "timeout": 5})
    adapter.callback_url = callback_url
    return adapter


def _top_up(main, amount):
    with main["app"].app_context():
        stations.top_up(db.session, stations.station_by_app_id(db.session, main["app_id"]), amount)


def _on_main(main, work):
    with main["app"].app_context():
        return work()


def test_a_card_order_is_placed_once_and_its_codes_come_back(main_station):
    _top_up(main_station, "200")
    adapter = _adapter(main_station)
    # WY100 on this 主站: cost 95.00 × 1.02 = 96.90 for the station.
    result = adapter.place_order("FZ0001", "self.WY100", 1, {}, Decimal("96.90"))
    assert result.status is OrderStatus.SUCCESS and result.cost == Decimal("96.90")
    assert result.idempotency_key == "FZ0001" and result.supplier_order_id
    [card] = result.cards
    assert card["password"].startswith("WY100-DEMO-")
    assert card["password"] not in json.dumps(result.raw, ensure_ascii=False)
    assert result.raw["reply"]["cards"] == "1 张（已隐去）"

    again = adapter.place_order("FZ0001", "self.WY100", 1, {}, Decimal("96.90"))
    assert (again.status, again.supplier_order_id, again.cards) == (OrderStatus.SUCCESS, result.supplier_order_id,
                                                                   result.cards)
    assert adapter.balance() == Decimal("103.10")  # taken once
    queried = adapter.query_order("FZ0001")
    assert (queried.status, queried.cards) == (OrderStatus.SUCCESS, result.cards)


@pytest.mark.parametrize(("call", "error", "words"), [
    (("self.WY100", 1, {}, Decimal("96.89")), PriceAboveLimit, "价格超出上限"),
    (("self.WY100", 2, {}, None), InsufficientBalance, "余额不足"),
    (("self.STEAM-100", 1, {}, None), OutOfStock, "库存不足"),
    (("self.NOPE", 1, {}, None), ProductUnavailable, "不存在或已下架"),
    (("self.QB10", 1, {"account": "abc"}, None), InvalidAccount, "QQ号格式不正确"),
])
def test_refusals_map_to_the_contracts_errors_and_take_nothing(main_station, call, error, words):
    _top_up(main_station, "100")
    adapter = _adapter(main_station)
    with pytest.raises(error, match=words):
        adapter.place_order("FZ0002", *call)
    assert adapter.balance() == Decimal("100.00")
    assert adapter.query_order("FZ0002").status is OrderStatus.UNKNOWN  # nothing there, nothing to assume


def test_a_number_reused_for_other_goods_and_a_wrong_secret(main_station):
    _top_up(main_station, "100")
    adapter = _adapter(main_station)
    adapter.place_order("FZ0003", "self.QB10", 1, {"account": "12345"}, None)
    with pytest.raises(DuplicateOrder, match="已用于另一笔订单"):
        adapter.place_order("FZ0003", "self.QB30", 1, {"account": "12345"}, None)
    with pytest.raises(AuthFailed, match="签名错误"):
        _adapter(main_station, secret="not-the-secret").place_order("FZ0004", "self.QB10", 1, {"account": "1"}, None)


def test_a_topup_is_accepted_then_delivered_by_a_signed_callback(main_station, notify_receiver):
    _top_up(main_station, "100")
    callback_url = f"{notify_receiver.url}/api/suppliers/3/callback"
    adapter = _adapter(main_station, callback_url=callback_url)
    placed = adapter.place_order("FZ0005", "self.QB10", 1, {"account": "12345"}, Decimal("10"))
    assert placed.status is OrderStatus.ACCEPTED and placed.raw["request"]["notify_url"] == callback_url
    assert adapter.query_order("FZ0005").status is OrderStatus.PROCESSING

    def deliver():
        order_id = db.session.scalar(sa.select(Order.id).where(Order.station_order_no == "FZ0005"))
        ordering.deliver_by_hand(db.session, order_id, "已充值到 QQ 12345")

    _on_main(main_station, deliver)
    [(target, headers, body)] = notify_receiver.posts
    assert target == "/api/suppliers/3/callback"
    result = adapter.parse_callback(headers, body)
    assert (result.status, result.idempotency_key, result.supplier_order_id) == (
        OrderStatus.SUCCESS, "FZ0005", placed.supplier_order_id)
    assert result.message == "已发货：已充值到 QQ 12345" and result.raw["callback"]["note"] == "***"

    forged = body.replace(b'"success"', b'"failed"')
    with pytest.raises(AuthFailed, match="签名校验失败"):
        adapter.parse_callback(headers, forged)
    with pytest.raises(AuthFailed, match="AppID"):
        adapter.parse_callback({**headers, "X-Kamen-App-Id": "someone-else"}, body)
    elsewhere = _adapter(main_station, callback_url=f"{notify_receiver.url}/api/suppliers/4/callback")
    with pytest.raises(AuthFailed):  # signed for another address: not ours
        elsewhere.parse_callback(headers, body)


def test_a_refund_on_the_main_station_arrives_as_failed(main_station, notify_receiver):
    _top_up(main_station, "100")
    adapter = _adapter(main_station, callback_url=f"{notify_receiver.url}/cb")
    adapter.place_order("FZ0006", "self.QB10", 1, {"account": "12345"}, None)

    def refund():
        order_id = db.session.scalar(sa.select(Order.id).where(Order.station_order_no == "FZ0006"))
        ordering.refund(db.session, order_id, "充值渠道维护")

    _on_main(main_station, refund)
    result = adapter.parse_callback(*notify_receiver.posts[-1][1:])
    assert result.status is OrderStatus.FAILED and "充值渠道维护" in result.message
    assert adapter.balance() == Decimal("100.00")


class _SpoilingProxy:
    """Forwards each request to the 主站, then spoils the answer on the way back:
    "drop" closes the connection, "html" answers a proxy's error page, "odd" a JSON the protocol does not have."""

    def __init__(self, target, spoil):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith(("x-kamen", "content-type"))}
                proxy.answers.append(requests.post(target + self.path, data=body, headers=headers, timeout=10))
                if spoil == "drop":
                    self.close_connection = True  # the reply is lost on the way back
                    return
                reply = b"<html>502 Bad Gateway</html>" if spoil == "html" else b'{"status": "weird"}'
                self.send_response(502 if spoil == "html" else 201)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.answers = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.mark.parametrize("spoil", ["drop", "html", "odd"])
def test_a_lost_or_garbled_answer_after_sending_is_unknown_and_the_query_finds_the_order(main_station, spoil):
    _top_up(main_station, "200")
    proxy = _SpoilingProxy(main_station["url"], spoil)
    try:
        result = _adapter(main_station, url=proxy.url).place_order("FZ0007", "self.WY100", 1, {}, None)
    finally:
        proxy.stop()
    assert result.status is OrderStatus.UNKNOWN and "切勿重复下单" in result.message
    assert [a.status_code for a in proxy.answers] == [201]  # the 主站 did take it
    adapter = _adapter(main_station)
    assert adapter.query_order("FZ0007").status is OrderStatus.SUCCESS
    assert adapter.balance() == Decimal("103.10")


def test_nothing_listening_is_transient_not_unknown(main_station):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Transient, match="无法连接"):
        _adapter(main_station, url=f"http://127.0.0.1:{port}").place_order("FZ0008", "self.WY100", 1, {}, None)


def test_a_success_with_money_given_back_is_partial():
    from kamen.services.station_orders import callback_body
    from kamen.suppliers.kamen_signing import sign_headers

    adapter = adapter_for("kamen", {"base_url": "http://127.0.0.1:9", "app_id": "ks1", "secret": "s",
                                    "callback_url": "https://fen.example.com/api/suppliers/3/callback"})
    order = {"order_no": "FZ9", "order_id": "M1", "code": "self.WY50", "quantity": 2, "unit_price": "48.45",
             "amount": "96.90", "status": "success", "refunded": False, "refunded_amount": "48.45",
             "cards": [{"number": None, "password": "ONE"}], "note": "", "message": "部分发货", "created_at": None,
             "finished_at": None}
    body = callback_body(order)
    headers = sign_headers("ks1", "s", "POST", "/api/suppliers/3/callback", body)
    result = adapter.parse_callback(headers, body)
    assert result.status is OrderStatus.PARTIAL and [c["password"] for c in result.cards] == ["ONE"]
    assert result.raw["callback"]["cards"] == "1 张（已隐去）"
