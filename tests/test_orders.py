"""Buying end to end through the shop: order, reservation, notify, delivery, expiry, 查单."""
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import CardCode, Order, OrderEvent, OrderStatus, Product
from kamen.timeutil import utcnow
from tests.helpers import make_product
from tests.order_helpers import KEY, buy_form, epay_peer, make_card_product, make_channel, notify_params  # noqa: F401


def _buy(client, product, **form):
    return client.post(f"/p/{product.id}/buy", data=buy_form(**form))


def _last_order():
    return db.session.scalars(sa.select(Order).order_by(Order.id.desc())).first()


def _codes(product_id, status):
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(CardCode).where(CardCode.product_id == product_id,
                                                               CardCode.status == status))


def test_card_order_reserves_then_notify_delivers_codes(app, client):
    channel = make_channel()
    product = make_card_product(codes=3, sale_price=Decimal("10.00"))
    resp = _buy(client, product, quantity="2", price="0.01", amount="0.01")  # price fields are ignored
    assert resp.status_code == 302
    order = _last_order()
    assert order.status is OrderStatus.PENDING and order.amount == Decimal("20.00")
    assert _codes(product.id, "reserved") == 2 and db.session.get(Product, product.id).stock == 1

    page = client.get(resp.location)
    assert "待支付" in page.text and "CODE-" not in page.text
    answer = client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, "20"))
    assert answer.text == "success"
    db.session.expire_all()
    order = db.session.get(Order, order.id)
    assert order.status is OrderStatus.DELIVERED and order.paid_amount == Decimal("20.00")
    assert _codes(product.id, "sold") == 2 and db.session.get(Product, product.id).sales_count == 2
    page = client.get(f"/order/{order.order_no}")
    assert page.text.count("CODE-") == 4  # two codes, each shown and in its copy button
    kinds = [e.kind for e in db.session.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order.id))]
    assert kinds == ["created", "paid", "delivered"]


def _order_for(client, product, **form):
    assert _buy(client, product, **form).status_code == 302
    return _last_order()


def _status(order_id):
    db.session.expire_all()
    return db.session.get(Order, order_id).status


def test_synced_stock_is_reserved_and_unlimited_holds_nothing(app, client):
    synced = make_product(stock=5)
    order = _order_for(client, synced, quantity="3")
    assert db.session.get(Product, synced.id).stock == 2
    assert _buy(client, synced, quantity="3", contact="13900139000").status_code == 409
    assert db.session.get(Product, synced.id).stock == 2

    from kamen.models import StockMode

    topup = make_product(stock_mode=StockMode.UNLIMITED, stock=0, buyer_fields=[
        {"key": "account", "label": "充值手机号", "pattern": r"^1[3-9]\d{9}$", "hint": "11 位手机号"}])
    topup_order = _order_for(client, topup, contact="13700137000", f_account="13912345678")
    broken = make_product(stock_mode=StockMode.UNLIMITED, stock=0, buyer_fields=[
        {"key": "role", "label": "角色名", "pattern": "[unclosed", "hint": ""}])  # as a supplier may send it
    assert _order_for(client, broken, contact="13600136000", f_role="法师").buyer_fields == {"role": "法师"}
    assert topup_order.buyer_fields == {"account": "13912345678"}
    assert order.reservation.value == "stock" and topup_order.reservation.value == "none"


