"""Prices a shop can sell at (issue 13): the import's price basis, its warnings, and
the sale price each row gets in the preview and the report."""
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ImportRow, Product
from kamen.services.importing.mapping import auto_map
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product
from tests.test_admin_imports import _fresh, _mapping_form, _upload, admin  # noqa: F401

# The supplier's own headers; 建议零售价 is the file's price (issue 13's list).
LIST = ("商品编号,商品名称,进货价,面值,市场价,建议零售价,库存\n"
        "QB50,腾讯Q币 50元,48.50,50,50,49.80,100\n"
        "HF100,移动话费 100元,97.50,100,100,,100\n"
        "WY10,网易一卡通 10元,9.60,10,,9.00,30\n")


def _rows(batch):
    db.session.expire_all()
    return {r.code: r for r in db.session.scalars(sa.select(ImportRow).filter_by(batch_id=batch.id))}


def _staged(admin, basis, csv=LIST, **form):  # noqa: F811
    batch = _upload(admin, csv.encode())
    response = admin.post(f"/admin/imports/{batch.id}/mapping",
                          data=_mapping_form(_fresh(batch), markup_percent="5", price_basis=basis, **form))
    assert response.status_code == 302, response.get_data(as_text=True)
    return _fresh(batch)


def _kinds(row):
    return [w["kind"] for w in row.warnings]


def test_retail_price_headers_map_to_the_files_price():
    assert {m.header: m.key for m in auto_map(["建议零售价", "零售价", "售价"]).matches} == {"建议零售价": "sale_price"}
    assert auto_map(["零售价"]).matches[0].key == "sale_price"
    assert auto_map(["建议售价"]).matches[0].key == "sale_price"


def test_markup_above_face_value_is_a_warning_and_capping_fixes_it(admin):  # noqa: F811
    batch = _staged(admin, "markup")
    rows = _rows(batch)
    # 腾讯Q币 50元 at cost 48.50 × 1.05 = ¥50.93: above its ¥50 面值, the warning says so.
    assert rows["QB50"].values["sale_price"] == "50.93"
    assert _kinds(rows["QB50"]) == ["售价高于面值", "售价高于市场价"] and rows["QB50"].has_warnings
    assert rows["HF100"].values["sale_price"] == "102.38" and "售价高于面值" in _kinds(rows["HF100"])
    # A 建议零售价 below cost (9.00 < 9.60) is only a suggestion here: a warning, priced by markup.
    assert rows["WY10"].values["sale_price"] == "10.08" and "建议零售价低于成本" in _kinds(rows["WY10"])
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "将以此售价销售" in page and "50.93" in page and "售价高于面值 3 行" in page
    response = admin.post(f"/admin/imports/{batch.id}/commit", follow_redirects=True)
    assert "请勾选确认后再提交" in response.get_data(as_text=True) and _fresh(batch).status == "ready"

    # One control on the preview: capped at 面值 the goods sell at most at face value.
    response = admin.post(f"/admin/imports/{batch.id}/pricing", data={"price_basis": "cap_face"})
    assert response.status_code == 302
    rows = _rows(batch)
    assert rows["QB50"].values["sale_price"] == "50.00" and not rows["QB50"].has_warnings
    assert rows["HF100"].values["sale_price"] == "100.00"
    assert rows["WY10"].values["sale_price"] == "10.00"
    assert _fresh(batch).price_basis == "cap_face"


def test_the_files_price_is_used_and_a_price_below_cost_is_refused(admin):  # noqa: F811
    batch = _staged(admin, "file")
    rows = _rows(batch)
    assert rows["QB50"].values["sale_price"] == "49.80" and not rows["QB50"].warnings
    # No 建议零售价: marked up (and warned: above 面值).
    assert rows["HF100"].values["sale_price"] == "102.38" and rows["HF100"].has_warnings
    # The file asks for a price below cost: never sold at a loss.
    assert rows["WY10"].action == "error" and rows["WY10"].errors[0]["kind"] == "售价低于成本"


