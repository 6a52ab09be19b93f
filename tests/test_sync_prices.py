"""Sync pricing guards (issue 12): a cost that jumps past the supplier's limit is
held as 价格待确认 instead of repricing, announced once per run, and settled by
the admin in the review list."""
from decimal import Decimal

import pytest

from kamen.extensions import db
from kamen.models import SupplierKind
from tests.sync_fixtures import make_supplier
from tests.test_syncing import change_upstream, notifications, ours, sync


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _listed(simulator, **fields):
    """A supplier (markup 5%) whose five products are listed at known costs: 97.00 and 29.10 first."""
    simulator.products["1001"].price = Decimal("97.00")
    simulator.products["1002"].price = Decimal("29.10")
    supplier = make_supplier(simulator, auto_list=True, **fields)
    sync(supplier)
    return supplier


def test_a_300_percent_rise_and_a_99_percent_fall_are_held_not_applied(app, simulator):
    supplier = _listed(simulator)
    before = ours(supplier)
    change_upstream(simulator, "1001", price=Decimal("300.00"))
    change_upstream(simulator, "1002", price=Decimal("0.01"))
    change_upstream(simulator, "1003", price=Decimal("12.00"))  # +4.3% from 11.50: applied

    run = sync(supplier, "incremental")

    got = ours(supplier)
    rise, fall, small = got["1001"], got["1002"], got["1003"]
    assert (rise.cost_price, rise.sale_price, rise.pending_cost) == (
        Decimal("97.00"), before["1001"].sale_price, Decimal("300.00"))
    assert not rise.is_listed  # 101.85 would sell below the new cost of 300.00
    assert (fall.cost_price, fall.sale_price, fall.pending_cost) == (
        Decimal("29.10"), before["1002"].sale_price, Decimal("0.01"))
    assert fall.is_listed  # still above the new cost: keeps selling at the old price
    assert (small.cost_price, small.sale_price, small.pending_cost) == (Decimal("12.00"), Decimal("12.60"), None)
    assert (run.changed, run.delisted) == (3, 1)

    [alert] = notifications("price_held")
    assert "2 个商品" in alert.title and "30%" in alert.title
    assert "¥97.00 → ¥300.00" in alert.body and "已下架" in alert.body
    assert "¥29.10 → ¥0.01" in alert.body and "仍按原售价 ¥30.56 销售" in alert.body

    # The same held price on the next run: nothing new to say, nothing relisted.
    run = sync(supplier, "full")
    assert len(notifications("price_held")) == 1
    assert not ours(supplier)["1001"].is_listed and run.changed == 0


def test_the_limit_is_per_supplier(app, simulator):
    supplier = _listed(simulator, price_jump_percent=Decimal("250"))
    change_upstream(simulator, "1001", price=Decimal("300.00"))  # +209%
    change_upstream(simulator, "1003", price=Decimal("40.00"))  # +248%
    change_upstream(simulator, "1004", price=Decimal("44.00"))  # +252%
    sync(supplier, "incremental")
    got = ours(supplier)
    assert (got["1001"].cost_price, got["1001"].pending_cost, got["1001"].sale_price) == (
        Decimal("300.00"), None, Decimal("315.00"))
    assert (got["1003"].cost_price, got["1003"].pending_cost) == (Decimal("40.00"), None)
    assert (got["1004"].cost_price, got["1004"].pending_cost) == (Decimal("12.50"), Decimal("44.00"))


def test_a_cost_back_to_normal_clears_the_hold_and_relists(app, simulator):
    supplier = _listed(simulator)
    change_upstream(simulator, "1001", price=Decimal("300.00"))
    sync(supplier, "incremental")
    change_upstream(simulator, "1001", price=Decimal("98.00"))
    sync(supplier, "incremental")
    got = ours(supplier)["1001"]
    assert (got.pending_cost, got.cost_price, got.is_listed) == (None, Decimal("98.00"), True)


def test_a_price_with_more_decimals_is_not_a_change_on_every_sync(app, simulator):
    simulator.products["1001"].price = Decimal("9.505")
    supplier = make_supplier(simulator, kind=SupplierKind.FULU, auto_list=True)
    sync(supplier)
    assert ours(supplier)["1001"].cost_price == Decimal("9.51")
    run = sync(supplier, "full")
    assert (run.changed, run.unchanged) == (0, 5)


def test_admin_accepts_one_and_rejects_the_rest(app, simulator, admin):
    supplier = _listed(simulator)
    change_upstream(simulator, "1001", price=Decimal("300.00"))
    change_upstream(simulator, "1002", price=Decimal("0.01"))
    change_upstream(simulator, "1003", price=Decimal("50.00"))
    sync(supplier, "incremental")
    held = ours(supplier)

    page = admin.get(f"/admin/suppliers/{supplier.id}/review").get_data(as_text=True)
    assert "价格待确认" in page and "¥97.00 → ¥300.00" in page and "¥315.00" in page  # price if accepted
    assert "onclick" not in page
    assert f">{3}<" in admin.get("/admin/suppliers").get_data(as_text=True)  # waiting in the list

    r = admin.post(f"/admin/suppliers/{supplier.id}/review",
                   data={"action": "accept_price", "price_ids": [str(held["1001"].id)]})
    assert r.status_code == 302
    got = ours(supplier)["1001"]
    assert (got.cost_price, got.sale_price, got.pending_cost, got.is_listed) == (
        Decimal("300.00"), Decimal("315.00"), None, True)

    admin.post(f"/admin/suppliers/{supplier.id}/review", data={"action": "reject_all_prices"})
    got = ours(supplier)
    fall, rise = got["1002"], got["1003"]
    # Rejected: the old sale price stays; the new cost is recorded so it is not asked again.
    assert (fall.cost_price, fall.sale_price, fall.pending_cost, fall.is_listed) == (
        Decimal("0.01"), held["1002"].sale_price, None, True)
    assert (rise.cost_price, rise.sale_price, rise.is_listed, rise.auto_delisted) == (
        Decimal("50.00"), held["1003"].sale_price, False, False)  # would sell at a loss: stays off sale
    run = sync(supplier, "full")
    assert run.changed == 0 and not ours(supplier)["1003"].is_listed


def test_resolving_twice_is_refused_without_a_change(app, simulator, admin):
    supplier = _listed(simulator)
    change_upstream(simulator, "1001", price=Decimal("300.00"))
    sync(supplier, "incremental")
    pid = str(ours(supplier)["1001"].id)
    admin.post(f"/admin/suppliers/{supplier.id}/review", data={"action": "reject_price", "price_ids": [pid]})
    r = admin.post(f"/admin/suppliers/{supplier.id}/review", data={"action": "accept_price", "price_ids": [pid]},
                   follow_redirects=True)
    assert "已处理或不存在" in r.get_data(as_text=True)
    db.session.expire_all()
    assert ours(supplier)["1001"].sale_price < Decimal("300")
