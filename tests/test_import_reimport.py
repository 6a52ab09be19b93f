"""The weekly re-import and what the admin sees: saved layout, remembered fixes, same-file notice,
normalized cells with the raw text on hover, column samples, 库存预警 after an import."""
import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Category, ImportBatch, ImportFix, ImportRow, MappingTemplate, Notification, Product
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product
from tests.import_files import messy_csv, weekly_list_rows, weekly_list_xlsx


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _upload(admin, data, name="价格表.csv"):
    supplier = default_supplier(db.session)
    response = admin.post("/admin/imports/new", data={"supplier_id": str(supplier.id), "category_id": "",
                                                      "file": (io.BytesIO(data), name)},
                          content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    return db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))


def _confirm(admin, batch, **extra):
    form = {f"col_{m['column']}": m["key"] for m in batch.match_info}
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data={
        "mode": "upsert", "markup_percent": "3", "markup_fixed": "0", "markup_step": "0.01",
        "max_price_change": "30", **form, **extra})
    assert response.status_code == 302, response.get_data(as_text=True)
    return _fresh(batch)


def _commit(admin, batch):
    """立即提交, with the preview's warnings (markup above 面值 …) confirmed."""
    response = admin.post(f"/admin/imports/{batch.id}/commit", data={"confirm_warnings": "1"})
    assert response.status_code == 302
    return _fresh(batch)


def _fresh(batch):
    db.session.expire_all()
    return db.session.get(ImportBatch, batch.id)


def _row(batch, line):
    db.session.expire_all()
    return db.session.scalar(sa.select(ImportRow).filter_by(batch_id=batch.id, line=line))


def test_weekly_reimport_skips_mapping_reapplies_fixes_and_knows_the_same_file(admin):
    first = _confirm(admin, _upload(admin, messy_csv()), markup_percent="5")
    # 移动话费 has 进价 "abc": fixed inline once.
    bad = _row(first, 7)
    admin.post(f"/admin/imports/{first.id}/rows/{bad.id}/cell/cost_price", data={"value": "48.50"}, htmx=True)
    assert _row(first, 7).action == "create"
    _commit(admin, first)
    first = _fresh(first)
    assert first.status == "committed"
    template = db.session.scalar(sa.select(MappingTemplate))
    assert template is not None and template.options["markup_percent"] == "5.00"
    assert db.session.scalar(sa.select(Product.cost_price).filter_by(code="YD50")) == Decimal("48.50")

    # Next week, byte for byte the same file: straight to the preview, fix applied, notice shown.
    again = _upload(admin, messy_csv())
    assert again.status == "ready" and again.markup_percent == Decimal("5")
    fixed = _row(again, 7)
    assert fixed.auto_fixed == ["cost_price"] and fixed.action == "unchanged"
    assert fixed.edits["cost_price"] == "48.50" and fixed.cells[2] == "abc"  # the error file keeps the supplier's cell
    page = admin.get(f"/admin/imports/{again.id}").get_data(as_text=True)
    assert f"这个文件已于 {first.committed_at:%Y}" in page and f"导入 #{first.id}" in page
    assert "已按上次提交时的列对应和导入设置直接校验" in page
    assert "1 行已按上次修改自动修正" in page and "已按上次修改自动修正</div>" in page

    # A changed list is not "the same file", but still needs no mapping.
    changed = _upload(admin, messy_csv(rows=[["QB10", "腾讯Q币 10元", "9.70", "10元", "500", "", ""],
                                             ["YD50", "移动话费 50元", "abc", "50", "100", "", ""]]))
    assert changed.status == "ready"
    page = admin.get(f"/admin/imports/{changed.id}").get_data(as_text=True)
    assert "这个文件已于" not in page
    assert _row(changed, 6).auto_fixed == ["cost_price"]  # the identical 移动话费 row


def test_a_fix_back_to_the_files_value_is_forgotten(admin):
    batch = _confirm(admin, _upload(admin, messy_csv()))
    bad = _row(batch, 7)
    admin.post(f"/admin/imports/{batch.id}/rows/{bad.id}/cell/cost_price", data={"value": "48.50"}, htmx=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportFix)) == 1
    admin.post(f"/admin/imports/{batch.id}/rows/{bad.id}/cell/cost_price", data={"value": "abc"}, htmx=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportFix)) == 0


def test_a_layout_never_committed_still_asks_for_the_mapping(admin):
    _confirm(admin, _upload(admin, messy_csv()))  # previewed, not committed
    assert _upload(admin, messy_csv()).status == "mapping"


def test_preview_shows_normalized_values_with_the_raw_text_on_hover(admin):
    data = "商品编号,商品名称,进货价,库存\nA1,腾讯Q币 50元,￥４８．５０,１２\n".encode()
    batch = _confirm(admin, _upload(admin, data))
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert '<span title="文件中：￥４８．５０">48.50</span>' in page
    assert '<span title="文件中：１２">12</span>' in page