def test_bad_input_is_refused_with_a_reason_and_reserves_nothing(app, client):
    product = make_card_product(codes=5, max_per_order=3, buyer_fields=[
        {"key": "account", "label": "充值手机号", "pattern": r"^1[3-9]\d{9}$", "hint": "11 位手机号"}])
    cases = [
        ({"quantity": "0"}, "至少购买 1 件"),
        ({"quantity": "-1"}, "购买数量必须是正整数"),
        ({"quantity": "4"}, "最多购买 3 件"),
        ({"quantity": "1.5"}, "购买数量必须是正整数"),
        ({"quantity": "²"}, "购买数量必须是正整数"),
        ({"quantity": "9" * 50}, "购买数量必须是正整数"),
        ({"f_account": "12345"}, "充值手机号格式不正确（11 位手机号）"),
        ({"f_account": ""}, "请填写充值手机号"),
        ({"contact": "nobody"}, "请填写正确的联系方式"),
        ({"coupon": "NOPE"}, "优惠券码无效"),
        ({"lookup_password": "12"}, "查单密码须为 4-32 位"),
    ]
    for overrides, message in cases:
        form = {"f_account": "13912345678", **overrides}
        resp = _buy(client, product, **form)
        assert resp.status_code == 400, overrides
        assert message in resp.text, (overrides, resp.text[:200])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0
    assert _codes(product.id, "available") == 5 and db.session.get(Product, product.id).stock == 5

    garbage = client.post(f"/p/{product.id}/buy", csrf=False, content_type="application/x-www-form-urlencoded",
                          data=b"quantity=1&f_account=\xff\xfe&contact=\xc3\x28")
    assert garbage.status_code == 400 and "购买数量必须是正整数" in garbage.text  # undecodable form: nothing read
    elsewhere = client.post(f"/p/{product.id}/buy", csrf=False, data=buy_form(f_account="13912345678"),
                            headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 400 and "页面来源无效" in elsewhere.text
    here = client.post(f"/p/{product.id}/buy", csrf=False, data=buy_form(quantity="0"),
                       headers={"Origin": "http://localhost", "Referer": "https://evil.example/x"})
    assert here.status_code == 400 and "至少购买 1 件" in here.text  # same site: the form is read
    huge = client.post(f"/p/{product.id}/buy", data={"contact": "1" * (10 * 1024 * 1024)})
    assert huge.status_code == 413 and "提交的内容太长" in huge.text and len(huge.data) < 100_000
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0


def test_notify_refusals_keep_the_raw_request_and_alert(app, client):
    from kamen.models import Notification

    channel = make_channel()
    product = make_card_product(codes=2, sale_price=Decimal("10.00"))
    order = _order_for(client, product)
    url = f"/pay/notify/{channel.id}"
    forged = notify_params(order.order_no, "10.00")
    forged["sign"] = "0" * 32
    cases = [
        forged,
        notify_params(order.order_no, "10.00", pid="9999"),
        notify_params(order.order_no, "9.99"),
        notify_params("NOSUCHORDER123", "10.00"),
        notify_params(order.order_no, "10.00", key="another-key"),
    ]
    for params in cases:
        assert client.get(url, query_string=params).text == "fail"
    assert client.post(f"/pay/notify/{channel.id + 99}", data=notify_params(order.order_no, "10"), csrf=False).text == "fail"
    assert _status(order.id) is OrderStatus.PENDING and _codes(product.id, "sold") == 0
    rejected = db.session.scalars(sa.select(OrderEvent).where(OrderEvent.kind == "notify_rejected")).all()
    assert len(rejected) == 6
    assert {e.data.get("money") for e in rejected} >= {"9.99", "10.00"}
    assert any("金额不符" in e.message for e in rejected) and any("签名错误" in e.message for e in rejected)
    assert any(e.order_id is None for e in rejected)
    alerts = db.session.scalars(sa.select(Notification).where(Notification.kind == "payment_rejected")).all()
    assert len(alerts) == 1  # one alert, not one per forged request

    # Money "10" is "10.00"; the POST form works as well as the GET; duplicates answer success.
    assert client.post(url, data=notify_params(order.order_no, "10"), csrf=False).text == "success"
    assert client.get(url, query_string=notify_params(order.order_no, "10.0")).text == "success"
    assert _status(order.id) is OrderStatus.DELIVERED and _codes(product.id, "sold") == 1
    assert db.session.get(Product, product.id).sales_count == 1
    # A second, different payment of the same order is answered success (it is genuine) and flagged.
    assert client.get(url, query_string=notify_params(order.order_no, "10", trade_no="OTHER1")).text == "success"
    assert _codes(product.id, "sold") == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.kind == "order_paid_twice")) == 1


def test_return_page_before_notify_pays_and_opens_the_order(app, client):
    channel = make_channel()
    product = make_card_product(codes=1)
    order = _order_for(client, product)
    db.session.execute(sa.update(Order).where(Order.id == order.id).values(channel_id=channel.id))
    db.session.commit()
    stranger = app.test_client()
    forged = notify_params(order.order_no, "10.00")
    forged["sign"] = "f" * 32
    resp = stranger.get(f"/pay/return/{order.order_no}", query_string=forged)
    assert "/query" in resp.location and _status(order.id) is OrderStatus.PENDING
    resp = stranger.get(f"/pay/return/{order.order_no}", query_string=notify_params(order.order_no, "10.00"))
    assert f"/order/{order.order_no}?t=" in resp.location
    assert _status(order.id) is OrderStatus.DELIVERED
    assert "CODE-" in stranger.get(resp.location).text
    assert client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, "10")).text == "success"


