"""The sync run's summary adds up and its alerts say what happened (issue 12)."""
from decimal import Decimal

from kamen.models import SupplierKind
from tests.suppliers.simulator import MISSING
from tests.sync_fixtures import make_supplier
from tests.test_syncing import change_upstream, notifications, ours, sync


def test_every_delisting_is_counted_and_failed_matches_the_error_rows(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    change_upstream(simulator, "1001", stock=0)  # sold out upstream
    change_upstream(simulator, "1002", on_sale=False)  # unavailable (kamen lists it as available: false)
    simulator.products.pop("1003")  # gone
    simulator.overrides = {"1004": {"price": "-1"}}  # rejected, kept listed

    run = sync(supplier, "full")

    assert run.status == "succeeded"
    assert run.delisted == 3
    assert run.failed == len(run.errors) == 1
    assert run.seen == run.created + run.changed + run.unchanged + run.failed == 4
    got = ours(supplier)
    assert [c for c, p in sorted(got.items()) if not p.is_listed] == ["1001", "1002", "1003"]


def test_a_failed_run_says_why_in_one_line_and_lists_no_fake_product_error(app, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA)
    simulator.acg_app_key = "FFFFFFFFFFFFFFFF"
    run = sync(supplier)
    assert run.status == "failed"
    assert "\n" not in run.message and "密钥错误" in run.message
    assert run.failed == len(run.errors) == 0


def test_a_low_product_that_sells_out_gets_a_sold_out_line(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    change_upstream(simulator, "1001", stock=3)
    sync(supplier, "incremental")
    assert len(notifications("low_stock")) == 1

    change_upstream(simulator, "1001", stock=0)
    change_upstream(simulator, "1002", stock=2)
    sync(supplier, "incremental")

    alerts = notifications("low_stock")
    assert len(alerts) == 2
    assert alerts[1].title == "库存预警：模拟货源 有 1 个商品库存不足、1 个商品售罄"
    assert alerts[1].body.splitlines() == ["测试商品1（1001）已售罄（库存 3 → 0）", "测试商品2（1002）库存 2，阈值 10"]

    sync(supplier, "full")  # still sold out: said once
    assert len(notifications("low_stock")) == 2


def test_the_summary_page_shows_the_counts(app, simulator, auth):
    auth.login()
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    change_upstream(simulator, "1001", price=Decimal("99.00"))
    simulator.overrides = {"1002": {"name": MISSING}}
    run = sync(supplier, "full")
    page = auth.client.get(f"/admin/suppliers/{supplier.id}/runs/{run.id}").get_data(as_text=True)
    assert "价格待确认" in page and "缺少字段“name”" in page
