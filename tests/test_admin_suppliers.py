"""Suppliers, downstream stations and alert settings in the back office."""
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import DownstreamStation, Notification, Product, Supplier, SupplierKind, SyncRun
from kamen.secretbox import decrypt
from tests.helpers import make_category


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


BASE = {
    "name": "主站 A", "code": "main-a", "kind": "kamen", "base_url": "", "app_id": "", "secret": "",
    "markup_percent": "10", "markup_fixed": "0", "markup_step": "0.01", "min_margin": "0.05",
    "default_category_id": "0", "sync_interval_minutes": "30", "nightly_sync_at": "02:00",
    "auto_delist_at_zero": "y", "recheck_hours": "8", "is_active": "y", "price_jump_percent": "30",
    "verify_reply_sign": "y",
}


def _create(admin, **changes):
    return admin.post("/admin/suppliers/new", data={**BASE, **changes})


def _supplier(code="main-a"):
    db.session.expire_all()
    return db.session.scalar(sa.select(Supplier).filter_by(code=code))


def test_create_supplier_keeps_secret_encrypted_and_masked(admin, main_station):
    response = _create(admin, base_url=main_station["url"], app_id=main_station["app_id"],
                       secret=main_station["secret"])
    assert response.status_code == 302
    supplier = _supplier()
    assert supplier.kind is SupplierKind.KAMEN and supplier.markup_percent == Decimal("10")
    assert main_station["secret"] not in supplier.secret_encrypted
    assert decrypt(supplier.secret_encrypted) == main_station["secret"]
    for url in (f"/admin/suppliers/{supplier.id}", f"/admin/suppliers/{supplier.id}/edit", "/admin/suppliers"):
        assert main_station["secret"] not in admin.get(url).get_data(as_text=True)
    assert "已设置" in admin.get(f"/admin/suppliers/{supplier.id}/edit").get_data(as_text=True)

    # Saving with the secret left blank keeps it.
    data = {**BASE, "base_url": main_station["url"], "app_id": main_station["app_id"], "markup_percent": "12"}
    assert admin.post(f"/admin/suppliers/{supplier.id}/edit", data=data).status_code == 302
    supplier = _supplier()
    assert supplier.markup_percent == Decimal("12")
    assert decrypt(supplier.secret_encrypted) == main_station["secret"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"base_url": ""}, "接口货源必须填写接口地址"),
        ({"base_url": "ftp://x"}, "接口地址应以 http:// 或 https:// 开头"),
        ({"base_url": "http://x", "nightly_sync_at": "25:00"}, "时间格式应为 HH:MM"),
        ({"base_url": "http://x", "code": "Bad Code"}, "货源代号只能包含"),
        ({"base_url": "http://x", "markup_percent": "abc"}, "加价百分比 %格式错误"),
        ({"base_url": "http://x", "sync_interval_minutes": "7"}, "自动同步选择无效"),
    ],
)
def test_supplier_form_rejects_bad_input(admin, changes, message):
    response = _create(admin, **changes)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _supplier() is None


def test_duplicate_supplier_code_is_refused(admin):
    assert _create(admin, kind="manual").status_code == 302
    response = _create(admin, kind="manual", name="另一个")
    assert "货源代号“main-a”已被使用" in response.get_data(as_text=True)


def test_connection_test_shows_balance_or_reason(admin, main_station):
    _create(admin, base_url=main_station["url"], app_id=main_station["app_id"], secret=main_station["secret"])
    supplier = _supplier()
    response = admin.post(f"/admin/suppliers/{supplier.id}/test", htmx=True)
    assert "连接成功" in response.get_data(as_text=True) and "余额 ¥0.00" in response.get_data(as_text=True)
    _create(admin, code="wrong", base_url=main_station["url"], app_id=main_station["app_id"], secret="wrong-secret")
    response = admin.post(f"/admin/suppliers/{_supplier('wrong').id}/test", htmx=True)
    assert "连接失败" in response.get_data(as_text=True) and "签名错误" in response.get_data(as_text=True)


def test_sync_button_runs_and_shows_the_run_then_review_lists_goods(admin, main_station, client):
    _create(admin, base_url=main_station["url"], app_id=main_station["app_id"], secret=main_station["secret"])
    supplier = _supplier()
    response = admin.post(f"/admin/suppliers/{supplier.id}/sync")
    assert response.status_code == 302 and "/runs/" in response.headers["Location"]
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "成功" in page and "新增" in page
    run = db.session.scalar(sa.select(SyncRun))
    assert (run.status, run.created) == ("succeeded", 30)
    partial = admin.hx_get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="sync-run"' in partial and "every 1s" not in partial  # finished: polling stops

    # New goods wait for review, unlisted.
    assert "待审核与分类对应（30）" in admin.get(f"/admin/suppliers/{supplier.id}").get_data(as_text=True)
    pending = db.session.scalars(sa.select(Product).where(Product.supplier_id == supplier.id)).all()
    assert all(p.pending_review and not p.is_listed for p in pending)
    games = make_category("游戏点卡")
    chosen = [p for p in pending if p.code in ("self.QB10", "self.QB30")]
    response = admin.post(
        f"/admin/suppliers/{supplier.id}/review",
        data={"ids": [str(p.id) for p in chosen], "action": "approve", "category_id": str(games.id)},
        follow_redirects=True,
    )
    assert "已上架 2 个商品" in response.get_data(as_text=True)
    db.session.expire_all()
    listed = db.session.scalars(sa.select(Product).where(Product.supplier_id == supplier.id, Product.is_listed)).all()
    assert {p.code for p in listed} == {"self.QB10", "self.QB30"}
    assert all(p.category_id == games.id for p in listed)
    assert "腾讯Q币 10元" in client.get(f"/c/{games.id}").get_data(as_text=True)


