"""The strict CSP in a real browser: htmx pages work, nothing is blocked, hostile names stay text."""
import pytest
from playwright.sync_api import expect

from kamen.extensions import db
from kamen.models import Category
from tests.browser import admin_login
from tests.helpers import ADMIN_USER, make_category, make_product
from tests.test_security import HOSTILE

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def csp_violations(page):
    """Every CSP violation and script error the page reports."""
    seen = []
    page.on("console", lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def test_hostile_category_name_is_only_text_in_the_delete_confirm(auth, live_server, page, csp_violations):
    auth.create()
    category = make_category(HOSTILE)
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/categories")
    dialogs = []

    def answer(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("row", name=HOSTILE).get_by_role("button", name="删除").click()
    expect(page.get_by_role("heading", name="分类", exact=True)).to_be_visible()
    assert dialogs == [("confirm", f"确定删除分类“{HOSTILE}”？")]  # no alert() ran
    db.session.expire_all()
    assert db.session.get(Category, category.id) is not None  # cancelled: nothing deleted

    page.remove_listener("dialog", answer)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row", name=HOSTILE).get_by_role("button", name="删除").click()
    expect(page.get_by_role("row", name=HOSTILE)).to_have_count(0)
    assert csp_violations == []


def test_htmx_pages_work_under_the_policy(auth, live_server, page, csp_violations):
    auth.create()
    products = [make_product(name=f"测试商品 {n}") for n in range(3)]
    admin_login(page, live_server)
    for path in ("/admin/", "/admin/products", "/admin/categories", "/admin/imports/new", "/admin/suppliers",
                 "/admin/settings/alerts"):
        page.goto(f"{live_server}{path}")
        expect(page.locator("main")).to_be_visible()
    # No <style> injected by htmx, yet its indicator rules are in the stylesheet.
    page.goto(f"{live_server}/admin/products")
    assert page.locator("head style").count() == 0
    # Select all (static JS, data-check-all), then an htmx inline edit.
    page.get_by_role("checkbox", name="全选").check()
    for product in products:
        expect(page.locator(f"input[name=ids][value='{product.id}']")).to_be_checked()
    cell = page.locator(f"#cell-{products[0].id}-sale_price")
    cell.get_by_role("button", name="修改售价").click()
    cell.get_by_label("售价", exact=True).fill("11.50")
    cell.get_by_role("button", name="保存").click()
    expect(page.locator(f"#cell-{products[0].id}-sale_price")).to_contain_text("¥11.50")
    assert csp_violations == []


def test_card_code_paste_select_all_and_delete_use_the_static_script(auth, live_server, page, csp_violations):
    from sqlalchemy import func, select

    from kamen.models import CardCode, StockMode

    auth.create()
    product = make_product(name="京东E卡 100元", stock_mode=StockMode.CARDS, stock=0)
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/products/{product.id}/card-codes")
    paste = page.get_by_label("或直接粘贴")
    paste.fill("AAAA-1111\nBBBB-2222\nCCCC-3333")
    page.get_by_role("button", name="粘贴入库").click()
    expect(page.get_by_role("checkbox", name="选择卡密", exact=False)).to_have_count(3)
    expect(paste).to_have_value("")  # data-reset-on-success emptied the form once the codes were in

    page.get_by_role("checkbox", name="全选未售").check()
    expect(page.get_by_role("checkbox", name="选择卡密", exact=False).nth(2)).to_be_checked()
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm
    page.get_by_role("button", name="删除选中的未售卡密").click()
    expect(page.get_by_role("checkbox", name="选择卡密", exact=False)).to_have_count(0)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CardCode)) == 0
    assert csp_violations == []


def test_error_type_filter_applies_when_chosen(auth, client, live_server, page, csp_violations):
    from urllib.parse import quote

    from kamen.services.suppliers import default_supplier
    from tests.test_security import upload_for_preview

    auth.login()
    rows = [["A1", "坏价格", "abc", "10", "5", "", ""], ["A1", "重复编码", "9.60", "10", "5", "", ""],
            ["A2", "好商品", "9.60", "10", "5", "", ""]]
    batch = upload_for_preview(client, default_supplier(db.session), rows)
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/imports/{batch.id}?show=error")
    kinds = page.get_by_label("错误类型")
    first_kind = kinds.locator("option").nth(1).get_attribute("value")
    kinds.select_option(first_kind)  # no button: data-autosubmit submits the filter
    expect(page).to_have_url(f"{live_server}/admin/imports/{batch.id}?show=error&kind={quote(first_kind)}")
    expect(page.get_by_label("错误类型")).to_have_value(first_kind)
    assert csp_violations == []


def test_a_failed_htmx_request_shows_the_error_banner(auth, live_server, page, csp_violations):
    from kamen.models import Product

    auth.create()
    product = make_product(name="很快被删除的商品")
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/products")
    cell = page.locator(f"#cell-{product.id}-sale_price")
    cell.get_by_role("button", name="修改售价").click()
    expect(cell.get_by_label("售价", exact=True)).to_be_visible()
    db.session.delete(db.session.get(Product, product.id))  # gone while the admin was typing
    db.session.commit()
    cell.get_by_label("售价", exact=True).fill("12.00")
    cell.get_by_role("button", name="保存").click()
    expect(page.locator("#htmx-error")).to_be_visible()
    expect(page.locator("#htmx-error")).to_have_text("操作失败，请刷新页面后重试。")
    assert [v for v in csp_violations if "Content Security Policy" in v] == []


def test_logged_out_elsewhere_an_htmx_click_goes_to_the_login_and_back(auth, runner, live_server, page):
    """The password was reset on another device: the next htmx click must not swap the login form into a cell."""
    auth.create()
    make_product(name="测试商品")
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/products?q=测试")
    new_password = "changed-on-phone-9"
    assert runner.invoke(args=["create-admin", ADMIN_USER, "--password", new_password]).exit_code == 0
    page.get_by_role("button", name="修改售价").first.click()
    expect(page.get_by_role("heading", name="后台登录")).to_be_visible()
    page.get_by_label("用户名").fill(ADMIN_USER)
    page.get_by_label("密码", exact=True).fill(new_password)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{live_server}/admin/products?q=%E6%B5%8B%E8%AF%95")


def test_demo_gateway_pay_page_passes_the_policy(demo_gateway, notify_receiver, page, csp_violations):
    from tests.test_demopay import signed_request, submit_url

    return_url = f"{notify_receiver.url}/pay/return/1"
    page.goto(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver, return_url=return_url)))
    expect(page.get_by_role("button", name="确认支付")).to_be_visible()
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(return_url + "?*")
    assert csp_violations == []
