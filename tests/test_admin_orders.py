"""Back office: orders list and totals, order page actions, payment channels, coupons, dashboard."""
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Coupon, Order, OrderStatus, PaymentChannel, Product
from kamen.secretbox import decrypt
from tests.helpers import make_product
from tests.order_helpers import KEY, PID, buy_form, epay_peer, make_card_product, make_channel, notify_params  # noqa: F401


def _order(client, product, **form):
    assert client.post(f"/p/{product.id}/buy", data=buy_form(**form)).status_code == 302
    return db.session.scalars(sa.select(Order).order_by(Order.id.desc())).first()


def test_orders_list_filters_and_period_totals(app, client, auth):
    channel = make_channel()
    cards = make_card_product(codes=3, name="网易一卡通 50元", sale_price=Decimal("48.80"), cost_price=Decimal("47.50"))
    synced = make_product(name="腾讯视频VIP 月卡", stock=5, sale_price=Decimal("20.50"), cost_price=Decimal("18.00"))
    paid = _order(client, cards)
    _order(client, synced, contact="13900139000")
    client.get(f"/pay/notify/{channel.id}", query_string=notify_params(paid.order_no, "48.80"))
    auth.login()
    page = client.get("/admin/orders")
    assert page.status_code == 200 and paid.order_no in page.text and "腾讯视频VIP 月卡" in page.text
    assert "¥48.80" in page.text and "¥1.30" in page.text  # revenue and margin of the one paid order
    only = client.get("/admin/orders", query_string={"status": "pending"})
    assert paid.order_no not in only.text and "腾讯视频VIP 月卡" in only.text
    by_contact = client.get("/admin/orders", query_string={"contact": "13900139000"})
    assert paid.order_no not in by_contact.text
    assert paid.order_no in client.get("/admin/orders", query_string={"product": "网易"}).text
    assert "没有符合条件的订单" in client.get("/admin/orders", query_string={"from": "2001-01-01", "to": "2001-01-02"}).text
    dashboard = client.get("/admin/")
    assert "今日收入" in dashboard.text and "¥48.80" in dashboard.text


def test_manual_delivery_refund_and_cancel(app, client, auth):
    channel = make_channel()
    topup = make_product(stock=5, buyer_fields=[{"key": "account", "label": "QQ号", "pattern": r"[1-9]\d{4,11}", "hint": ""}])
    order = _order(client, topup, f_account="10001")
    client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, "10"))
    assert db.session.get(Order, order.id).status is OrderStatus.PAID
    buyer_page = client.get(f"/order/{order.order_no}").text
    assert "正在为您发货" in buyer_page
    auth.login()
    detail = client.get(f"/admin/orders/{order.id}")
    assert "手动发货" in detail.text and "支付通知：已支付 ¥10.00" in detail.text
    assert "发货内容" in client.post(f"/admin/orders/{order.id}/deliver", data={"content": ""}, follow_redirects=True).text
    client.post(f"/admin/orders/{order.id}/deliver", data={"content": "已充值到 QQ 10001，流水 A1"})
    db.session.expire_all()
    assert db.session.get(Order, order.id).status is OrderStatus.DELIVERED
    assert "已充值到 QQ 10001" in client.get(f"/order/{order.order_no}").text
    again = client.post(f"/admin/orders/{order.id}/deliver", data={"content": "x"}, follow_redirects=True)
    assert "只有已支付、未发货的订单可以手动发货" in again.text

    refused = client.post(f"/admin/orders/{order.id}/refund", data={"reason": ""}, follow_redirects=True)
    assert "请填写退款原因" in refused.text
    client.post(f"/admin/orders/{order.id}/refund", data={"reason": "买家充错号码"})
    db.session.expire_all()
    refunded = db.session.get(Order, order.id)
    assert refunded.status is OrderStatus.REFUNDED and refunded.refund_reason == "买家充错号码"
    assert "已退款：买家充错号码" in client.get(f"/admin/orders/{order.id}").text

    pending = _order(client, topup, contact="13700137000", f_account="10002")
    assert db.session.get(Product, topup.id).stock == 3
    client.post(f"/admin/orders/{pending.id}/cancel")
    db.session.expire_all()
    assert db.session.get(Order, pending.id).status is OrderStatus.CANCELLED
    assert db.session.get(Product, topup.id).stock == 4


