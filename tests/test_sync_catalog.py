"""What a synced product carries besides its price (issue 12): the supplier's
buyer fields and categories."""

from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Category, SupplierKind
from tests.helpers import make_category
from tests.suppliers.simulator import SimProduct
from tests.sync_fixtures import make_supplier
from tests.test_syncing import ours, sync


def test_acg_faka_widget_fields_reach_the_product_page(app, simulator, auth):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA, auto_list=True)
    sync(supplier)
    topup = ours(supplier)["1002"]
    assert topup.buyer_fields == [
        {"key": "game_account", "label": "游戏账号", "pattern": "^[A-Za-z0-9_]{4,20}$", "hint": "请输入游戏账号"},
        {"key": "server", "label": "区服", "pattern": "", "hint": "如 微信1区"},
    ]
    page = auth.client.get(f"/p/{topup.id}").get_data(as_text=True)
    assert "游戏账号（请输入游戏账号）" in page and "区服（如 微信1区）" in page and "充值账号" not in page

    auth.login()
    form = auth.client.get(f"/admin/products/{topup.id}/edit").get_data(as_text=True)
    assert "game_account|游戏账号|^[A-Za-z0-9_]{4,20}$|请输入游戏账号" in form


def test_a_product_synced_with_the_generic_field_gets_the_suppliers_fields(app, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA, auto_list=True)
    sync(supplier)
    product = ours(supplier)["1002"]
    product.buyer_fields = [{"key": "account", "label": "充值账号", "pattern": "", "hint": ""}]
    db.session.commit()

    run = sync(supplier, "full")

    assert run.changed == 1
    assert [f["key"] for f in ours(supplier)["1002"].buyer_fields] == ["game_account", "server"]
    assert sync(supplier, "full").changed == 0


def test_fulu_template_fields_become_buyer_fields(app, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.FULU, auto_list=True)
    sync(supplier)
    assert ours(supplier)["1002"].buyer_fields == [
        {"key": "charge_account", "label": "充值手机号", "pattern": r"^1[3-9]\d{9}$", "hint": "11 位手机号"}]
    assert ours(supplier)["1001"].buyer_fields == []


def test_auto_listed_goods_land_in_a_category_of_the_same_name(app, simulator):
    tencent = make_category("腾讯", parent=make_category("游戏点卡"))
    supplier = make_supplier(simulator, auto_list=True)  # no default category, no map
    sync(supplier)
    got = ours(supplier)
    assert got["1001"].is_listed and got["1001"].category_id == tencent.id  # 游戏点卡/腾讯
    assert got["1002"].category_id is None  # 话费充值: nothing of that name yet


def test_create_the_suppliers_categories_two_level_and_apply_them(app, simulator, auth):
    auth.login()
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    assert all(p.category_id is None for p in ours(supplier).values())
    page = auth.client.get(f"/admin/suppliers/{supplier.id}/review").get_data(as_text=True)
    assert "游戏点卡/腾讯（3 个商品，3 个未分类）" in page

    r = auth.client.post(f"/admin/suppliers/{supplier.id}/review", data={"action": "create_categories"})
    assert r.status_code == 302

    db.session.expire_all()
    tencent = db.session.scalar(sa.select(Category).filter_by(name="腾讯"))
    assert tencent.parent.name == "游戏点卡" and tencent.parent.parent_id is None
    phone = db.session.scalar(sa.select(Category).filter_by(name="话费充值"))
    assert phone.parent_id is None
    got = ours(supplier)
    assert {c: p.category_id for c, p in got.items()} == {
        "1001": tencent.id, "1002": phone.id, "1003": tencent.id, "1004": phone.id, "1005": tencent.id}
    assert db.session.get(type(supplier), supplier.id).category_map == {"游戏点卡/腾讯": tencent.id, "话费充值": phone.id}

    # A new product of a mapped remote category arrives in it; doing it again creates nothing.
    simulator.products["1006"] = SimProduct(code="1006", name="新商品", price=Decimal("5"), face_value=Decimal("5"),
                                            category=("游戏点卡", "腾讯"))
    sync(supplier)
    assert ours(supplier)["1006"].category_id == tencent.id
    auth.client.post(f"/admin/suppliers/{supplier.id}/review", data={"action": "create_categories"})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Category)) == 3


def test_a_saved_map_moves_every_product_of_that_remote_category(app, simulator, auth):
    auth.login()
    target = make_category("话费")
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    auth.client.post(f"/admin/suppliers/{supplier.id}/review",
                     data={"action": "map", "remote_category": "话费充值", "category_id": str(target.id)})
    got = ours(supplier)
    assert [c for c, p in sorted(got.items()) if p.category_id == target.id] == ["1002", "1004"]


def test_goods_left_without_a_category_are_placed_by_a_later_sync_not_moved_once_placed(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    assert ours(supplier)["1002"].category_id is None
    phone = make_category("话费充值")
    chosen = make_category("我的分类")
    product = ours(supplier)["1004"]
    product.category_id = chosen.id  # the admin placed this one by hand
    db.session.commit()

    run = sync(supplier, "full")

    got = ours(supplier)
    assert got["1002"].category_id == phone.id and got["1004"].category_id == chosen.id
    assert run.changed == 1
