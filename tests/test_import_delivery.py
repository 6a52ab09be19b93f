"""Delivery the goods need (issue 13): read or inferred per row, changed in bulk in the
preview; buyer-field presets shared by imports, the product form and syncs; the stock
mode follows the delivery."""
import re

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import DeliveryType, ImportRow, Product, StockMode, Supplier, SupplierKind
from kamen.services import delivery
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product
from tests.sync_fixtures import make_supplier, simulator  # noqa: F401
from tests.test_admin_imports import _fresh, _mapping_form, _upload, admin  # noqa: F401
from tests.test_admin_products import FORM
from tests.test_syncing import ours, sync

PHONE, QQ, GAME, EMAIL = (delivery.PRESETS[k].buyer_fields() for k in ("phone", "qq", "game", "email"))

MIXED = ("商品编号,商品名称,类目,进货价,库存\n"
         "HF100,移动话费 100元 快充,话费充值,97.50,100\n"
         "QB50,腾讯Q币 50元,游戏点卡,48.50,100\n"
         "WY10,网易一卡通 10元,游戏点卡,9.60,30\n"
         "WZ60,王者荣耀 60点券,游戏点卡,5.70,500\n"
         "STEAM,Steam 礼品卡 卡密 100元,礼品卡,95.00,8\n")


def _staged(admin, csv, **form):  # noqa: F811
    batch = _upload(admin, csv.encode(), **form)
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    assert response.status_code == 302, response.get_data(as_text=True)
    return _fresh(batch)


def _rows(batch):
    db.session.expire_all()
    return {r.code: r for r in db.session.scalars(sa.select(ImportRow).filter_by(batch_id=batch.id))}


def _commit(admin, batch):  # noqa: F811
    admin.post(f"/admin/imports/{batch.id}/warnings/accept", data={"kind": ""})
    admin.post(f"/admin/imports/{batch.id}/categories", data={"accept_all": "1"})
    admin.post(f"/admin/imports/{batch.id}/commit")
    batch = _fresh(batch)
    assert batch.status == "committed", batch.message
    return {p.code: p for p in db.session.scalars(sa.select(Product))}


def test_delivery_is_inferred_from_name_and_category_and_shown_per_row(admin):  # noqa: F811
    batch = _staged(admin, MIXED)
    rows = _rows(batch)
    assert rows["HF100"].values["delivery_type"] == "topup" and rows["HF100"].values["buyer_fields"] == PHONE
    assert rows["QB50"].values["delivery_type"] == "topup" and rows["QB50"].values["buyer_fields"] == QQ
    assert rows["WZ60"].values["buyer_fields"] == GAME
    assert rows["WY10"].values["delivery_type"] == "card" and rows["WY10"].values["buyer_fields"] == []
    assert rows["STEAM"].values["delivery_type"] == "card"
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "填写：手机号" in page and "填写：QQ号" in page and "填写：游戏账号 + 区服" in page

    got = _commit(admin, batch)
    assert got["HF100"].delivery_type is DeliveryType.TOPUP and got["HF100"].buyer_fields == PHONE
    # The shop's own list: top-up follows the file's stock, card codes count the codes uploaded (none yet).
    assert got["HF100"].stock_mode is StockMode.SYNCED and got["HF100"].stock == 100
    assert got["WY10"].stock_mode is StockMode.CARDS and got["WY10"].stock == 0
    # A customer buying the 话费 is asked for a phone number, checked by its pattern.
    page = admin.get(f"/p/{got['HF100'].id}").get_data(as_text=True)
    assert "手机号" in page and "11 位手机号" in page


@pytest.mark.parametrize("name, category, expected", [
    ("Steam 钱包充值卡 100元", "", ("card", None)),
    ("App Store 充值卡 100元", "苹果", ("card", None)),
    ("中国移动话费充值卡 100元", "话费", ("card", None)),
    ("网易一卡通 点卡 15元", "", ("card", None)),
    ("中国移动话费 100元 直充", "", ("topup", "phone")),
    ("话费充值卡 100元 代充", "", ("topup", "phone")),
    ("腾讯Q币 10元", "", ("topup", "qq")),
    ("王者荣耀 60点券", "游戏", ("topup", "game")),
])
def test_prepaid_cards_are_card_codes_unless_the_name_says_direct_top_up(name, category, expected):
    """A 充值卡 is a code the buyer redeems: sold as a top-up it would ask for an account
    and forward nothing the buyer can use."""
    from kamen.services.delivery import infer

    got = infer(name, category)
    assert (got.type, got.preset) == expected


def test_delivery_and_account_columns_are_read_when_mapped(admin):  # noqa: F811
    csv = ("商品编号,商品名称,进货价,类型,充值账号格式\n"
           "A1,爱奇艺月卡,15.00,卡密,\n"
           "A2,爱奇艺月卡,15.00,直充,手机号\n"
           "A3,某游戏钻石,30.00,代充,\n"
           "A4,代练服务,50.00,人工,邮箱\n")
    batch = _staged(admin, csv)
    assert {m["header"]: m["key"] for m in batch.match_info}["类型"] == "delivery_type"
    got = _commit(admin, batch)
    assert (got["A1"].delivery_type, got["A1"].buyer_fields, got["A1"].stock_mode) == (
        DeliveryType.CARD, [], StockMode.CARDS)
    assert (got["A2"].delivery_type, got["A2"].buyer_fields) == (DeliveryType.TOPUP, PHONE)
    assert got["A3"].delivery_type is DeliveryType.TOPUP and got["A3"].buyer_fields == GAME
    assert (got["A4"].delivery_type, got["A4"].buyer_fields) == (DeliveryType.MANUAL, EMAIL)
    # No stock figure for top-up from the shop's own list: unlimited.
    assert got["A2"].stock_mode is StockMode.UNLIMITED


