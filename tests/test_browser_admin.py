"""Key admin flow in a real browser: log in, edit a price inline, see it in the shop."""
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from kamen.extensions import db
from kamen.models import Product
from tests.browser import admin_login
from tests.helpers import make_category, make_product

pytestmark = pytest.mark.backends("sqlite")


def _price_cell(page, product):
    return page.locator(f"#cell-{product.id}-sale_price")


def test_admin_edits_price_inline_and_shop_shows_it(auth, live_server, page):
    auth.create()
    product = make_product(make_category("视频会员"), name="爱奇艺黄金会员 月卡",
                           cost_price=Decimal("17.50"), sale_price=Decimal("19.90"))
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/products")
    cell = _price_cell(page, product)
    cell.get_by_role("button", name="修改售价").click()
    cell.get_by_label("售价", exact=True).fill("21.50")
    cell.get_by_role("button", name="保存").click()
    expect(_price_cell(page, product)).to_contain_text("¥21.50")
    expect(_price_cell(page, product).get_by_label("售价", exact=True)).to_have_count(0)

    db.session.expire_all()
    assert db.session.get(Product, product.id).sale_price == Decimal("21.50")
    page.goto(f"{live_server}/p/{product.id}")
    expect(page.locator(".facts")).to_contain_text("¥21.50")


def test_bad_inline_edit_shows_error_and_changes_nothing(auth, live_server, page):
    auth.create()
    product = make_product(name="腾讯视频VIP 月卡", cost_price=Decimal("18.00"), sale_price=Decimal("20.50"))
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/products")
    cell = _price_cell(page, product)
    cell.get_by_role("button", name="修改售价").click()
    cell.get_by_label("售价", exact=True).fill("12.345")
    cell.get_by_role("button", name="保存").click()
    expect(_price_cell(page, product).get_by_role("alert")).to_have_text("售价最多两位小数")
    expect(_price_cell(page, product).get_by_label("售价", exact=True)).to_have_value("12.345")

    # Below cost is refused too, and a cancel brings the saved value back.
    _price_cell(page, product).get_by_label("售价", exact=True).fill("15")
    _price_cell(page, product).get_by_role("button", name="保存").click()
    expect(_price_cell(page, product).get_by_role("alert")).to_contain_text("低于供货价")
    _price_cell(page, product).get_by_role("button", name="取消").click()
    expect(_price_cell(page, product)).to_contain_text("¥20.50")

    db.session.expire_all()
    assert db.session.get(Product, product.id).sale_price == Decimal("20.50")
    page.goto(f"{live_server}/p/{product.id}")
    expect(page.locator(".facts")).to_contain_text("¥20.50")
