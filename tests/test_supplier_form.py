"""The supplier form speaks each kind's language, and 测试连接 names the likely mistake (issue 12)."""
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from kamen.extensions import db
from kamen.models import Supplier, SupplierKind
from kamen.secretbox import decrypt
from tests.browser import admin_login
from tests.sync_fixtures import make_supplier
from tests.test_supplier_checks import MANUAL


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _acg(simulator, **changes):
    return {**MANUAL, "kind": "acgfaka", "code": "acg", "base_url": simulator.url, "app_id": simulator.acg_app_id,
            **changes}


def test_labels_follow_the_kind(app, admin, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA)
    page = admin.get(f"/admin/suppliers/{supplier.id}/edit").get_data(as_text=True)
    assert ">用户ID</label>" in page and ">对接密钥</label>" in page and "16 位对接密钥" in page
    fulu = make_supplier(simulator, kind=SupplierKind.FULU)
    page = admin.get(f"/admin/suppliers/{fulu.id}/edit").get_data(as_text=True)
    assert ">AppKey</label>" in page and ">AppSecret</label>" in page
    page = admin.get("/admin/suppliers/new").get_data(as_text=True)
    assert ">AppID</label>" in page and "data-kind-texts=" in page and "onchange" not in page


def test_acg_faka_key_is_trimmed_and_upper_cased(app, admin, simulator):
    response = admin.post("/admin/suppliers/new", data=_acg(simulator, secret=" 0123456789abcdef \n"))
    assert response.status_code == 302
    supplier = db.session.scalar(sa.select(Supplier).filter_by(code="acg"))
    assert decrypt(supplier.secret_encrypted) == "0123456789ABCDEF"
    result = admin.post(f"/admin/suppliers/{supplier.id}/test", htmx=True).get_data(as_text=True)
    assert "连接成功" in result


@pytest.mark.parametrize("changes, message", [
    ({"secret": "0123456789ABCDE"}, "16 位"),
    ({"secret": "0123456789ABCDEZ"}, "16 位"),
    ({"app_id": "abc", "secret": "0123456789ABCDEF"}, "用户ID应为数字"),
])
def test_a_malformed_acg_faka_credential_is_refused_before_saving(app, admin, simulator, changes, message):
    response = admin.post("/admin/suppliers/new", data=_acg(simulator, **changes))
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Supplier).filter_by(code="acg")) is None


@pytest.mark.parametrize("kind, change, hint", [
    (SupplierKind.ACGFAKA, {"app_id": "999"}, "用户ID不对"),
    (SupplierKind.ACGFAKA, {"secret": "FFFFFFFFFFFFFFFF"}, "对接密钥不对"),
    (SupplierKind.FULU, {"app_id": "nobody"}, "AppKey 不对"),
    (SupplierKind.FULU, {"secret": "f" * 32}, "AppSecret 不对"),
    (SupplierKind.KAMEN, {"secret": "wrong"}, "密钥不对"),
    (SupplierKind.KAMEN, {"app_id": "ks-nobody"}, "AppID 不对"),
    (SupplierKind.KAMEN, {"base_url": "http://127.0.0.1:9"}, "地址写错"),
])
def test_test_connection_names_the_likely_mistake(app, admin, simulator, kind, change, hint):
    from kamen.secretbox import encrypt

    fields = {k: v for k, v in change.items() if k != "secret"}
    if "secret" in change:
        fields["secret_encrypted"] = encrypt(change["secret"])
    supplier = make_supplier(simulator, kind=kind, **fields)
    result = admin.post(f"/admin/suppliers/{supplier.id}/test", htmx=True).get_data(as_text=True)
    assert "连接失败" in result and f"可能原因：{hint}" in result


@pytest.mark.backends("sqlite")
def test_switching_the_kind_relabels_the_fields_in_the_browser(auth, live_server, page):
    auth.create()
    admin_login(page, live_server)
    page.goto(f"{live_server}/admin/suppliers/new")
    expect(page.locator('label[for="app_id"]')).to_have_text("AppID")
    page.get_by_label("对接方式").select_option("acgfaka")
    expect(page.locator('label[for="app_id"]')).to_have_text("用户ID")
    expect(page.locator('label[for="secret"]')).to_have_text("对接密钥")
    page.get_by_label("对接方式").select_option("fulu")
    expect(page.locator('label[for="secret"]')).to_have_text("AppSecret")