def test_payment_channel_crud_keeps_the_key_encrypted_and_masked(app, client, auth, epay_peer):
    auth.login()
    bad = client.post("/admin/payment-channels", data={"name": "通道", "base_url": "pay.example.com", "pid": PID,
                                                        "key": KEY, "pay_types": ["alipay"]})
    assert bad.status_code == 400 and "http://" in bad.text
    none = client.post("/admin/payment-channels", data={"name": "通道", "base_url": epay_peer.url, "pid": PID, "key": KEY})
    assert none.status_code == 400 and "至少勾选一种支付方式" in none.text
    client.post("/admin/payment-channels", data={"name": "主通道", "base_url": epay_peer.url + "/", "pid": PID,
                                                 "key": KEY, "pay_types": ["alipay", "qqpay"], "is_enabled": "1"})
    channel = db.session.scalar(sa.select(PaymentChannel))
    assert channel.base_url == epay_peer.url and channel.pay_types == ["alipay", "qqpay"] and channel.mode == "jump"
    assert KEY not in channel.key_encrypted and decrypt(channel.key_encrypted) == KEY
    edit = client.get(f"/admin/payment-channels/{channel.id}")
    assert KEY not in edit.text and "已设置" in edit.text
    client.post(f"/admin/payment-channels/{channel.id}", data={"name": "主通道", "base_url": epay_peer.url, "pid": PID,
                                                              "key": "", "pay_types": ["wxpay"], "is_enabled": "1"})
    db.session.expire_all()
    assert decrypt(db.session.get(PaymentChannel, channel.id).key_encrypted) == KEY  # blank keeps the key
    ok = client.post(f"/admin/payment-channels/{channel.id}/test", follow_redirects=True)
    assert "网关连接正常" in ok.text
    client.post(f"/admin/payment-channels/{channel.id}", data={"name": "主通道", "base_url": epay_peer.url, "pid": PID,
                                                              "key": "wrong-key", "pay_types": ["wxpay"], "is_enabled": "1"})
    wrong = client.post(f"/admin/payment-channels/{channel.id}/test", follow_redirects=True)
    assert "商户密钥错误" in wrong.text


def test_coupon_crud_and_use(app, client, auth):
    auth.login()
    assert "券码须为" in client.post("/admin/coupons", data={"code": "a", "kind": "amount", "value": "5"}).text
    assert "可用次数必须是" in client.post("/admin/coupons", data={"code": "SUP", "kind": "amount", "value": "1",
                                                                "max_uses": "²"}).text
    assert "须小于 100" in client.post("/admin/coupons", data={"code": "HALF", "kind": "percent", "value": "100"}).text
    client.post("/admin/coupons", data={"code": "ten", "kind": "percent", "value": "10", "min_amount": "20",
                                        "max_uses": "1", "is_enabled": "1"})
    coupon = db.session.scalar(sa.select(Coupon))
    assert coupon.code == "TEN" and coupon.max_uses == 1
    assert "没有编号为 999 的商品" in client.post("/admin/coupons", data={"code": "P01", "kind": "amount", "value": "1",
                                                                    "product_id": "999"}).text
    assert "券码 TEN 已存在" in client.post("/admin/coupons", data={"code": "TEN", "kind": "amount", "value": "1"}).text
    product = make_product(stock=10, sale_price=Decimal("12.00"))
    too_small = client.post(f"/p/{product.id}/buy", data=buy_form(coupon="TEN"))
    assert too_small.status_code == 400 and "订单满 ¥20.00 才能使用该优惠券" in too_small.text
    order = _order(client, product, quantity="2", coupon="TEN")
    assert order.amount == Decimal("21.60") and order.discount == Decimal("2.40")
    assert "已被领完" in client.post(f"/p/{product.id}/buy", data=buy_form(quantity="2", coupon="TEN",
                                                                       contact="13900139000")).text
    client.post(f"/admin/coupons/{coupon.id}", data={"code": "TEN", "kind": "percent", "value": "10",
                                                      "max_uses": "1", "valid_to": "2001-01-01 00:00", "is_enabled": "1"})
    db.session.expire_all()
    assert db.session.get(Coupon, coupon.id).valid_to.year == 2000  # shop time (UTC+8) stored as UTC
    assert "该优惠券已过期" in client.post(f"/p/{product.id}/buy", data=buy_form(coupon="TEN", quantity="2",
                                                                            contact="13700137000")).text