def test_expiry_releases_exactly_what_was_held(app, client):
    from kamen.models import Coupon, CouponKind
    from kamen.services import ordering

    clock = {"now": utcnow()}
    app.config["ORDER_CLOCK"] = lambda: clock["now"]
    db.session.add(Coupon(code="SAVE1", kind=CouponKind.AMOUNT, value=Decimal("1.00"), max_uses=1))
    db.session.commit()
    cards = make_card_product(codes=3)
    synced = make_product(stock=4)
    card_order = _order_for(client, cards, quantity="2", coupon="save1")
    assert card_order.amount == Decimal("19.00")
    stock_order = _order_for(client, synced, quantity="3", contact="13900139000")
    assert _buy(client, cards, contact="13700137000", coupon="SAVE1").status_code == 400  # used up
    clock["now"] += timedelta(minutes=14, seconds=59)
    assert ordering.expire_due(db.session) == 0
    clock["now"] += timedelta(seconds=2)
    assert ordering.expire_due(db.session) == 2
    assert ordering.expire_due(db.session) == 0  # never twice
    assert _status(card_order.id) is OrderStatus.EXPIRED and _status(stock_order.id) is OrderStatus.EXPIRED
    assert _codes(cards.id, "available") == 3 and db.session.get(Product, cards.id).stock == 3
    assert db.session.get(Product, synced.id).stock == 4
    assert db.session.scalar(sa.select(Coupon.used_count)) == 0
    assert "已自动取消" in client.get(f"/order/{card_order.order_no}").text


def test_paid_after_expiry_delivers_if_it_can_else_unfulfillable(app, client):
    from kamen.models import Notification
    from kamen.services import ordering

    clock = {"now": utcnow()}
    app.config["ORDER_CLOCK"] = lambda: clock["now"]
    channel = make_channel()
    product = make_card_product(codes=1)
    late = _order_for(client, product)
    clock["now"] += timedelta(minutes=16)
    ordering.expire_due(db.session)
    url = f"/pay/notify/{channel.id}"
    assert client.get(url, query_string=notify_params(late.order_no, "10")).text == "success"
    assert _status(late.id) is OrderStatus.DELIVERED

    again = make_card_product(codes=1)
    first = _order_for(client, again, contact="13900139000")
    clock["now"] += timedelta(minutes=16)
    ordering.expire_due(db.session)
    second = _order_for(client, again, contact="13700137000")  # takes the released code
    assert client.get(url, query_string=notify_params(first.order_no, "10")).text == "success"
    assert _status(first.id) is OrderStatus.UNFULFILLABLE
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.kind == "order_unfulfillable")) == 1
    assert client.get(url, query_string=notify_params(second.order_no, "10")).text == "success"
    assert _status(second.id) is OrderStatus.DELIVERED


def test_unpaid_orders_are_limited_per_contact_and_per_ip(app, client):
    app.config["ORDER_UNPAID_LIMIT"] = 2
    product = make_product(stock=100)
    for _ in range(2):
        _order_for(client, product, contact="13900139000")
    resp = _buy(client, product, contact="13900139009")
    assert resp.status_code == 400 and "您已有 2 笔未支付的订单" in resp.text
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    resp = other.post(f"/p/{product.id}/buy", data=buy_form(contact="13900139000"))
    assert resp.status_code == 400 and "该联系方式已有 2 笔" in resp.text
    assert other.post(f"/p/{product.id}/buy", data=buy_form(contact="13500135000")).status_code == 302
    assert db.session.get(Product, product.id).stock == 97


def test_lookup_needs_the_right_contact_or_password_and_is_throttled(app, client):
    app.config["LOOKUP_MAX_FAILURES"] = 3
    channel = make_channel()
    product = make_card_product(codes=2)
    plain = _order_for(client, product)
    locked = _order_for(client, product, contact="13900139000", lookup_password="s3cret")
    for order in (plain, locked):
        client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, "10"))

    buyer = app.test_client()
    assert "CODE-" not in buyer.get(f"/order/{plain.order_no}").text  # another browser sees nothing
    wrong = buyer.post("/query", data={"order_no": plain.order_no, "secret": "13900000000"})
    missing = buyer.post("/query", data={"order_no": "261201000000ZZZZZZZZZZ", "secret": "13800138000"})
    assert wrong.status_code == missing.status_code == 400
    assert "没有找到匹配的订单" in wrong.text and "没有找到匹配的订单" in missing.text
    assert plain.order_no not in wrong.text.replace(f'value="{plain.order_no}"', "")
    # A contact is not enough once a 查单密码 was set.
    assert buyer.post("/query", data={"order_no": locked.order_no, "secret": "13900139000"}).status_code == 400
    throttled = buyer.post("/query", data={"order_no": plain.order_no, "secret": "13800138000"})
    assert throttled.status_code == 400 and "查询次数过多" in throttled.text

    friend = app.test_client()
    friend.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    ok = friend.post("/query", data={"order_no": locked.order_no.lower(), "secret": "s3cret"})
    assert ok.status_code == 302
    assert "CODE-" in friend.get(ok.location).text


