"""What a synced product carries besides its price (issue 12): the supplier's
buyer fields and categories."""

from kamen.extensions import db
from kamen.models import SupplierKind
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
