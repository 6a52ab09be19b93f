"""上线测试 (issue 14): samples across categories and price bands, the real product
page checked against the record, test orders paid on the demo gateway and timed."""
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import AttemptStatus, DeliveryType, LaunchCheck, LaunchRun, Order, OrderStatus, Product, StockMode, SupplierKind
from kamen.services import forwarding, launch_test, ordering, settings
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow
from tests.helpers import make_category, make_product
from tests.test_job_sweeper import CLOSED_PORT, redis_back, redis_down  # noqa: F401 (a fixture)
from tests.order_helpers import make_card_product
from tests.suppliers.simulator import SimProduct
from tests.forwarding_helpers import CARD_CODE, attempts, fulu_supplier, placed, supplier_product  # noqa: F401
from tests.sync_fixtures import make_supplier
from tests.test_syncing import sync


@pytest.fixture
def demo_pay(app):
    """The built-in demo gateway switched on, and the order clock in the test's hands."""
    clock = {"now": utcnow()}
    app.config.update(DEMO_GATEWAY=True, DEMO_GATEWAY_PID="1001", DEMO_GATEWAY_KEY="launch-test-key-1",
                      ORDER_CLOCK=lambda: clock["now"])
    return clock


def checks(run):
    db.session.expire_all()
    rows = db.session.scalars(sa.select(LaunchCheck).where(LaunchCheck.run_id == run.id).order_by(LaunchCheck.id))
    return {c.product_name: c for c in rows}


def fresh(run):
    db.session.expire_all()
    return db.session.get(LaunchRun, run.id)


def test_samples_cover_every_category_and_price_band(app):
    games, phone = make_category("游戏点卡"), make_category("话费充值")
    tencent = make_category("腾讯", parent=games)
    cheap = [make_product(tencent, name=f"Q币 {n}元", sale_price=Decimal(n), cost_price=Decimal(n) - 1,
                          sales_count=n) for n in (2, 5)]
    mid = make_product(games, name="点券 30元", sale_price=Decimal("30"), cost_price=Decimal("29"))
    bills = [make_product(phone, name=f"话费 {n}元", sale_price=Decimal(n), cost_price=Decimal(n) - 1) for n in (50, 100, 300)]
    chosen = make_product(phone, name="话费 60元", sale_price=Decimal("60"), cost_price=Decimal("59"))
    ids = [p.id for p in cheap + [mid] + bills]
    picks = launch_test.sample(db.session, ids, chosen_ids=[chosen.id, bills[0].id])
    assert [(p.product_id, p.why) for p in picks] == [
        (cheap[1].id, "游戏点卡 · 10 元以下"),  # the better seller of the two in its band
        (mid.id, "游戏点卡 · 10-50 元"),
        (bills[0].id, "话费充值 · 50-200 元"),
        (bills[2].id, "话费充值 · 200 元以上"),
        (chosen.id, "管理员指定"),
    ]


def test_synced_goods_with_a_wrong_price_fail_and_come_off_sale(app, simulator):
    make_category("游戏点卡")
    simulator.products["1001"] = SimProduct(code="1001", name="腾讯Q币 5元", price=Decimal("4.80"),
                                            face_value=Decimal("5"), category=("游戏点卡",))
    # The supplier's list has a typo: 28.80 for a 10-yuan card.
    simulator.products["1003"] = SimProduct(code="1003", name="网易一卡通 10元", price=Decimal("28.80"),
                                            face_value=Decimal("10"), category=("游戏点卡",))
    simulator.products["1004"] = SimProduct(code="1004", name="移动话费 100元", price=Decimal("97.00"),
                                            face_value=Decimal("100"), category=("游戏点卡",), stock=20)
    supplier = make_supplier(simulator, kind=SupplierKind.KAMEN, auto_list=True)
    sync_run = sync(supplier)
    simulator.products["1004"].stock = 0  # sold out upstream since the sync
    run = launch_test.start(db.session, "同步", launch_test.products_of_sync(db.session, sync_run.id))
    run = fresh(run)
    assert (run.status, run.total, run.done) == ("done", run.total, run.total)
    got = checks(run)
    wrong = got["网易一卡通 10元"]
    assert wrong.status == "failed"
    assert any("比面值 ¥10.00 高出 30% 以上" in p for p in wrong.problems), wrong.problems
    good = got["腾讯Q币 5元"]
    assert good.status == "passed", good.problems
    assert any("商品页：价格" in n for n in good.notes)
    assert any("由货源发货：本次未同意向货源真实下单" in n for n in good.notes)
    assert "货源当前有货" in good.notes
    assert got["移动话费 100元"].problems == ["库存不对：商城显示有货（库存 20），货源“模拟货源”当前缺货"]
    products = {p.name: p for p in db.session.scalars(sa.select(Product))}
    assert not products["网易一卡通 10元"].is_listed and products["腾讯Q币 5元"].is_listed
    assert run.delisted == 2 and run.failed == 2
    assert products["腾讯Q币 5元"].view_count == 0  # the test's page loads are not customer views


