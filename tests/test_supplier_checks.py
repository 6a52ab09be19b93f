"""Supplier settings that guard money and safety (issue 12): balances and their
alert, the Fulu reply-sign switch, the manual re-check interval."""
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Supplier, SupplierKind
from tests.sync_fixtures import make_supplier
from tests.test_syncing import notifications, sync

KINDS = [SupplierKind.KAMEN, SupplierKind.FULU, SupplierKind.ACGFAKA]


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("balance, shown", [(Decimal("0"), "¥0.00"), (Decimal("1234.5"), "¥1,234.50")])
def test_test_connection_shows_the_balance_in_yuan_and_fen(app, simulator, admin, kind, balance, shown):
    simulator.balance = balance
    supplier = make_supplier(simulator, kind=kind)
    page = admin.post(f"/admin/suppliers/{supplier.id}/test", htmx=True).get_data(as_text=True)
    assert "连接成功" in page and f"余额 {shown}" in page


@pytest.mark.parametrize("kind", KINDS)
def test_a_balance_under_the_suppliers_threshold_alerts_once_until_it_recovers(app, simulator, kind):
    supplier = make_supplier(simulator, kind=kind, balance_alert_below=Decimal("100"))
    simulator.balance = Decimal("99.99")
    sync(supplier)
    sync(supplier)
    [alert] = notifications("low_balance")
    assert alert.title == "货源余额不足：模拟货源" and "当前余额 ¥99.99，低于告警线 ¥100.00" in alert.body

    simulator.balance = Decimal("500")
    sync(supplier)
    simulator.balance = Decimal("5")
    sync(supplier)
    assert len(notifications("low_balance")) == 2


def test_no_threshold_no_balance_call(app, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA)
    simulator.balance = Decimal("0")
    sync(supplier)
    assert notifications("low_balance") == []
    assert not any("connect" in path for _, path, *_ in simulator.requests)


def test_fulu_reply_sign_switch_is_per_supplier(app, simulator):
    simulator.bad_reply_sign = True
    strict = make_supplier(simulator, kind=SupplierKind.FULU)
    run = sync(strict)
    assert run.status == "failed" and "签名不正确" in run.message
    lenient = make_supplier(simulator, kind=SupplierKind.FULU, code="lenient", verify_reply_sign=False)
    assert sync(lenient).status == "succeeded"


MANUAL = {
    "name": "表格货源", "code": "sheet", "kind": "manual", "base_url": "", "app_id": "", "secret": "",
    "markup_percent": "10", "markup_fixed": "0", "markup_step": "0.01", "min_margin": "0",
    "default_category_id": "0", "sync_interval_minutes": "0", "nightly_sync_at": "", "auto_delist_at_zero": "y",
    "recheck_hours": "8", "is_active": "y", "price_jump_percent": "30", "verify_reply_sign": "y",
}


def test_a_recheck_interval_of_zero_hours_is_refused(app, admin):
    response = admin.post("/admin/suppliers/new", data={**MANUAL, "recheck_hours": "0"})
    assert response.status_code == 400 and "核对提醒间隔至少 1 小时" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Supplier).filter_by(code="sheet")) is None
    assert admin.post("/admin/suppliers/new", data=MANUAL).status_code == 302


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_price_jump_limit_must_be_positive(app, admin, value):
    response = admin.post("/admin/suppliers/new", data={**MANUAL, "price_jump_percent": value})
    assert response.status_code == 400 and db.session.scalar(sa.select(Supplier).filter_by(code="sheet")) is None