def test_goods_of_an_api_supplier_follow_its_stock(admin):  # noqa: F811
    main = Supplier(code="main", name="主站", kind=SupplierKind.KAMEN)
    db.session.add(main)
    db.session.commit()
    batch = _staged(admin, MIXED, supplier_id=str(main.id))
    got = _commit(admin, batch)
    assert got["WY10"].stock_mode is StockMode.SYNCED and got["WY10"].stock == 30  # the 主站 sends the codes


def test_delivery_changed_in_bulk_for_ticked_rows_or_by_name(admin):  # noqa: F811
    batch = _staged(admin, MIXED)
    rows = _rows(batch)
    response = admin.post(f"/admin/imports/{batch.id}/delivery", htmx=True, data={
        "scope": "selected", "row": [str(rows["WY10"].id), str(rows["STEAM"].id)], "delivery_type": "topup",
        "preset": "email"})
    assert response.status_code == 302
    rows = _rows(batch)
    assert rows["WY10"].values["delivery_type"] == "topup" and rows["WY10"].values["buyer_fields"] == EMAIL
    assert rows["STEAM"].values["buyer_fields"] == EMAIL and rows["QB50"].values["buyer_fields"] == QQ
    # All rows whose name has 一卡通: back to card codes.
    admin.post(f"/admin/imports/{batch.id}/delivery", data={
        "scope": "all", "name_contains": "一卡通", "delivery_type": "card", "preset": ""})
    rows = _rows(batch)
    assert rows["WY10"].values["delivery_type"] == "card" and rows["STEAM"].values["delivery_type"] == "topup"
    # Top-up without saying what the buyer fills in is refused, nothing changes.
    page = admin.post(f"/admin/imports/{batch.id}/delivery", follow_redirects=True, data={
        "scope": "all", "delivery_type": "topup", "preset": ""}).get_data(as_text=True)
    assert "需要选择买家填写什么" in page and _rows(batch)["WY10"].values["delivery_type"] == "card"
    got = _commit(admin, batch)
    assert got["STEAM"].buyer_fields == EMAIL and got["WY10"].delivery_type is DeliveryType.CARD


def test_a_reimport_keeps_the_delivery_of_existing_goods(admin):  # noqa: F811
    supplier = default_supplier(db.session)
    make_product(code="QB50", name="腾讯Q币 50元", supplier_id=supplier.id, delivery_type=DeliveryType.CARD,
                 stock_mode=StockMode.SYNCED, buyer_fields=[])
    batch = _staged(admin, MIXED)
    row = _rows(batch)["QB50"]
    assert row.action == "update" and "delivery_type" not in row.values and "buyer_fields" not in row.values


def test_product_form_picks_presets_instead_of_typing_patterns(admin):  # noqa: F811
    supplier_id = str(default_supplier(db.session).id)
    data = {**FORM, "supplier_id": supplier_id, "delivery_type": "topup", "buyer_fields": "",
            "buyer_presets": ["game"]}
    assert admin.post("/admin/products/new", data=data).status_code == 302
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW-1"))
    assert product.buyer_fields == GAME
    page = admin.get(f"/admin/products/{product.id}/edit").get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="game"', page) and not re.search(r'<input checked[^>]*value="qq"', page)
    # Two presets that both ask for the account are refused with the reason.
    data = {**data, "code": "NEW-2", "buyer_presets": ["phone", "qq"]}
    response = admin.post("/admin/products/new", data=data)
    assert response.status_code == 400 and "只能选一个" in response.get_data(as_text=True)
    # A preset and the admin's own extra line.
    data = {**data, "buyer_presets": ["qq"], "buyer_fields": "note|备注"}
    assert admin.post("/admin/products/new", data=data).status_code == 302
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW-2"))
    assert product.buyer_fields == QQ + [{"key": "note", "label": "备注", "pattern": "", "hint": ""}]


def test_synced_top_up_without_fields_asks_for_what_its_name_implies(app, simulator):  # noqa: F811
    simulator.overrides["1002"] = {"fields": None}  # a 主站 that describes no buyer fields
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    got = ours(supplier)
    assert got["1002"].delivery_type is DeliveryType.TOPUP  # 话费充值
    assert got["1002"].buyer_fields == PHONE
    assert got["1001"].buyer_fields == []  # card codes: nothing to fill in


def test_a_stale_preset_is_refused_in_chinese(admin):  # noqa: F811
    data = {**FORM, "supplier_id": str(default_supplier(db.session).id), "buyer_presets": ["wechat"]}
    response = admin.post("/admin/products/new", data=data)
    assert response.status_code == 400 and "买家填写项选择无效" in response.get_data(as_text=True)