def test_signed_link_opens_the_order_and_a_forged_one_does_not(app, client):
    from kamen.services import order_lookup

    product = make_card_product(codes=1)
    order = _order_for(client, product)
    stranger = app.test_client()
    good = stranger.get(f"/order/{order.order_no}", query_string={"t": order_lookup.link_token(order.order_no)})
    assert good.status_code == 200 and order.order_no in good.text
    other = app.test_client()
    bad = other.get(f"/order/{order.order_no}", query_string={"t": order_lookup.link_token("SOMEOTHER")})
    assert bad.status_code == 404 and "没有找到匹配的订单" in bad.text


def test_lost_notify_is_found_by_query(app, client, epay_peer):
    from kamen.services import payments

    channel = make_channel(base_url=epay_peer.url)
    product = make_card_product(codes=1)
    order = _order_for(client, product)
    resp = client.post(f"/order/{order.order_no}/pay", data={"method": f"{channel.id}:alipay"})
    assert resp.status_code == 302 and resp.location.startswith(epay_peer.url + "/submit.php?")
    assert client.get(resp.location.replace(epay_peer.url, "")).status_code == 404  # the jump leaves the shop
    import requests

    assert requests.get(resp.location, timeout=5).text == "ok"  # signed as the gateway checks it
    jump = epay_peer.jumps[-1]
    assert jump["money"] == "10.00" and jump["notify_url"].endswith(f"/pay/notify/{channel.id}") and KEY not in resp.location
    assert payments.query_payment(db.session, order.id) == "网关显示该订单未支付"
    epay_peer.paid[order.order_no] = "9.99"
    assert "金额与订单不符" in payments.query_payment(db.session, order.id)
    epay_peer.paid[order.order_no] = "10"
    from kamen.services.ordering import now

    db.session.execute(sa.update(Order).values(next_query_at=now()))
    db.session.commit()
    assert payments.query_due(db.session) == 1
    assert _status(order.id) is OrderStatus.DELIVERED
    events = db.session.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.kind == "paid"))
    assert all(KEY not in str(e.data) for e in events)


def test_card_codes_page_shows_codes_held_by_unpaid_orders(app, client, auth):
    product = make_card_product(codes=3)
    _order_for(client, product, quantity="2")
    auth.login()
    page = client.get(f"/admin/products/{product.id}/card-codes")
    assert page.status_code == 200
    assert "待支付占用 <strong>2</strong>" in page.text and "未售 <strong>1</strong>" in page.text
    assert "不一致" not in page.text  # stock 1 is exactly the one code still for sale


@pytest.mark.backends("postgresql")  # RQ workers run beside PostgreSQL in production
def test_the_minute_tick_expires_orders_and_finds_lost_payments_on_a_real_worker(app, client, redis_url, db_url, epay_peer):
    import uuid

    from kamen import queue
    from tests.helpers import burst_worker

    channel = make_channel(base_url=epay_peer.url)
    product = make_card_product(codes=2)
    overdue = _order_for(client, product)
    lost = _order_for(client, product, contact="13900139000")
    past = utcnow() - timedelta(minutes=1)
    db.session.execute(sa.update(Order).where(Order.id == overdue.id).values(expires_at=past))
    db.session.execute(sa.update(Order).where(Order.id == lost.id).values(
        channel_id=channel.id, pay_started_at=past, next_query_at=past))
    db.session.commit()
    epay_peer.paid[lost.order_no] = "10.00"
    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    assert queue.enqueue("jobs.tick.every_minute").backend == "rq"  # the schedule's minute tick
    assert _status(overdue.id) is OrderStatus.PENDING  # nothing ran in-process
    result = burst_worker(app, db_url, redis_url, queue_name)
    assert result.returncode == 0, result.stderr
    assert _status(overdue.id) is OrderStatus.EXPIRED and _status(lost.id) is OrderStatus.DELIVERED
    assert _codes(product.id, "available") == 1 and _codes(product.id, "sold") == 1


def test_qrcode_channel_shows_the_gateways_code_on_the_shop_page(app, client, epay_peer):
    channel = make_channel(base_url=epay_peer.url, mode="qrcode")
    order = _order_for(client, make_card_product(codes=1))
    page = client.post(f"/order/{order.order_no}/pay", data={"method": f"{channel.id}:wxpay"},
                       headers={"User-Agent": "Mozilla/5.0 (iPhone) Mobile"})
    assert page.status_code == 200 and "<svg" in page.text and "请用微信支付扫描二维码付款" in page.text
    assert 'hx-trigger="every 2s"' in page.text  # waits for the notify
    sent = epay_peer.jumps[-1]
    assert sent["device"] == "mobile" and sent["clientip"] == "127.0.0.1" and sent["type"] == "wxpay"
    refused = client.post(f"/order/{order.order_no}/pay", data={"method": f"{channel.id}:qqpay"})
    assert refused.status_code == 400 and "请选择支付方式" in refused.text