def test_mapping_page_shows_three_sample_values_per_column(admin):
    rows = [[f"C{i}", f"商品{i}", f"{i}.00", "", "", "", ""] for i in range(1, 6)]
    batch = _upload(admin, messy_csv(rows=rows))
    assert batch.samples[0] == ["C1", "C2", "C3"] and batch.samples[3] == []
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert '<span class="sample">商品3</span>' in page and "商品4" not in page


def test_error_messages_name_the_suppliers_column(admin):
    batch = _confirm(admin, _upload(admin, messy_csv()))
    assert "进价" in _row(batch, 7).errors[0]["message"]


def test_low_stock_after_an_import_raises_one_notice(admin):
    response = admin.post("/admin/settings/alerts", data={
        "webhook_kind": "", "smtp_port": "465", "sync_failure_alert_after": "3", "low_stock_threshold": "300"})
    assert response.status_code == 302
    assert 'value="300"' in admin.get("/admin/settings/alerts").get_data(as_text=True)
    batch = _confirm(admin, _upload(admin, messy_csv()))
    _commit(admin, batch)
    notes = db.session.scalars(sa.select(Notification).filter_by(kind="low_stock")).all()
    assert len(notes) == 1 and "1 个商品库存不足" in notes[0].title
    assert notes[0].body == "腾讯Q币 30元（QB30）库存 200，预警数量 300"  # QB10 has 500
    # Still low after next week's import: no second notice.
    again = _upload(admin, messy_csv(rows=[["QB30", "腾讯Q币 30元", "28.80", "30", "150", "", ""]]))
    _commit(admin, again)
    assert _fresh(again).status == "committed"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 1
    # Undo still works on the products the notice marked.
    admin.post(f"/admin/imports/{again.id}/undo")
    assert db.session.scalar(sa.select(Product.stock).filter_by(code="QB30")) == 200
    # Left blank, the threshold is the deployment's default again.
    admin.post("/admin/settings/alerts", data={
        "webhook_kind": "", "smtp_port": "465", "sync_failure_alert_after": "3", "low_stock_threshold": ""})
    assert 'value="10"' in admin.get("/admin/settings/alerts").get_data(as_text=True)


def test_report_links_to_exactly_this_batchs_goods(admin):
    supplier = default_supplier(db.session)
    make_product(code="OTHER", name="别的商品", supplier_id=supplier.id)
    batch = _confirm(admin, _upload(admin, messy_csv()))
    _commit(admin, batch)
    report = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert f'href="/admin/products?batch={batch.id}"' in report
    page = admin.get(f"/admin/products?batch={batch.id}").get_data(as_text=True)
    assert "共 2 个" in page and "腾讯Q币 30元" in page and "别的商品" not in page
    assert f"只显示导入 #{batch.id} 新增和更新的商品" in page


def test_error_file_keeps_the_suppliers_headers_and_the_original_row_number(admin):
    batch = _confirm(admin, _upload(admin, messy_csv()))
    rows = list(csv.reader(io.StringIO(admin.get(f"/admin/imports/{batch.id}/errors").data.decode("gbk"))))
    assert rows[0] == ["商品ID", "名称", "进价", "面值", "库存", "活动价", "活动结束", "原行号", "错误原因"]
    assert rows[1][0] == "YD50" and rows[1][-2] == "7" and rows[1][-1].startswith("进价格式错误")
    # The corrected error file comes back with the same layout: the two added columns are ignored.
    _commit(admin, batch)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(rows[0])
    writer.writerow(["YD50", "移动话费 50元", "48.50", "50", "100", "", "", "7", "进价格式错误"])
    again = _upload(admin, out.getvalue().encode("gbk"))
    assert again.status == "ready" and again.created == 1, again.message


def test_standard_template_imports_cleanly_into_the_demo_shop_as_downloaded(admin):
    from openpyxl import load_workbook

    from kamen.services.demo import seed_demo

    seed_demo(db.session)
    data = admin.get("/admin/imports/template.xlsx").data
    book = load_workbook(io.BytesIO(data))
    sheet = book["商品"]
    assert sheet.column_dimensions["A"].number_format == "@"  # the whole 商品编码 column is text
    lists = {str(dv.sqref): dv.formula1 for dv in sheet.data_validations.dataValidation if dv.type == "list"}
    assert lists["C2:C1048576"] == "'分类'!$A$1:$A$17"  # 5 top-level + 12 sub-categories of the demo shop
    names = [row[0] for row in book["分类"].iter_rows(values_only=True)]
    assert book["分类"].sheet_state == "hidden" and "游戏点卡/腾讯游戏" in names and "话费充值/中国电信" in names

    batch = _confirm(admin, _upload(admin, data, name="kamen商品导入模板.xlsx"))
    assert (batch.created, batch.failed, batch.skipped) == (2, 0, 0), [
        r.errors for r in db.session.scalars(sa.select(ImportRow).filter_by(batch_id=batch.id))]
    _commit(admin, batch)
    placed = {code: category.full_name for code, category in db.session.execute(
        sa.select(Product.code, Category).join(Category, Product.category_id == Category.id)
        .where(Product.code.in_(["1001", "0086-DX-ANY"])))}
    assert placed == {"1001": "游戏点卡 / 腾讯游戏", "0086-DX-ANY": "话费充值 / 中国电信"}


