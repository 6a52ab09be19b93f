"""A buyer on a phone (390 px) opens a 售后 ticket with a screenshot and follows it."""
from playwright.sync_api import expect

from kamen.services import order_lookup
from tests.order_helpers import make_card_product
from tests.ticket_helpers import image_bytes, last_ticket, paid_order


def _fits(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_buyer_opens_a_ticket_with_a_screenshot(app, client, live_server, phone, tmp_path):
    order = paid_order(client, make_card_product(codes=2, name="网易一卡通 50元"))
    shot = tmp_path / "截图.png"
    shot.write_bytes(image_bytes("PNG", (390, 844)))
    not_image = tmp_path / "说明.png"
    not_image.write_bytes(b"this is text, not a picture")

    phone.goto(f"{live_server}/order/{order.order_no}?t={order_lookup.link_token(order.order_no)}")
    phone.get_by_role("link", name="遇到问题？申请售后").click()
    expect(phone.get_by_role("heading", name="申请售后")).to_be_visible()
    assert _fits(phone)

    # 充错账号 explains what the shop can and cannot do before anything is sent.
    guide = phone.get_by_text("虚拟商品一经充值无法撤回")
    expect(guide).to_be_hidden()
    phone.get_by_label("充错账号").check()
    expect(guide).to_be_visible()
    phone.get_by_label("卡密无效").check()
    expect(guide).to_be_hidden()

    phone.get_by_label("问题描述").fill("兑换时提示卡密已被使用")
    phone.locator("input[type=file]").set_input_files(str(not_image))
    phone.get_by_role("button", name="提交售后").click()
    expect(phone.get_by_role("alert")).to_contain_text("不是有效的图片")
    assert _fits(phone)
    expect(phone.get_by_label("问题描述")).to_have_value("兑换时提示卡密已被使用")  # nothing typed is lost

    phone.locator("input[type=file]").set_input_files(str(shot))
    phone.get_by_role("button", name="提交售后").click()
    expect(phone.get_by_role("heading", name="售后工单")).to_be_visible()
    expect(phone.get_by_text("待处理")).to_be_visible()
    image = phone.get_by_role("img", name="截图 1")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 390  # the stored picture itself came back
    assert _fits(phone)
    assert last_ticket().ticket_no in phone.content()