def test_cap_at_market_price_never_goes_below_cost_plus_the_minimum_margin(admin):  # noqa: F811
    supplier = default_supplier(db.session)
    supplier.min_margin = Decimal("2.00")
    db.session.commit()
    batch = _staged(admin, "cap_market")
    rows = _rows(batch)
    # 市场价 ¥50 is below cost 48.50 + margin 2.00: the floor wins, and the admin is told.
    assert rows["QB50"].values["sale_price"] == "50.50" and "售价高于市场价" in _kinds(rows["QB50"])
    # No 市场价 on this row: plain markup, lifted to the floor.
    assert rows["WY10"].values["sale_price"] == "11.60"


def test_accept_warnings_in_bulk_then_commit_and_the_report_lists_the_prices(admin):  # noqa: F811
    batch = _staged(admin, "markup")
    response = admin.post(f"/admin/imports/{batch.id}/warnings/accept", data={"kind": "售价高于面值"})
    assert response.status_code == 302
    rows = _rows(batch)
    # Each row still waits for its other kind of warning.
    assert all(rows[code].has_warnings for code in rows)
    assert rows["QB50"].error_kinds == ",售价高于市场价," and rows["WY10"].error_kinds == ",建议零售价低于成本,"
    admin.post(f"/admin/imports/{batch.id}/warnings/accept", data={"kind": "售价高于市场价"})
    rows = _rows(batch)
    assert not rows["QB50"].has_warnings and not rows["HF100"].has_warnings and rows["WY10"].has_warnings
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "建议零售价低于成本 1 行" in page and "售价高于面值 3 行" not in page
    admin.post(f"/admin/imports/{batch.id}/warnings/accept", data={"kind": ""})
    assert admin.post(f"/admin/imports/{batch.id}/commit").status_code == 302
    batch = _fresh(batch)
    assert batch.status == "committed", batch.message
    prices = dict(db.session.execute(sa.select(Product.code, Product.sale_price)).all())
    assert prices == {"QB50": Decimal("50.93"), "HF100": Decimal("102.38"), "WY10": Decimal("10.08")}
    report = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "导入的商品（3）" in report and "102.38" in report and "50.93" in report


def test_an_edited_row_keeps_its_accepted_warning(admin):  # noqa: F811
    batch = _staged(admin, "markup")
    admin.post(f"/admin/imports/{batch.id}/warnings/accept", data={"kind": ""})
    row = _rows(batch)["QB50"]
    admin.post(f"/admin/imports/{batch.id}/rows/{row.id}/cell/stock", data={"value": "80"}, htmx=True)
    assert not _rows(batch)["QB50"].has_warnings
    admin.post(f"/admin/imports/{batch.id}/rows/{row.id}/cell/cost_price", data={"value": "49.00"}, htmx=True)
    assert _rows(batch)["QB50"].has_warnings  # a new price: a new warning to look at


def test_the_suppliers_default_basis_is_the_batchs(admin):  # noqa: F811
    supplier = default_supplier(db.session)
    supplier.price_basis = "cap_face"
    db.session.commit()
    batch = _upload(admin, LIST.encode())
    assert batch.price_basis == "cap_face"
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert 'value="cap_face" selected' in page
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch), price_basis="bogus"))
    assert response.status_code == 400 and "定价方式无效" in response.get_data(as_text=True)


def test_supplier_form_saves_the_default_basis(admin):  # noqa: F811
    supplier = default_supplier(db.session)
    page = admin.get(f"/admin/suppliers/{supplier.id}/edit").get_data(as_text=True)
    assert "导入时的定价方式" in page and "按供货价加价，不高于面值" in page


def test_an_update_is_capped_at_the_products_own_face_value(admin):  # noqa: F811
    supplier = default_supplier(db.session)
    make_product(code="QB50", name="腾讯Q币 50元", supplier_id=supplier.id, cost_price=Decimal("48.00"),
                 sale_price=Decimal("49.50"), face_value=Decimal("50"), market_price=None)
    csv = "商品编号,商品名称,进货价\nQB50,腾讯Q币 50元,48.50\n"  # the weekly list: no 面值 column
    row = _rows(_staged(admin, "cap_face", csv))["QB50"]
    assert row.action == "update" and row.values["sale_price"] == "50.00" and not row.warnings
    row = _rows(_staged(admin, "markup", csv))["QB50"]
    assert row.values["sale_price"] == "50.93" and _kinds(row) == ["售价高于面值"]