def test_undo_keeps_goods_created_by_the_batch_and_edited_since(admin):
    batch = _confirm(admin, _upload(admin, messy_csv()))
    _commit(admin, batch)
    product = db.session.scalar(sa.select(Product).filter_by(code="QB30"))
    admin.post(f"/admin/products/{product.id}/cell/sale_price", data={"value": "29.99"}, htmx=True)
    page = admin.post(f"/admin/imports/{batch.id}/undo", follow_redirects=True).get_data(as_text=True)
    assert "撤销时跳过了导入后又被修改过的商品：QB30" in page
    db.session.expire_all()
    assert db.session.scalars(sa.select(Product.code)).all() == ["QB30"]
    assert db.session.scalar(sa.select(Product.sale_price)) == Decimal("29.99")
    assert _fresh(batch).status == "undone"


def test_fixes_come_back_for_xlsx_rows_with_numbers_and_dates(admin):
    """Numbers and dates in cells make the same row identity after the trip through the database."""
    from kamen.services.demo import seed_demo

    seed_demo(db.session)  # the list's categories
    rows, _ = weekly_list_rows(12)
    rows[7][3] = "面议"
    rows[6][5] = datetime(2026, 12, 1, 8, 30)  # a stock cell Excel read as a date: an error row too
    batch = _confirm(admin, _upload(admin, weekly_list_xlsx(rows), name="本周.xlsx"))
    for line, field, text in ((11, "cost_price", "96.00"), (10, "stock", "120")):
        row = _row(batch, line)
        admin.post(f"/admin/imports/{batch.id}/rows/{row.id}/cell/{field}", data={"value": text}, htmx=True)
    assert _fresh(batch).failed == 0
    assert _commit(admin, batch).status == "committed"
    again = _upload(admin, weekly_list_xlsx(rows), name="本周.xlsx")
    assert again.status == "ready" and again.failed == 0
    assert (_row(again, 11).auto_fixed, _row(again, 10).auto_fixed) == (["cost_price"], ["stock"])


def test_a_cancelled_and_resumed_commit_names_each_low_good_once(app, monkeypatch):
    """The 库存预警 notice of a commit lists the new goods that run wrote: a cancelled
    commit's notice those written before 取消, the resumed commit's the rest."""
    from kamen.services.importing import committing, staging

    app.config["IMPORT_WORKERS"] = 1
    monkeypatch.setattr(committing, "CHUNK", 4)
    rows = [[f"LS{i:02d}", f"腾讯Q币 {i + 1}元", "0.90", "1", str(i), "", ""] for i in range(12)]  # stock 0..11
    supplier = default_supplier(db.session)
    batch = staging.create_batch(db.session, io.BytesIO(messy_csv(rows)), "价格表.csv", supplier=supplier)
    batch = staging.analyze(db.session, batch.id)
    staging.apply_mapping(db.session, batch, staging.StageOptions(
        choices={m["column"]: m["key"] for m in batch.match_info}, markup=staging.batch_markup(batch)))
    batch = staging.stage(db.session, batch.id)
    assert batch.created == 12
    batch_id = batch.id

    def cancel_once_goods_are_written(session, **values):  # the job's lease beat, in the chunk's transaction
        if session.scalar(sa.select(sa.func.count()).select_from(Product)):
            session.execute(sa.update(ImportBatch).where(ImportBatch.id == batch_id).values(cancel_requested=True))

    committing.request_commit(db.session, batch, confirm_warnings=True)
    batch = committing.commit_batch(db.session, batch.id, cancel_once_goods_are_written)
    assert batch.status == "cancelled"
    first = db.session.scalars(sa.select(Product.code).order_by(Product.code)).all()
    assert first == ["LS00", "LS01", "LS02", "LS03"]

    committing.request_commit(db.session, batch, confirm_warnings=True)
    batch = committing.commit_batch(db.session, batch.id)
    assert batch.status == "committed" and batch.created == 12
    notes = db.session.scalars(sa.select(Notification).filter_by(kind="low_stock").order_by(Notification.id)).all()
    named = [{line.split("（")[1].split("）")[0] for line in note.body.splitlines()} for note in notes]
    # Stock 0..10 is at or below the default threshold of 10; LS11 (stock 11) is not.
    assert named == [set(first), {f"LS{i:02d}" for i in range(4, 11)}]
    assert "4 个商品库存不足" in notes[0].title and "7 个商品库存不足" in notes[1].title