def test_a_page_that_shows_another_price_than_the_record_fails(app, client):
    product = make_product(name="爱奇艺月卡", sale_price=Decimal("19.90"), cost_price=Decimal("17.00"),
                           face_value=Decimal("20"), description="自动发货，兑换码 30 天有效")
    stale = client.get(f"/p/{product.id}").get_data(as_text=True)  # as a cache kept it
    product.sale_price = Decimal("18.50")
    db.session.commit()
    problems, notes = [], []
    launch_test._check_page(product, lambda _pid: (200, stale), problems, notes, 10)
    assert problems == ["商品页价格不对：页面显示 ¥19.90，应为 ¥18.50"]
    problems = []
    launch_test._check_page(product, lambda pid: (200, client.get(f"/p/{pid}").get_data(as_text=True)), problems, notes, 10)
    assert problems == [] and "说明均与后台一致" in notes[-1]


def test_a_test_order_is_paid_on_the_demo_gateway_delivered_timed_and_refunded(app, demo_pay):
    cards = make_card_product(codes=3, name="网易一卡通 50元", sale_price=Decimal("48.80"),
                              cost_price=Decimal("47.50"), face_value=Decimal("50"), delivery_minutes=5)
    run = launch_test.start(db.session, "手动选择", chosen_ids=[cards.id])
    check = checks(run)["网易一卡通 50元"]
    assert check.status == "passed", check.problems
    assert check.delivery_seconds == 0 and check.promised_minutes == 5
    order = db.session.get(Order, check.order_id)
    assert order.status is OrderStatus.REFUNDED and order.paid_amount == Decimal("48.80")
    assert order.channel.name == "演示支付（不会真实扣款）"
    assert fresh(run).status == "done"
    # The test order is not revenue.
    from kamen.services import merchandising
    assert merchandising.report(db.session).by_category == []


def test_a_slow_delivery_fails_after_the_promised_minutes(app, demo_pay):
    own = default_supplier(db.session)
    slow = make_product(name="代充会员 人工发货", supplier_id=own.id, delivery_type=DeliveryType.MANUAL,
                        stock_mode=StockMode.UNLIMITED, stock=0, delivery_minutes=5,
                        sale_price=Decimal("20.00"), cost_price=Decimal("15.00"))
    quick = make_product(name="代充会员 快速", supplier_id=own.id, delivery_type=DeliveryType.MANUAL,
                         stock_mode=StockMode.UNLIMITED, stock=0, delivery_minutes=5,
                         sale_price=Decimal("20.00"), cost_price=Decimal("15.00"))
    run = launch_test.start(db.session, "手动选择", chosen_ids=[slow.id, quick.id])
    assert fresh(run).status == "waiting"
    assert {c.status for c in checks(run).values()} == {"delivering"}
    paid_at = demo_pay["now"]

    demo_pay["now"] = paid_at + timedelta(minutes=2)
    ordering.deliver_by_hand(db.session, checks(run)["代充会员 快速"].order_id, "已充值到账")
    launch_test.poll(db.session, now=paid_at + timedelta(minutes=3))
    got = checks(run)
    assert got["代充会员 快速"].status == "passed" and got["代充会员 快速"].delivery_seconds == 120
    assert got["代充会员 人工发货"].status == "delivering" and fresh(run).status == "waiting"

    launch_test.poll(db.session, now=paid_at + timedelta(minutes=6))
    late = checks(run)["代充会员 人工发货"]
    assert late.status == "failed"
    assert late.problems == ["到账太慢：承诺 5 分钟内到账，付款 6 分 0 秒 后仍未到账"]
    run = fresh(run)
    assert (run.status, run.passed, run.failed, run.delisted) == ("done", 1, 1, 1)
    assert db.session.get(Order, late.order_id).status is OrderStatus.REFUNDED  # nothing owed to the test buyer


def test_failed_goods_stay_listed_when_the_setting_is_off(app):
    settings.put(db.session, "launch_test", {"keep_failed_unlisted": False})
    typo = make_product(name="话费 10元", face_value=Decimal("10"), sale_price=Decimal("100.00"),
                        cost_price=Decimal("9.80"))
    run = launch_test.start(db.session, "手动选择", chosen_ids=[typo.id])
    assert checks(run)["话费 10元"].status == "failed"
    db.session.expire_all()
    assert db.session.get(Product, typo.id).is_listed and fresh(run).delisted == 0