def test_demo_channel_command_points_at_the_demo_gateway(app, runner):
    app.config.update(DEMO_GATEWAY=False)
    assert runner.invoke(args=["create-demo-channel"]).exit_code != 0
    app.config.update(DEMO_GATEWAY=True, DEMO_GATEWAY_PID="1001", DEMO_GATEWAY_KEY="k1", DEMO_GATEWAY_URL="")
    assert "KAMEN_DEMO_GATEWAY_URL" in runner.invoke(args=["create-demo-channel"]).output
    result = runner.invoke(args=["create-demo-channel", "--base-url", "http://127.0.0.1:5001/demopay/"])
    assert result.exit_code == 0 and "已创建" in result.output
    app.config.update(DEMO_GATEWAY_KEY="k2", DEMO_GATEWAY_URL="http://127.0.0.1:5001/demopay/")
    assert "已更新" in runner.invoke(args=["create-demo-channel"]).output
    channels = db.session.scalars(sa.select(PaymentChannel)).all()
    assert len(channels) == 1 and channels[0].base_url == "http://127.0.0.1:5001/demopay"
    assert decrypt(channels[0].key_encrypted) == "k2" and channels[0].pid == "1001"


def test_unused_payment_channel_and_coupon_can_be_deleted_used_ones_only_switched_off(app, client, auth):
    auth.login()
    used_channel, spare_channel = make_channel(), make_channel()
    spare_channel.name = "备用通道"
    used_coupon = Coupon(code="USED1", value=Decimal("1"), is_enabled=True)
    spare_coupon = Coupon(code="SPARE1", value=Decimal("1"), is_enabled=True)
    db.session.add_all([used_coupon, spare_coupon])
    db.session.commit()
    product = make_product(stock=10, sale_price=Decimal("12.00"))
    order = _order(client, product, coupon="USED1")
    assert client.post(f"/order/{order.order_no}/pay", data={"method": f"{used_channel.id}:alipay"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, order.id).channel_id == used_channel.id
    ids = used_channel.id, spare_channel.id, used_coupon.id, spare_coupon.id

    refused = client.post(f"/admin/payment-channels/{ids[0]}/delete", follow_redirects=True)
    assert "已有订单使用过，不能删除" in refused.text and "取消“启用”" in refused.text
    done = client.post(f"/admin/payment-channels/{ids[1]}/delete", follow_redirects=True)
    assert "支付通道“备用通道”已删除" in done.text
    refused = client.post(f"/admin/coupons/{ids[2]}/delete", follow_redirects=True)
    assert "优惠券 USED1 已有订单使用过，不能删除" in refused.text
    assert "优惠券 SPARE1 已删除" in client.post(f"/admin/coupons/{ids[3]}/delete", follow_redirects=True).text
    assert client.post("/admin/coupons/999999/delete").status_code == 404

    db.session.expire_all()
    assert db.session.scalars(sa.select(PaymentChannel.id)).all() == [ids[0]]
    assert db.session.scalars(sa.select(Coupon.id)).all() == [ids[2]]
    assert db.session.get(Order, order.id).coupon_id == ids[2]
