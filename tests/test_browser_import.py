"""批量导入 in a real browser: upload a messy file, fix a cell inline, commit, see the goods in the shop."""
import pytest
from playwright.sync_api import expect

from tests.browser import admin_login
from tests.import_files import messy_xlsx

pytestmark = pytest.mark.backends("sqlite")


def upload_messy_file(page, base, tmp_path):
    """Log in, upload the messy price list, land on the column mapping."""
    path = tmp_path / "XX货源价格表.xlsx"
    path.write_bytes(messy_xlsx())
    admin_login(page, base)
    page.goto(f"{base}/admin/imports/new")
    page.get_by_label("文件").set_input_files(str(path))
    page.get_by_role("button", name="上传并识别").click()
    expect(page.get_by_role("heading", name="列对应", exact=True)).to_be_visible()


def test_messy_file_fixed_inline_then_committed(auth, live_server, page, tmp_path):
    auth.create()
    upload_messy_file(page, live_server, tmp_path)

    # Mapping: the supplier's own headers were recognised.
    expect(page.get_by_label("进价 对应的字段")).to_have_value("cost_price")
    # The supplier's 5% markup would sell Q币 above 面值: cap it there.
    page.get_by_label("定价方式", exact=True).select_option("cap_face")
    page.get_by_role("button", name="确认并校验").click()

    # Preview: errors first; fix the bad price of 移动话费 in place.
    expect(page.locator(".counts")).to_contain_text("错误 3")
    page.get_by_role("button", name="修改第 6 行供货价").click()
    page.get_by_label("供货价", exact=True).fill("48.50")
    page.get_by_role("button", name="保存").click()
    row = page.locator("tr", has_text="YD50")
    expect(row.locator(".badge")).to_have_text("新增")
    expect(page.locator(".counts")).to_contain_text("错误 2")
    expect(page.locator(".counts")).to_contain_text("新增 3")

    page.get_by_role("button", name="立即提交").click()
    expect(page.get_by_role("heading", name="导入报告")).to_be_visible()

    expect(page.locator(".written")).to_contain_text("50.00")  # the sale price each row got

    page.goto(f"{live_server}/search?q=移动话费")
    expect(page.locator(".grid")).to_contain_text("移动话费 50元")


def test_background_jobs_show_progress_then_the_next_step(app, auth, live_server, page, tmp_path):
    """As scripts/run serves it: jobs on the in-process pool, the page polls until they finish."""
    app.config["JOBS_SYNC"] = False
    auth.create()
    upload_messy_file(page, live_server, tmp_path)
    page.get_by_label("定价方式", exact=True).select_option("cap_face")
    page.get_by_role("button", name="确认并校验").click()
    expect(page.locator(".counts")).to_contain_text("错误 3")
    page.get_by_role("button", name="立即提交").click()
    expect(page.get_by_role("heading", name="导入报告")).to_be_visible()
    expect(page.locator(".stats")).to_contain_text("2新增")


def test_delivery_changed_in_bulk_and_warnings_accepted_in_place(auth, live_server, page, tmp_path):
    auth.create()
    upload_messy_file(page, live_server, tmp_path)
    page.get_by_role("button", name="确认并校验").click()
    # The supplier's 5% markup puts two Q币 above their 面值: warned, and accepted by kind.
    expect(page.locator(".warning-kinds")).to_contain_text("售价高于面值 2 行")
    qb30 = page.locator("tr", has_text="QB30")
    expect(qb30.locator(".delivery")).to_contain_text("填写：QQ号")  # Q币: charged to a QQ number
    qb30.get_by_role("checkbox").check()
    page.get_by_label("发货方式").select_option("card")
    page.get_by_label("买家需填写").select_option("")
    page.locator(".bulk-delivery").get_by_role("button", name="应用").click()
    expect(page.locator("tr", has_text="QB30").locator(".delivery")).to_contain_text("自动发卡密")
    expect(page.locator("tr", has_text="腾讯Q币 10元").locator(".delivery")).to_contain_text("QQ号")
    page.locator(".warning-kinds").get_by_role("button", name="确认这些警告").click()
    expect(page.locator(".warning-kinds")).to_have_count(0)
    page.get_by_role("button", name="立即提交").click()
    expect(page.get_by_role("heading", name="导入报告")).to_be_visible()
    expect(page.locator(".written")).to_contain_text("30.24")
