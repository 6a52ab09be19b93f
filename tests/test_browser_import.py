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

    page.goto(f"{live_server}/search?q=移动话费")
    expect(page.locator(".grid")).to_contain_text("移动话费 50元")


def test_background_jobs_show_progress_then_the_next_step(app, auth, live_server, page, tmp_path):
    """As scripts/run serves it: jobs on the in-process pool, the page polls until they finish."""
    app.config["JOBS_SYNC"] = False
    auth.create()
    upload_messy_file(page, live_server, tmp_path)
    page.get_by_role("button", name="确认并校验").click()
    expect(page.locator(".counts")).to_contain_text("错误 3")
    page.get_by_role("button", name="立即提交").click()
    expect(page.get_by_role("heading", name="导入报告")).to_be_visible()
    expect(page.locator(".stats")).to_contain_text("2新增")