def test_map_remote_category_moves_waiting_goods(admin, main_station):
    _create(admin, base_url=main_station["url"], app_id=main_station["app_id"], secret=main_station["secret"])
    supplier = _supplier()
    admin.post(f"/admin/suppliers/{supplier.id}/sync")
    target = make_category("话费")
    page = admin.get(f"/admin/suppliers/{supplier.id}/review").get_data(as_text=True)
    assert "话费充值/中国移动" in page
    admin.post(f"/admin/suppliers/{supplier.id}/review",
               data={"action": "map", "remote_category": "话费充值/中国移动", "category_id": str(target.id)})
    db.session.expire_all()
    moved = db.session.scalars(sa.select(Product).where(Product.remote_category == "话费充值/中国移动")).all()
    assert len(moved) == 3 and all(p.category_id == target.id for p in moved)
    assert _supplier().category_map == {"话费充值/中国移动": target.id}


def test_manual_supplier_cannot_sync_and_can_be_marked_checked(admin):
    _create(admin, kind="manual")
    supplier = _supplier()
    response = admin.post(f"/admin/suppliers/{supplier.id}/sync", follow_redirects=True)
    assert "没有接口可同步" in response.get_data(as_text=True)
    assert "待核对的手工货源" in admin.get("/admin/").get_data(as_text=True)
    admin.post(f"/admin/suppliers/{supplier.id}/checked", data={"back": "dashboard"})
    assert _supplier().last_checked_at is not None
    assert "待核对的手工货源" not in admin.get("/admin/").get_data(as_text=True)


def test_stations_key_is_shown_once_and_balance_adjusts(admin, client):
    response = admin.post("/admin/stations", data={"name": "下级站 1", "markup_percent": "3", "markup_fixed": "0"})
    page = response.get_data(as_text=True)
    station = db.session.scalar(sa.select(DownstreamStation))
    secret = decrypt(station.secret_encrypted)
    assert secret in page and station.app_id in page
    assert secret not in admin.get("/admin/stations").get_data(as_text=True)
    assert secret not in admin.get(f"/admin/stations/{station.id}").get_data(as_text=True)

    admin.post(f"/admin/stations/{station.id}/top-up", data={"amount": "100"})
    response = admin.post(f"/admin/stations/{station.id}/top-up", data={"amount": "-150"}, follow_redirects=True)
    assert "扣减后余额不能为负数" in response.get_data(as_text=True)
    response = admin.post(f"/admin/stations/{station.id}/top-up", data={"amount": "abc"}, follow_redirects=True)
    assert "充值金额格式错误" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DownstreamStation, station.id).balance == Decimal("100.00")

    rotated = admin.post(f"/admin/stations/{station.id}/rotate").get_data(as_text=True)
    db.session.expire_all()
    new_secret = decrypt(db.session.get(DownstreamStation, station.id).secret_encrypted)
    assert new_secret != secret and new_secret in rotated


def test_alert_settings_keep_secrets_and_test_alert_lands_on_dashboard(admin):
    data = {"webhook_kind": "", "webhook_url": "", "dingtalk_secret": "SECabc", "email_to": "",
            "smtp_host": "", "smtp_port": "465", "smtp_user": "", "smtp_password": "p@ss", "smtp_ssl": "y",
            "sync_failure_alert_after": "3"}
    assert admin.post("/admin/settings/alerts", data=data).status_code == 302
    page = admin.get("/admin/settings/alerts").get_data(as_text=True)
    assert "SECabc" not in page and "p@ss" not in page and "已设置" in page
    response = admin.post("/admin/settings/alerts", data={**data, "webhook_url": "not a url"})
    assert response.status_code == 400 and "Webhook 地址应以" in response.get_data(as_text=True)

    admin.post("/admin/settings/alerts/test")
    assert db.session.scalar(sa.select(Notification.title)) == "测试告警"
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert "测试告警" in dashboard
    admin.post("/admin/notifications/read")
    assert "测试告警" not in admin.get("/admin/").get_data(as_text=True)


def test_sync_supplier_command(runner, main_station):
    from kamen.secretbox import encrypt

    db.session.add(Supplier(code="up", name="主站", kind=SupplierKind.KAMEN, base_url=main_station["url"],
                            app_id=main_station["app_id"], secret_encrypted=encrypt(main_station["secret"])))
    db.session.commit()
    result = runner.invoke(args=["sync-supplier", "up"])
    assert result.exit_code == 0, result.output
    assert "succeeded: 读取 30，新增 30" in result.output
    result = runner.invoke(args=["sync-supplier", "up", "--incremental"])
    assert "新增 0，变更 0，无变化 30" in result.output  # re-read within the overlap, nothing written
    result = runner.invoke(args=["sync-supplier", "nope"])
    assert result.exit_code != 0 and "没有代号为 nope 的货源" in result.output


def test_nightly_sync_can_be_switched_off(admin):
    assert _create(admin, base_url="http://x", nightly_sync_at="").status_code == 302
    assert _supplier().nightly_sync_at is None
