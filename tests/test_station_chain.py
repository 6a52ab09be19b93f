"""Two real kamens over HTTP, end to end: a buyer pays on the 分站 through the
易支付 demo gateway, the 分站 forwards the order to its 主站 (kamen upstream
API), the 主站 pays from the station's balance and delivers from its own card
codes, and the codes reach the buyer on the 分站 — by the order reply and by
the 主站's signed callback. A balance too low is refused and the 分站's order
is recovered (refunded, the buyer told)."""
import json
import re
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import (
    CardCode,
    Coupon,
    DownstreamStation,
    ForwardAttempt,
    Notification,
    Order,
    OrderStatus,
    PaymentChannel,
    Product,
    Supplier,
    SupplierKind,
    SyncRun,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from kamen.secretbox import encrypt
from kamen.services import ordering, stations, syncing


@pytest.fixture
def sub_station(app, live_server, demo_gateway, main_station):
    """The 分站 (this test's app, served): the 主站 as a kamen supplier, synced, and a demo-gateway channel."""
    app.config["PUBLIC_URL"] = live_server  # the callback address it sends the 主站
    supplier = Supplier(code="main", name="主站", kind=SupplierKind.KAMEN, base_url=main_station["url"],
                        app_id=main_station["app_id"], secret_encrypted=encrypt(main_station["secret"]),
                        auto_list=True, markup_percent=Decimal("10"))
    db.session.add(supplier)
    db.session.add(PaymentChannel(name="演示支付", base_url=demo_gateway.base_url, pid=demo_gateway.pid,
                                  key_encrypted=encrypt(demo_gateway.key), pay_types=["alipay"]))
    db.session.commit()
    run = syncing.request_sync(db.session, supplier, "full")
    syncing.run_sync(db.session, run.id)
    assert db.session.get(SyncRun, run.id).status == "succeeded"
    return supplier


def _main(main, work):
    with main["app"].app_context():
        return work()


def _top_up(main, amount):
    _main(main, lambda: stations.top_up(db.session, stations.station_by_app_id(db.session, main["app_id"]), amount))


def _balance(main):
    return _main(main, lambda: db.session.scalar(
        sa.select(DownstreamStation.balance).where(DownstreamStation.app_id == main["app_id"])))


def _buy_and_pay(base, demo_gateway, product_id, **fields):
    """As a buyer on the 分站's site: the buy form, the pay button, 确认支付 on the gateway."""
    http = requests.Session()
    http.get(f"{base}/p/{product_id}", timeout=30)
    form = {"quantity": "1", "contact": "13800138000", **{f"f_{k}": v for k, v in fields.items()}}
    bought = http.post(f"{base}/p/{product_id}/buy", data=form, headers={"Origin": base},
                       allow_redirects=False, timeout=30)
    assert bought.status_code == 302, bought.text
    order_no = bought.headers["Location"].rsplit("/", 1)[1]
    page = http.get(f"{base}/order/{order_no}", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    channel_id = db.session.scalar(sa.select(PaymentChannel.id))
    jump = http.post(f"{base}/order/{order_no}/pay", data={"csrf_token": token, "method": f"{channel_id}:alipay"},
                     allow_redirects=False, timeout=30)
    assert jump.status_code == 302, jump.text
    answer = demo_gateway.pay(jump.headers["Location"])  # the gateway notifies the 分站, which forwards
    assert answer.status_code in (302, 303), answer.text
    return http, order_no


def _order(order_no):
    db.session.expire_all()
    return db.session.scalar(sa.select(Order).where(Order.order_no == order_no))


def test_a_buyer_on_the_sub_station_gets_the_main_stations_card_code(app, live_server, demo_gateway, main_station,
                                                                     sub_station):
    _top_up(main_station, "100")
    product = db.session.scalar(sa.select(Product).filter_by(supplier_id=sub_station.id, code="self.WY50"))
    http, order_no = _buy_and_pay(live_server, demo_gateway, product.id)

    order = _order(order_no)
    assert order.status is OrderStatus.DELIVERED, [e.message for e in ordering.timeline(db.session, order.id)]
    [attempt] = db.session.scalars(sa.select(ForwardAttempt).where(ForwardAttempt.order_id == order.id)).all()

    def main_side():
        main_order = db.session.scalar(sa.select(Order).where(Order.station_order_no == attempt.idempotency_key))
        sold = db.session.scalars(sa.select(CardCode).where(CardCode.order_id == main_order.id)).all()
        return main_order.status, [ordering.delivered_codes(db.session, main_order)], len(sold), \
            main_order.station_notified_status
    main_status, [[(_, code)]], sold, notified = _main(main_station, main_side)
    assert (main_status, sold, notified) == (OrderStatus.DELIVERED, 1, "delivered")  # and the callback was taken
    # 主站 price for the station: 47.50 × 1.02 = 48.45, taken once.
    assert _balance(main_station) == Decimal("51.55")

    assert code in ordering.delivery_note(order)
    page = http.get(f"{live_server}/order/{order_no}", timeout=30).text
    assert code in page  # the buyer sees the 主站's code on the 分站's order page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ForwardAttempt)) == 1


def test_a_balance_too_low_is_refused_and_the_order_recovered(app, live_server, demo_gateway, main_station,
                                                             sub_station):
    _top_up(main_station, "10")
    product = db.session.scalar(sa.select(Product).filter_by(supplier_id=sub_station.id, code="self.WY50"))
    http, order_no = _buy_and_pay(live_server, demo_gateway, product.id)

    order = _order(order_no)
    messages = [e.message for e in ordering.timeline(db.session, order.id)]
    assert order.status is OrderStatus.REFUNDED, messages
    assert any("余额不足" in m for m in messages)
    assert _balance(main_station) == Decimal("10.00")
    assert _main(main_station, lambda: db.session.scalar(
        sa.select(sa.func.count()).select_from(Order).where(Order.station_id.is_not(None)))) == 0
    page = http.get(f"{live_server}/order/{order_no}", timeout=30).text
    assert "已退款" in page


def _kamen_supplier(peer, code):
    supplier = Supplier(code=code, name=f"上游 {code}", kind=SupplierKind.KAMEN, base_url=peer["url"],
                        app_id=peer["app_id"], secret_encrypted=encrypt(peer["secret"]), auto_list=True,
                        markup_percent=Decimal("10"))
    db.session.add(supplier)
    db.session.commit()
    run = syncing.request_sync(db.session, supplier, "full")
    syncing.run_sync(db.session, run.id)
    assert db.session.get(SyncRun, run.id).status == "succeeded", db.session.get(SyncRun, run.id).message
    return supplier


def test_a_chain_of_three_kamens(app, live_server, demo_gateway, main_station, tmp_path):
    """分站 → 中间站 → 主站: the middle kamen has no codes of its own; it forwards the 分站's order
    further up, and the top's card code comes all the way down to the buyer."""
    from tests.peers import kamen_peer

    _top_up(main_station, "100")
    with kamen_peer(tmp_path, "middle", seed=False, markup_percent="0") as middle:
        with middle["app"].app_context():
            _kamen_supplier(main_station, "top")  # the middle station buys from the top one
            stations.top_up(db.session, stations.station_by_app_id(db.session, middle["app_id"]), "100")
        app.config["PUBLIC_URL"] = live_server
        db.session.add(PaymentChannel(name="演示支付", base_url=demo_gateway.base_url, pid=demo_gateway.pid,
                                      key_encrypted=encrypt(demo_gateway.key), pay_types=["alipay"]))
        db.session.commit()
        supplier = _kamen_supplier(middle, "mid")
        product = db.session.scalar(sa.select(Product).filter_by(supplier_id=supplier.id, code="top.self.WY50"))
        http, order_no = _buy_and_pay(live_server, demo_gateway, product.id)

        order = _order(order_no)
        assert order.status is OrderStatus.DELIVERED, [e.message for e in ordering.timeline(db.session, order.id)]

        def middle_side():
            mid = db.session.scalar(sa.select(Order).where(Order.station_id.is_not(None)))
            return mid.status, db.session.scalar(sa.select(DownstreamStation.balance))
        mid_status, mid_balance = _main(middle, middle_side)
        # The middle paid the top 47.50 × 1.02 = 48.45; the 分站 paid the middle that cost again (its markup
        # for the 分站 is 0%).
        assert mid_status is OrderStatus.DELIVERED and mid_balance == Decimal("51.55")
        assert _balance(main_station) == Decimal("51.55")

    def top_code():
        top = db.session.scalar(sa.select(Order).where(Order.station_id.is_not(None)))
        return ordering.delivered_codes(db.session, top)[0][1]
    code = _main(main_station, top_code)
    assert code in ordering.delivery_note(order)
    assert code in http.get(f"{live_server}/order/{order_no}", timeout=30).text
    timeline = json.dumps([(e.message, e.data) for e in ordering.timeline(db.session, order.id)], ensure_ascii=False)
    assert code not in timeline  # the exchanges are kept redacted


def test_a_ticket_on_a_forwarded_order_is_settled_by_the_main_stations_refund(app, client, auth, live_server,
                                                                              demo_gateway, main_station, sub_station):
    """卡密无效 on the 分站: the ticket goes to the 主站, lands on the 主站's own order for the station,
    the 主站 admin refunds it (a coupon is refused: the buyer is not the 主站's customer), the station's
    balance gets the money back, and the answer reaches the 分站's ticket."""
    from tests.helpers import form_values
    from tests.test_ticket_peer import _main_admin
    from tests.ticket_helpers import last_ticket

    _top_up(main_station, "100")
    product = db.session.scalar(sa.select(Product).filter_by(supplier_id=sub_station.id, code="self.WY50"))
    http, order_no = _buy_and_pay(live_server, demo_gateway, product.id)
    assert _order(order_no).status is OrderStatus.DELIVERED and _balance(main_station) == Decimal("51.55")
    form = form_values(http.get(f"{live_server}/order/{order_no}/ticket", timeout=30).text)
    opened = http.post(f"{live_server}/order/{order_no}/ticket", allow_redirects=False, timeout=30,
                       data={**form, "kind": "invalid_code", "text": "卡密提示已被使用，无法兑换"})
    assert opened.status_code == 302, opened.text
    ours = last_ticket()
    assert (ours.status, ours.forward_state) == (TicketStatus.SUPPLIER, "sent"), ours.forward_error

    def main_ticket():
        ticket = db.session.scalar(sa.select(Ticket))
        main_order = db.session.scalar(sa.select(Order).where(Order.station_order_no == order_no))
        return ticket.id, ticket.ticket_no, ticket.order_id, main_order.id, main_order.order_no, ticket.product_name
    main_id, main_no, linked_id, main_order_id, main_order_no, product_name = _main(main_station, main_ticket)
    assert ours.upstream_ticket_no == main_no and linked_id == main_order_id
    assert product_name == "网易一卡通 50元"  # the 主站's own product, not "分站订单 …"

    main_admin = _main_admin(main_station)
    page = main_admin.get(f"/admin/tickets/{main_id}").text
    assert main_order_no in page and "测试分站" in page and order_no in page  # its order and the station's number
    assert "发券并解决" not in page and "退回分站" in page
    main_admin.post(f"/admin/tickets/{main_id}/coupon", data={"amount": "5"})  # by hand, past the hidden form
    assert "不能发本店的优惠券" in main_admin.get(f"/admin/tickets/{main_id}").text
    assert _main(main_station, lambda: (db.session.get(Ticket, main_id).status,
                                        db.session.scalar(sa.select(sa.func.count()).select_from(Coupon)))) == (
        TicketStatus.OPEN, 0)

    assert main_admin.post(f"/admin/tickets/{main_id}/refund", data={"reason": "卡密确认已被使用"}).status_code == 302
    assert "¥48.45 已退回分站余额" in main_admin.get(f"/admin/tickets/{main_id}").text
    assert _balance(main_station) == Decimal("100.00")
    assert _main(main_station, lambda: db.session.get(Order, main_order_id).status) is OrderStatus.REFUNDED

    # The 分站 hears it by the signed ticket callback: its ticket shows the 主站's answer.
    ours = last_ticket()
    assert ours.upstream_status == "resolved", ours.forward_error
    replies = db.session.scalars(sa.select(TicketEvent.message).where(
        TicketEvent.ticket_id == ours.id, TicketEvent.kind == "supplier_reply")).all()
    assert any("已退款" in r and "卡密确认已被使用" in r for r in replies), replies
    auth.login()
    assert "卡密确认已被使用" in client.get(f"/admin/tickets/{ours.id}").text
    # The 主站's order callback says so on the 分站's order too, and its admin is alerted: the buyer
    # still holds the code, so whether to refund the buyer is the 分站 admin's call.
    order = _order(order_no)
    reversed_ = [e.message for e in ordering.timeline(db.session, order.id) if e.kind == "forward_reversed"]
    assert order.status is OrderStatus.DELIVERED and len(reversed_) == 1
    assert "主站已退款 ¥48.45 到分站余额" in reversed_[0] and "卡密确认已被使用" in reversed_[0]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.kind == "forward_reversed")) == 1