def test_the_admin_starts_a_run_from_the_product_list_and_from_an_import(auth, client, demo_pay):
    auth.login()
    games = make_category("游戏点卡")
    cards = make_card_product(codes=2, category_id=games.id, name="网易一卡通 50元", sale_price=Decimal("48.80"),
                              cost_price=Decimal("47.50"), face_value=Decimal("50"))
    typo = make_product(games, name="话费 10元", face_value=Decimal("10"), sale_price=Decimal("100.00"),
                        cost_price=Decimal("9.80"))
    response = client.post("/admin/products/bulk", data={"action": "launch_test", "ids": [str(cards.id), str(typo.id)]})
    assert response.status_code == 302 and "/admin/launch-tests/" in response.headers["Location"]
    report = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已完成" in report and "通过 1，未通过 1" in report and "已自动下架 1 个" in report
    assert "售价 ¥100.00 比面值 ¥10.00 高出 30% 以上" in report and "到账 0 秒 / 承诺 5 分钟" in report
    assert "hx-get" not in report  # finished: the page stops polling
    listing = client.get("/admin/launch-tests").get_data(as_text=True)
    assert "手动选择 2 个商品" in listing and "1 / 1 / 2" in listing

    csv = "商品编码,商品名称,供货价,售价,库存\nNEW1,新商品 5元,4.80,5.00,50\n"
    from kamen.services.importing import committing, staging
    import io
    batch = staging.analyze(db.session, staging.create_batch(db.session, io.BytesIO(csv.encode()), "价格表.csv",
                                                             supplier=default_supplier(db.session)).id)
    staging.apply_mapping(db.session, batch, staging.StageOptions(choices={m["column"]: m["key"] for m in batch.match_info}))
    batch = staging.stage(db.session, batch.id)
    committing.request_commit(db.session, batch)
    committing.commit_batch(db.session, batch.id)
    assert "上线测试" in client.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    response = client.post("/admin/launch-tests/new", data={"batch_id": str(batch.id), "extra_codes": "NOPE1 NOPE2"})
    assert "没有这些商品编码：NOPE1、NOPE2" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = client.post("/admin/launch-tests/new", data={"batch_id": str(batch.id), "extra_codes": typo.code})
    report = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"导入批次 #{batch.id}" in report and "新商品 5元" in report and "未分类 · 10 元以下" in report
    assert "话费 10元" in report and "管理员指定" in report

    response = client.post("/admin/launch-tests/new", data={"ids": []})
    assert "没有可测试的商品" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_run_started_with_redis_away_waits_and_a_dead_one_is_resumed(app, auth, client, redis_down):
    from kamen.services import background, sweeper

    auth.login()
    typo = make_product(name="话费 10元", face_value=Decimal("10"), sale_price=Decimal("100.00"),
                        cost_price=Decimal("9.80"))
    response = client.post("/admin/products/bulk", data={"action": "launch_test", "ids": [str(typo.id)]})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "排队中" in page and "后台任务暂停，恢复后自动继续" in page
    run = db.session.scalar(sa.select(LaunchRun))
    redis_back(app)
    assert sweeper.sweep(db.session).enqueued == [("launch_runs", run.id)]
    assert fresh(run).status == "done" and checks(run)["话费 10元"].status == "failed"

    app.config["REDIS_URL"] = CLOSED_PORT
    again = launch_test.start(db.session, "手动选择", chosen_ids=[make_product(name="新商品").id])
    # A worker took it, then died.
    assert background.Lease(LaunchRun, again.id).acquire(db.session, ("queued",), status="running")
    db.session.execute(sa.update(LaunchRun).where(LaunchRun.id == again.id).values(job_enqueued_at=utcnow()))
    db.session.commit()
    redis_back(app)
    swept = sweeper.sweep(db.session, now=utcnow() + timedelta(minutes=10))
    assert swept.enqueued == [("launch_runs", again.id)]
    again = fresh(again)
    assert (again.status, again.job_resumes, again.done, again.passed) == ("done", 1, 1, 1)


