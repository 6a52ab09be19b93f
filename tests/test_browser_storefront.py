"""The home page on a phone (390 px) as a new customer sees it: 公告, logo, 客服,
pictures and placeholders, two goods per row, nothing wider than the screen,
and no picture or style blocked by the shop's strict CSP."""
import io

from playwright.sync_api import expect

from kamen.extensions import db
from kamen.services import storefront
from tests.helpers import make_category, make_product
from tests.test_storefront import picture


def test_phone_home_page_reads_like_a_shop(app, live_server, phone):
    storefront.save(db.session, {"name": "小明卡铺", "notice": "国庆期间 24 小时自动发货", "qq": "123456789",
                                 "wechat": "kefu_01", "email": "kefu@example.com", "footer": "本店只售正规渠道卡密"},
                    logo=io.BytesIO(picture((600, 200), "PNG")))
    games, phone_bills = make_category("游戏点卡"), make_category("话费充值")
    qb = make_product(games, name="腾讯Q币 10元", featured_rank=1, sales_count=5)
    storefront.set_product_image(db.session, qb, io.BytesIO(picture((1000, 1000))), "qb.jpg")
    make_product(games, name="王者荣耀 60点券", featured_rank=2)
    for n in range(4):
        make_product(phone_bills, name=f"移动话费 {(n + 1) * 50}元", sales_count=10 - n)
    blocked = []
    phone.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)

    phone.goto(live_server + "/")
    expect(phone.get_by_role("note")).to_contain_text("国庆期间 24 小时自动发货")
    expect(phone.get_by_role("heading", name="站长推荐")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert phone.locator(".logo img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert phone.locator(f"img[src='/img/{qb.image_id}']").evaluate("img => img.complete && img.naturalWidth > 0")
    placeholder = phone.locator(".card .ph").first
    expect(placeholder).to_be_visible()
    assert placeholder.evaluate("el => getComputedStyle(el).backgroundImage").startswith("linear-gradient")
    cards = phone.locator(".grid").last.locator(".card").all()
    boxes = [c.bounding_box() for c in cards[:2]]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["width"] < 195  # two goods per row
    footer = phone.locator("footer")
    footer.scroll_into_view_if_needed()
    expect(footer).to_contain_text("QQ 123456789")
    expect(footer).to_contain_text("本店只售正规渠道卡密")
    assert blocked == []

    phone.get_by_role("link", name="腾讯Q币 10元").first.click()
    crumbs = phone.get_by_role("navigation", name="位置")
    expect(crumbs).to_contain_text("首页 › 游戏点卡 › 腾讯Q币 10元")
    assert phone.locator(".product-head img").evaluate("img => img.complete && img.naturalWidth > 0")
    expect(phone.locator(".help")).to_contain_text("微信 kefu_01")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert blocked == []

    phone.get_by_label("搜索商品").fill("qb")
    phone.get_by_role("button", name="搜索").click()
    expect(phone.get_by_role("heading", name="“qb” 的搜索结果（1）")).to_be_visible()
    expect(phone.get_by_text("腾讯Q币 10元")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
