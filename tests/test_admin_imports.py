"""批量导入 through the back office: upload, mapping, preview fixes, commit, report, undo."""
import csv
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from kamen.extensions import db
from kamen.models import ImportBatch, ImportRow, MappingTemplate, Product
from kamen.services.suppliers import default_supplier
from tests.helpers import make_category, make_product
from tests.import_files import messy_csv, messy_xlsx


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _upload(admin, data, name="价格表.csv", **form):
    supplier = default_supplier(db.session)
    response = admin.post("/admin/imports/new", data={"supplier_id": str(supplier.id), "category_id": "",
                                                      "file": (io.BytesIO(data), name), **form},
                          content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))


def _mapping_form(batch, **extra):
    form = {f"col_{m['column']}": m["key"] for m in batch.match_info}
    return {"mode": "upsert", "markup_percent": "3", "markup_fixed": "0", "markup_step": "0.01",
            "max_price_change": "30", **form, **extra}


def _fresh(batch):
    db.session.expire_all()
    return db.session.get(ImportBatch, batch.id)


def _row(batch, line):
    db.session.expire_all()
    return db.session.scalar(sa.select(ImportRow).filter_by(batch_id=batch.id, line=line))


def test_full_flow_with_inline_fix_commit_report_and_undo(admin, client):
    batch = _upload(admin, messy_csv())
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "列对应" in page and "商品ID" in page and "同义词" in page
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    assert response.status_code == 302
    batch = _fresh(batch)
    assert batch.status == "ready" and (batch.created, batch.failed, batch.skipped) == (2, 3, 1)

    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert page.index("进价格式错误") < page.index("腾讯Q币 30元")  # errors first, in the supplier's column names
    assert "9.89" in page and "按加价计算" in page

    # Fix the bad price inline: the row is re-validated at once.
    bad = _row(batch, 7)
    response = admin.post(f"/admin/imports/{batch.id}/rows/{bad.id}/cell/cost_price", data={"value": "48.50"}, htmx=True)
    assert response.status_code == 200 and "新增" in response.get_data(as_text=True)
    assert _row(batch, 7).action == "create"
    # A fix that is still wrong says why.
    response = admin.post(f"/admin/imports/{batch.id}/rows/{bad.id}/cell/stock", data={"value": "很多"}, htmx=True)
    assert "库存" in response.get_data(as_text=True) and _row(batch, 7).action == "error"
    admin.post(f"/admin/imports/{batch.id}/rows/{bad.id}/cell/stock", data={"value": "100"}, htmx=True)
    # Skip the duplicate row on purpose.
    dup = _row(batch, 8)
    admin.post(f"/admin/imports/{batch.id}/rows/{dup.id}/skip", data={"skip": "1"}, htmx=True)
    batch = _fresh(batch)
    assert (batch.created, batch.updated, batch.unchanged, batch.skipped, batch.failed) == (3, 0, 0, 2, 1)
    assert batch.rows_in == batch.created + batch.updated + batch.unchanged + batch.skipped + batch.failed

    errors = admin.get(f"/admin/imports/{batch.id}/errors")
    rows = list(csv.reader(io.StringIO(errors.data.decode("gbk"))))
    assert rows[0][-1] == "错误原因" and rows[1][0] == "DX100" and "库存不能为负数" in rows[1][-1]

    response = admin.post(f"/admin/imports/{batch.id}/commit", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "导入报告" in page and "撤销本次导入" in page
    products = {p.code: p for p in db.session.scalars(sa.select(Product))}
    assert set(products) == {"QB10", "QB30", "YD50"}
    assert products["YD50"].cost_price == Decimal("48.50") and products["YD50"].sale_price == Decimal("49.96")
    assert "移动话费 50元" in client.get("/search?q=移动话费").get_data(as_text=True)

    response = admin.post(f"/admin/imports/{batch.id}/undo", follow_redirects=True)
    assert "已撤销本次导入" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 0


def test_updates_show_old_and_new_and_need_confirmation_for_big_changes(admin):
    supplier = default_supplier(db.session)
    make_product(code="QB10", name="腾讯Q币 10元", cost_price=Decimal("5.00"), sale_price=Decimal("9.89"),
                 face_value=Decimal("10"), stock=500, supplier_id=supplier.id)
    batch = _upload(admin, messy_csv())
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    page = admin.get(f"/admin/imports/{batch.id}?show=update").get_data(as_text=True)
    assert "5.00 → 9.60" in page and "变动超过 30%，请确认" in page
    response = admin.post(f"/admin/imports/{batch.id}/commit", follow_redirects=True)
    assert "请勾选确认后再提交" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Product.cost_price).filter_by(code="QB10")) == Decimal("5.00")
    admin.post(f"/admin/imports/{batch.id}/commit", data={"confirm_warnings": "1"})
    db.session.expire_all()
    assert db.session.scalar(sa.select(Product.cost_price).filter_by(code="QB10")) == Decimal("9.60")

    # A product changed again after the import is skipped by undo; the rest is undone.
    product = db.session.scalar(sa.select(Product).filter_by(code="QB10"))
    product.name = "改过"
    db.session.commit()
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "撤销时将跳过导入后又被修改过的商品：QB10" in page and "撤销本次导入" in page
    response = admin.post(f"/admin/imports/{batch.id}/undo", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "跳过了 1 个导入后又被修改过的商品" in page and "撤销时跳过了导入后又被修改过的商品：QB10" in page
    db.session.expire_all()
    kept = db.session.scalar(sa.select(Product).filter_by(code="QB10"))
    assert (kept.name, kept.cost_price) == ("改过", Decimal("9.60"))  # the admin's edit stays
    assert db.session.scalar(sa.select(Product).filter_by(code="QB30")) is None  # created by the batch: undone


def test_saved_template_is_applied_to_the_next_file(admin):
    batch = _upload(admin, messy_csv())
    form = _mapping_form(_fresh(batch), template_name="XX货源")
    form["col_3"] = ""  # the admin ignores 面值
    admin.post(f"/admin/imports/{batch.id}/mapping", data=form)
    template = db.session.scalar(sa.select(MappingTemplate))
    assert template.name == "XX货源"
    second = _upload(admin, messy_csv())
    second = _fresh(second)
    assert second.template_id == template.id and "face_value" not in second.mapping
    # Same layout: no mapping step, straight to the preview.
    assert second.status == "ready"
    assert "已按上次提交时的列对应和导入设置直接校验（XX货源）" in admin.get(f"/admin/imports/{second.id}").get_data(as_text=True)


def test_xlsx_into_one_category_and_create_only_mode(admin):
    games = make_category("游戏点卡")
    supplier = default_supplier(db.session)
    make_product(code="QB30", name="旧名字", supplier_id=supplier.id)
    batch = _upload(admin, messy_xlsx(), name="price.xlsx")
    batch = _fresh(batch)
    assert batch.file_kind == "xlsx" and batch.header_row == 2
    admin.post(f"/admin/imports/{batch.id}/mapping",
               data=_mapping_form(batch, mode="create", category_id=str(games.id)))
    batch = _fresh(batch)
    assert batch.created == 1 and "仅新增模式" in _row(batch, 5).skip_reason
    admin.post(f"/admin/imports/{batch.id}/commit")
    db.session.expire_all()
    assert db.session.scalar(sa.select(Product.category_id).filter_by(code="QB10")) == games.id
    assert db.session.scalar(sa.select(Product.name).filter_by(code="QB30")) == "旧名字"
    report = admin.get(f"/admin/imports/{batch.id}/errors")
    sheet = load_workbook(io.BytesIO(report.data)).active
    assert [c.value for c in sheet[1]][-1] == "错误原因" and sheet.max_row == 4


def test_a_sheet_starting_at_column_c_maps_by_its_excel_letters_and_imports(admin):
    """The header is found from the head of the sheet and the rows staged from the whole
    sheet: both count columns from A, so an empty column A and B change nothing."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet["C1"] = "XX货源价格表"
    for row in (["商品编码", "商品名称", "供货价", "库存"], ["QB10", "腾讯Q币 10元", 9.5, 20], ["QB20", "腾讯Q币 20元", 19, 5]):
        sheet.append([None, None, *row])
    out = io.BytesIO()
    book.save(out)
    batch = _fresh(_upload(admin, out.getvalue(), name="price.xlsx"))
    assert batch.headers[:3] == ["", "", "商品编码"]
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "<td>C</td><td>商品编码</td>" in page and "<td>F</td><td>库存</td>" in page
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(batch))
    batch = _fresh(batch)
    assert (batch.status, batch.created, batch.failed) == ("ready", 2, 0), batch.message
    admin.post(f"/admin/imports/{batch.id}/commit")
    db.session.expire_all()
    assert db.session.scalar(sa.select(Product.stock).filter_by(code="QB20")) == 5


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"", "empty.csv", "文件是空的"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "pic.xlsx", "不是"),
        (b"PK\x03\x04broken", "broken.xlsx", "损坏"),
        ("商品编码,商品名称,供货价\n".encode(), "headers.csv", "只有表头"),
    ],
)
def test_bad_files_get_a_clear_message_and_import_nothing(admin, data, name, message):
    supplier = default_supplier(db.session)
    admin.post("/admin/imports/new", data={"supplier_id": str(supplier.id), "file": (io.BytesIO(data), name)},
               content_type="multipart/form-data")
    batch = db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))
    assert batch.status == "failed" and message in batch.message, batch.message
    assert message in admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 0


def test_missing_required_column_stops_before_row_work(admin):
    data = "名称,库存\nQ币,5\n".encode()
    batch = _upload(admin, data)
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "缺少必填列：商品编码、供货价" in page
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    assert response.status_code == 400 and "缺少必填列" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportRow)) == 0


def test_upload_without_file_and_template_download(admin):
    response = admin.post("/admin/imports/new", data={"supplier_id": "1"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "请选择要导入的文件" in response.get_data(as_text=True)
    xlsx = admin.get("/admin/imports/template.xlsx")
    book = load_workbook(io.BytesIO(xlsx.data))
    assert [c.value for c in book.worksheets[0][1]][:3] == ["商品编码", "商品名称", "分类"]
    assert "说明" in book.sheetnames
    assert admin.get("/admin/imports/template.csv").data.startswith("\ufeff商品编码".encode())


def test_template_round_trip(admin):
    """Download the template, fill it in, import it."""
    book = load_workbook(io.BytesIO(admin.get("/admin/imports/template.xlsx").data))
    sheet = book.worksheets[0]
    headers = [c.value for c in sheet[1]]
    for row in list(sheet.iter_rows(min_row=2)):
        for cell in row:
            cell.value = None
    values = {"商品编码": "NEW1", "商品名称": "新商品 月卡", "供货价": 10, "售价": 12.5, "库存": 8, "需同步库存": "是",
              "发货方式": "直充", "充值账号格式": "手机号", "预计到账(分钟)": 10}
    sheet.append([values.get(h) for h in headers])
    out = io.BytesIO()
    book.save(out)
    batch = _upload(admin, out.getvalue(), name="模板.xlsx")
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    batch = _fresh(batch)
    assert batch.created == 1, [(r.line, r.errors) for r in db.session.scalars(sa.select(ImportRow))]
    admin.post(f"/admin/imports/{batch.id}/commit")
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW1"))
    assert product.sale_price == Decimal("12.50") and product.delivery_type.value == "topup"
    assert product.buyer_fields[0]["pattern"] == r"^1[3-9]\d{9}$" and product.delivery_minutes == 10


def _two_sheet_xlsx():
    from openpyxl import Workbook

    book = Workbook()
    games = book.active
    games.title = "游戏点卡"
    games.append(["商品编码", "商品名称", "供货价"])
    games.append(["G1", "游戏卡 1", 10])
    phone = book.create_sheet("话费充值")
    phone.append(["商品编码", "商品名称", "供货价"])
    phone.append(["P1", "话费 1", 50])
    phone.append(["P2", "话费 2", 100])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_all_sheets_go_into_the_category_named_like_the_sheet(admin):
    games, phone = make_category("游戏点卡"), make_category("话费充值")
    batch = _upload(admin, _two_sheet_xlsx(), name="多表.xlsx")
    batch = _fresh(batch)
    assert batch.sheets == ["游戏点卡", "话费充值"]
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(batch, sheet="*"))
    batch = _fresh(batch)
    assert batch.created == 3, batch.message
    admin.post(f"/admin/imports/{batch.id}/commit")
    db.session.expire_all()
    placed = dict(db.session.execute(sa.select(Product.code, Product.category_id)).all())
    assert placed == {"G1": games.id, "P1": phone.id, "P2": phone.id}


def test_delist_products_missing_from_the_file_and_undo_relists(admin):
    supplier = default_supplier(db.session)
    old = make_product(code="OLD", name="下架的旧商品", supplier_id=supplier.id)
    batch = _upload(admin, messy_csv())
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch), delist_missing="supplier"))
    admin.post(f"/admin/imports/{batch.id}/commit")
    db.session.expire_all()
    assert db.session.get(Product, old.id).is_listed is False
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "已下架" in page
    admin.post(f"/admin/imports/{batch.id}/undo")
    db.session.expire_all()
    assert db.session.get(Product, old.id).is_listed is True


def test_header_row_can_be_corrected_by_the_admin(admin):
    batch = _upload(admin, messy_csv())
    response = admin.post(f"/admin/imports/{batch.id}/header", data={"header_line": "2"}, follow_redirects=True)
    assert "缺少必填列" in response.get_data(as_text=True)
    admin.post(f"/admin/imports/{batch.id}/header", data={"header_line": "4"})
    assert _fresh(batch).mapping["code"] == 0


def test_scheduled_commit_waits_for_its_hour(admin, app, redis_url):
    from jobs.imports import dispatch_scheduled_imports

    batch = _upload(admin, messy_csv())
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    # Embedded mode runs no schedule: the preview offers no scheduled commit, and a forged one is refused.
    assert 'name="at"' not in admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    response = admin.post(f"/admin/imports/{batch.id}/commit", data={"at": "03:00"}, follow_redirects=True)
    assert "当前没有开启定时任务，不能预约提交" in response.get_data(as_text=True)
    app.config["REDIS_URL"] = redis_url
    assert 'name="at"' in admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    response = admin.post(f"/admin/imports/{batch.id}/commit", data={"at": "03:00"}, follow_redirects=True)
    assert "已预约在 03:00 提交" in response.get_data(as_text=True)
    batch = _fresh(batch)
    assert batch.status == "scheduled" and batch.scheduled_for is not None
    app.config["REDIS_URL"] = None  # run the tick's job in-process
    assert dispatch_scheduled_imports() == []  # not yet
    batch.scheduled_for = batch.scheduled_for.replace(year=2020)
    db.session.commit()
    assert dispatch_scheduled_imports() == [batch.id]
    assert _fresh(batch).status == "committed"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 2


def test_cancel_stops_between_chunks_and_keeps_what_was_written(admin, monkeypatch):
    from kamen.services.importing import committing

    monkeypatch.setattr(committing, "CHUNK", 1)
    batch = _upload(admin, messy_csv())
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    batch = _fresh(batch)
    committing.request_commit(db.session, batch)
    batch.cancel_requested = True  # as if the admin pressed 取消提交 while it runs
    db.session.commit()
    batch = committing.commit_batch(db.session, batch.id)
    assert batch.status == "cancelled"
    assert "已取消" in admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    response = admin.post(f"/admin/imports/{batch.id}/commit", follow_redirects=True)
    assert "导入报告" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 2


def test_legacy_xls_from_old_excel(admin):
    """A real .xls (Excel 97-2003), as older supplier systems still export."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("价格表")
    sheet.write_merge(0, 0, 0, 3, "XX货源价格表 2026-11")
    for col, header in enumerate(["编号", "商品名称", "成本价", "数量"]):
        sheet.write(2, col, header)
    for row, values in enumerate([("1001", "老系统商品", 12.5, 9), (1002, "另一个商品", "12.345", 3)], start=3):
        for col, value in enumerate(values):
            sheet.write(row, col, value)
    out = io.BytesIO()
    book.save(out)
    batch = _fresh(_upload(admin, out.getvalue(), name="old.xls"))
    assert batch.file_kind == "xls" and batch.mapping == {"code": 0, "name": 1, "cost_price": 2, "stock": 3}
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(batch))
    batch = _fresh(batch)
    assert (batch.created, batch.failed) == (1, 1)
    assert _row(batch, 4).code == "1001"
    assert "最多两位小数" in _row(batch, 5).errors[0]["message"]
    assert _row(batch, 5).code == "1002"  # a numeric code stays text, no "1002.0"


def test_progress_partial_polls_until_the_job_is_done(admin):
    batch = _upload(admin, messy_csv())
    batch = _fresh(batch)
    batch.status = "staging"  # as while a worker validates the rows
    db.session.commit()
    partial = admin.hx_get(f"/admin/imports/{batch.id}")
    assert 'hx-trigger="every 1s"' in partial.get_data(as_text=True) and "校验中" in partial.get_data(as_text=True)
    batch.status = "ready"
    db.session.commit()
    done = admin.hx_get(f"/admin/imports/{batch.id}")
    assert done.headers["HX-Refresh"] == "true"


def test_import_markup_has_the_same_limits_as_everywhere_else(admin):
    batch = _upload(admin, messy_csv())
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch), markup_percent="1001"))
    assert response.status_code == 400 and "加价百分比不能超过 1000%" in response.get_data(as_text=True)
    assert _fresh(batch).status == "mapping"