def test_a_launch_test_runs_on_a_real_rq_worker(app, redis_url, db_url):
    """Production path: the run is queued; an `rq worker` process renders the
    pages, pays the test order on the demo gateway and writes the report."""
    import uuid

    from tests.helpers import burst_worker

    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    gateway = {"KAMEN_DEMO_GATEWAY": "1", "KAMEN_DEMO_GATEWAY_PID": "1001", "KAMEN_DEMO_GATEWAY_KEY": "launch-test-key-1"}
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name, DEMO_GATEWAY=True, DEMO_GATEWAY_PID="1001",
                      DEMO_GATEWAY_KEY="launch-test-key-1")
    cards = make_card_product(codes=2, name="网易一卡通 50元", sale_price=Decimal("48.80"),
                              cost_price=Decimal("47.50"), face_value=Decimal("50"))
    typo = make_product(name="话费 10元", face_value=Decimal("10"), sale_price=Decimal("100.00"),
                        cost_price=Decimal("9.80"))
    run = launch_test.start(db.session, "手动选择", chosen_ids=[cards.id, typo.id])
    assert fresh(run).status == "queued"  # nothing ran in the web process

    result = burst_worker(app, db_url, redis_url, queue_name, **gateway)
    assert result.returncode == 0, result.stderr
    run = fresh(run)
    assert (run.status, run.passed, run.failed, run.delisted) == ("done", 1, 1, 1)
    got = checks(run)
    assert got["网易一卡通 50元"].delivery_seconds is not None
    assert db.session.get(Order, got["网易一卡通 50元"].order_id).status is OrderStatus.REFUNDED
    assert db.session.get(Product, cards.id).view_count == 0


@pytest.fixture
def forwarded_good(app, simulator, fulu_supplier):
    """A card good the Fulu-style supplier (the simulator) delivers through 一键代发, promised in 5 minutes."""
    make_category("游戏点卡")
    return supplier_product(fulu_supplier, simulator, CARD_CODE, delivery_minutes=5)


def test_a_supplier_good_is_bought_upstream_only_with_the_admins_yes(app, demo_pay, simulator, forwarded_good):
    run = launch_test.start(db.session, "手动选择", chosen_ids=[forwarded_good.id])
    check = checks(run)[forwarded_good.name]
    assert check.order_id is None and "本次未同意向货源真实下单" in check.notes[-1]
    assert simulator.orders == {}

    run = launch_test.start(db.session, "手动选择", chosen_ids=[forwarded_good.id], allow_supplier_orders=True)
    check = checks(run)[forwarded_good.name]
    assert check.status == "passed", check.problems
    order = db.session.get(Order, check.order_id)
    # Forwarded for real: the supplier holds one order under our order number, its card reached the order.
    assert [o["state"] for o in placed(simulator, order)] == ["success"]
    assert [(a.code, a.status) for a in attempts(order)] == [(CARD_CODE, AttemptStatus.SUCCESS)]
    assert order.delivered_at is not None and check.delivery_seconds == 0
    assert order.status is OrderStatus.REFUNDED and fresh(run).status == "done"


def test_a_supplier_answering_slowly_is_reported_as_a_slow_delivery(app, demo_pay, simulator, forwarded_good):
    forwarded_good.delivery_minutes = 2
    db.session.commit()
    simulator.settle_after = 2  # two order queries answered "processing" before "success"
    run = launch_test.start(db.session, "手动选择", chosen_ids=[forwarded_good.id], allow_supplier_orders=True)
    check = checks(run)[forwarded_good.name]
    assert check.status == "delivering" and fresh(run).status == "waiting", (check.problems, check.notes)
    order = db.session.get(Order, check.order_id)
    assert order.status is OrderStatus.FORWARDING and [a.status for a in attempts(order)] == [AttemptStatus.PROCESSING]
    paid_at = demo_pay["now"]

    def minute(n):
        """The per-minute steps as the schedule runs them: poll the supplier, then the launch test."""
        demo_pay["now"] = paid_at + timedelta(minutes=n)
        forwarding.poll_due(db.session)
        launch_test.poll(db.session, now=demo_pay["now"])
        db.session.expire_all()
        return checks(run)[forwarded_good.name], db.session.get(Order, order.id)

    for n in (1, 2):
        check, order = minute(n)
        assert check.status == "delivering" and order.status is OrderStatus.FORWARDING
    check, order = minute(3)  # past the promise, the supplier still processing
    assert check.status == "failed"
    assert check.problems == ["到账太慢：承诺 2 分钟内到账，付款 3 分 0 秒 后仍未到账"]
    assert check.notes[-1] == f"测试单 {order.order_no} 仍在货源处理中，货源给出结果后自动退款"
    assert order.status is OrderStatus.FORWARDING  # never refunded while the supplier may still deliver
    run = fresh(run)
    assert (run.status, run.failed, run.delisted) == ("done", 1, 1)

    check, order = minute(4)  # the supplier delivers: the test order is refunded then
    assert [a.status for a in attempts(order)] == [AttemptStatus.SUCCESS] and order.delivered_at is not None
    assert order.status is OrderStatus.REFUNDED and order.refund_reason == launch_test.TEST_ORDER_REASON
    assert [o["state"] for o in placed(simulator, order)] == ["success"] and check.status == "failed"
