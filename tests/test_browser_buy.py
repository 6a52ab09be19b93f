"""A customer on a phone (390 px): buy a card code through the 易支付 demo gateway, see it, find it with 查单."""
from playwright.sync_api import expect

from kamen.extensions import db
from kamen.models import PaymentChannel
from kamen.secretbox import encrypt
from tests.browser import PHONE
from tests.order_helpers import make_card_product


def _fits(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_buyer_pays_on_the_demo_gateway_sees_codes_and_finds_the_order(
        app, live_server, demo_gateway, phone, chromium):
    product = make_card_product(codes=2, name="网易一卡通 50元")
    db.session.add(PaymentChannel(name="演示支付", base_url=demo_gateway.base_url, pid=demo_gateway.pid,
                                  key_encrypted=encrypt(demo_gateway.key), pay_types=["alipay", "wxpay"]))
    db.session.commit()

    phone.goto(f"{live_server}/p/{product.id}")
    assert _fits(phone)
    phone.get_by_label("联系方式").fill("13800138000")
    phone.get_by_role("button", name="立即购买").click()
    expect(phone.get_by_text("待支付")).to_be_visible()
    assert _fits(phone)
    order_no = phone.locator("code").first.inner_text()
    phone.get_by_role("button", name="支付宝").click()
    expect(phone.get_by_text("演示支付，不会真实扣款")).to_be_visible()
    phone.get_by_role("button", name="确认支付").click()
    expect(phone.get_by_role("heading", name="您的卡密")).to_be_visible()
    code = phone.locator(".codes code").first.inner_text()
    assert code.startswith(f"CODE-{product.id}-")
    assert _fits(phone)

    stranger = chromium.new_context(locale="zh-CN", **PHONE).new_page()
    stranger.goto(f"{live_server}/order/{order_no}")
    expect(stranger.get_by_text("没有找到匹配的订单")).to_be_visible()
    stranger.get_by_label("订单号").fill(order_no)
    stranger.get_by_label("联系方式或查单密码").fill("13900000000")
    stranger.get_by_role("button", name="查询").click()
    expect(stranger.get_by_text("没有找到匹配的订单")).to_be_visible()
    assert code not in stranger.content()
    stranger.get_by_label("联系方式或查单密码").fill("13800138000")
    stranger.get_by_role("button", name="查询").click()
    expect(stranger.get_by_role("heading", name="您的卡密")).to_be_visible()
    assert code in stranger.content() and _fits(stranger)
    stranger.context.close()
