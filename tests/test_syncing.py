"""同步商品库 against the supplier simulator over real HTTP: prices, listing,
stock, bad answers, failure and low-stock alerts, and the schedule."""
import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Notification, Product, Supplier, SupplierKind, SyncRun
from kamen.secretbox import encrypt
from kamen.services import settings, syncing
from kamen.services.sync_dispatch import dispatch_due
from kamen.suppliers.base import AuthFailed, SupplierError, Transient
from kamen.suppliers.kamen_upstream import KamenUpstreamAdapter
from kamen.timeutil import utcnow
from tests.helpers import make_category
from tests.suppliers.simulator import MISSING, SimError
from tests.sync_fixtures import KAMEN_SECRET, KAMEN_STATION, make_supplier

CLIENT_TIMEOUT = 0.5


def paged_client(sim, page_size=2):
    """The kamen upstream adapter reading two products a page, with a short timeout."""
    return KamenUpstreamAdapter(sim.url, KAMEN_STATION, KAMEN_SECRET, CLIENT_TIMEOUT, page_size=page_size)


def sync(supplier, mode="full", adapter=None):
    """Queue and run one sync as the job does; the run as the history page shows it."""
    run = syncing.request_sync(db.session, supplier, mode)
    try:
        syncing.run_sync(db.session, run.id, adapter)
    except Transient:
        pass  # recorded on the run; RQ retries it
    db.session.expire_all()
    return db.session.get(SyncRun, run.id)


def ours(supplier):
    """Our products from this supplier, by code, as they are in the database now."""
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Product).where(Product.supplier_id == supplier.id))
    return {p.code: p for p in rows}


def change_upstream(sim, code, **fields):
    """Change a product at the supplier, stamped so an incremental sync sees it."""
    product = sim.products[code]
    for name, val in fields.items():
        setattr(product, name, val)
    product.updated_at = utcnow() + timedelta(seconds=1)


def notifications(kind=None):
    stmt = sa.select(Notification).order_by(Notification.id)
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    return db.session.scalars(stmt).all()


# --- catalogue, prices and listing ----------------------------------------

def test_full_sync_prices_new_products_and_holds_them_for_review(app, simulator):
    games, phone = make_category("游戏点卡"), make_category("话费充值")
    supplier = make_supplier(
        simulator, markup_percent=Decimal("10"), markup_fixed=Decimal("0.30"), markup_step=Decimal("0.1"),
        min_margin=Decimal("1.50"), category_map={"游戏点卡/腾讯": str(games.id)}, default_category_id=phone.id,
    )
    simulator.products["1001"].price = Decimal("100.00")  # 110.00 + 0.30
    simulator.products["1002"].price = Decimal("9.96")  # 10.956 + 0.30 → 11.3, under cost + 1.50 → 11.5

    run = sync(supplier)  # the supplier's own adapter, from its stored (encrypted) key

    assert (run.status, run.created, run.seen, run.failed, run.pages) == ("succeeded", 5, 5, 0, 1), run.message
    got = ours(supplier)
    assert got["1001"].sale_price == Decimal("110.30") and got["1001"].cost_price == Decimal("100.00")
    assert got["1002"].sale_price == Decimal("11.50")
    assert all(p.pending_review and not p.is_listed and not p.auto_delisted for p in got.values())
    assert got["1001"].category_id == games.id and got["1002"].category_id == phone.id
    assert got["1002"].buyer_fields == [{"key": "account", "label": "QQ号", "pattern": r"^[1-9]\d{4,11}$",
                                         "hint": "5-12 位数字"}]  # the 主站's field, pattern and hint
    assert got["1001"].stock == 100
    db.session.refresh(supplier)
    assert supplier.last_sync_at == run.started_at and supplier.last_full_sync_at == run.started_at


def test_a_discounting_rule_never_sells_below_cost(app, simulator):
    supplier = make_supplier(simulator, markup_percent=Decimal("-10"), markup_step=Decimal("0.1"),
                             min_margin=Decimal("0"))
    simulator.products["1001"].price = Decimal("9.94")  # 8.946 → 8.9 would lose money

    sync(supplier)

    assert ours(supplier)["1001"].sale_price == Decimal("10.0")


def test_auto_list_supplier_lists_new_products_unless_out_of_stock(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    simulator.products["1003"].stock = 0

    sync(supplier)

    got = ours(supplier)
    assert [c for c, p in sorted(got.items()) if p.is_listed] == ["1001", "1002", "1004", "1005"]
    assert not any(p.pending_review for p in got.values())
    assert got["1003"].auto_delisted  # listed by the sync once stock returns


def test_each_protocol_syncs_the_same_catalogue(app, simulator):
    for kind in (SupplierKind.KAMEN, SupplierKind.FULU, SupplierKind.ACGFAKA):
        supplier = make_supplier(simulator, kind=kind, auto_list=True)
        run = sync(supplier)
        assert (run.status, run.created) == ("succeeded", 5), (kind, run.message)
        got = ours(supplier)
        assert {c: p.cost_price for c, p in got.items()} == {
            c: p.price for c, p in simulator.products.items()}, kind
        assert all(p.is_listed for p in got.values()), kind


def test_cost_change_reprices_and_drops_a_promo_that_would_sell_below_cost(app, simulator):
    supplier = make_supplier(simulator, auto_list=True, markup_percent=Decimal("10"))
    sync(supplier)
    got = ours(supplier)
    got["1001"].promo_price = Decimal("10.00")  # cost 9.50, sale 10.45
    got["1002"].promo_price = Decimal("11.00")  # cost 10.50, sale 11.55
    db.session.commit()

    change_upstream(simulator, "1001", price=Decimal("10.20"))
    change_upstream(simulator, "1002", price=Decimal("10.60"))
    run = sync(supplier, "incremental")

    assert (run.status, run.seen, run.changed, run.unchanged) == ("succeeded", 2, 2, 0)
    got = ours(supplier)
    assert (got["1001"].cost_price, got["1001"].sale_price, got["1001"].promo_price) == (
        Decimal("10.20"), Decimal("11.22"), None)
    assert (got["1002"].sale_price, got["1002"].promo_price) == (Decimal("11.66"), Decimal("11.00"))
    assert got["1003"].sale_price == Decimal("12.65")  # untouched


def test_cost_change_keeps_promo_and_sale_above_the_minimum_margin(app, simulator):
    supplier = make_supplier(simulator, auto_list=True, markup_percent=Decimal("1"), min_margin=Decimal("1.00"))
    sync(supplier)
    got = ours(supplier)
    assert got["1002"].sale_price == Decimal("11.50")  # cost 10.50: 1 % would be 10.61
    got["1002"].promo_price = Decimal("11.50")
    db.session.commit()

    change_upstream(simulator, "1002", price=Decimal("10.60"))
    sync(supplier, "incremental")

    got = ours(supplier)
    # 11.50 is above the new cost but under cost + margin (11.60): the promo ends.
    assert (got["1002"].sale_price, got["1002"].promo_price) == (Decimal("11.60"), None)


def test_stock_at_zero_delists_and_returning_stock_relists(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    got = ours(supplier)
    got["1002"].is_listed = False  # the admin took this one off sale by hand
    db.session.commit()

    change_upstream(simulator, "1001", stock=0)
    change_upstream(simulator, "1002", stock=0)
    sync(supplier, "incremental")
    got = ours(supplier)
    assert (got["1001"].is_listed, got["1001"].auto_delisted, got["1001"].stock) == (False, True, 0)

    change_upstream(simulator, "1001", stock=30)
    change_upstream(simulator, "1002", stock=30)
    sync(supplier, "incremental")
    got = ours(supplier)
    assert (got["1001"].is_listed, got["1001"].auto_delisted, got["1001"].stock) == (True, False, 30)
    assert not got["1002"].is_listed  # the admin's choice stands


def test_products_gone_upstream_are_delisted_by_a_full_sync_only(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    gone = simulator.products.pop("1005")

    change_upstream(simulator, "1001", stock=50)
    run = sync(supplier, "incremental")
    assert (run.status, run.delisted) == ("succeeded", 0)
    assert ours(supplier)["1005"].is_listed

    run = sync(supplier, "full")
    assert (run.status, run.delisted, run.unchanged) == ("succeeded", 1, 4)
    assert (ours(supplier)["1005"].is_listed, ours(supplier)["1005"].auto_delisted) == (False, True)

    simulator.products["1005"] = gone
    sync(supplier, "full")
    assert ours(supplier)["1005"].is_listed


def test_rejected_items_are_counted_as_failed_and_never_delisted(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    simulator.overrides = {"1001": {"price": "-1.00"}, "1002": {"name": MISSING}}

    run = sync(supplier, "full")

    assert (run.status, run.seen, run.failed, run.unchanged, run.delisted) == ("succeeded", 5, 2, 3, 0)
    assert run.errors == [{"code": "1001", "reason": "字段“price”为负数：-1.00"},
                          {"code": "1002", "reason": "缺少字段“name”"}]
    got = ours(supplier)
    assert got["1001"].is_listed and got["1001"].cost_price == Decimal("9.50")
    assert got["1002"].is_listed and got["1002"].name == "测试商品2"


def test_an_unchanged_incremental_sync_writes_no_product(app, simulator, count_queries):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    with count_queries() as statements:
        run = sync(supplier, "incremental")
    assert (run.status, run.seen, run.changed, run.created) == ("succeeded", 0, 0, 0)
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT INTO PRODUCTS", "UPDATE PRODUCTS"))]


# --- bad answers ------------------------------------------------------------

BAD_ANSWERS = {
    "timeout": ({"latency": 1.0}, Transient, "货源响应超时（超过 0.5 秒）"),
    "html": ({"html": True}, Transient, "货源返回了网页而不是接口数据（HTTP 200），可能是地址填错或对方网站故障"),
    "malformed": ({"malformed": True}, Transient, "货源返回的数据无法解析（不是合法的 JSON，HTTP 200）"),
    "bad_signature": ({"error": SimError("签名错误，请检查 AppID 和密钥", "bad_signature", 401)}, AuthFailed,
                      "主站返回错误：签名错误，请检查 AppID 和密钥（bad_signature）"),
    "5xx": ({"http_status": 502}, Transient, "货源服务器出错（HTTP 502），稍后重试"),
    "unavailable": ({"error": SimError("系统维护中", "unavailable", 503)}, Transient,
                    "主站返回错误：系统维护中（unavailable）"),
}


@pytest.mark.parametrize("answer", BAD_ANSWERS)
def test_a_bad_answer_on_page_two_is_recorded_and_corrupts_nothing(app, simulator, answer):
    switches, error, reason = BAD_ANSWERS[answer]
    supplier = make_supplier(simulator, auto_list=True)
    simulator.products.pop("1005")  # gone upstream: a full sync that fails must not delist it
    db.session.add(Product(supplier_id=supplier.id, code="1005", name="旧商品", cost_price=Decimal("1.00"),
                           sale_price=Decimal("1.20"), stock=7))
    db.session.commit()
    for name, val in switches.items():
        setattr(simulator, name, val)
    simulator.healthy_requests = 1  # page 1 (1001, 1002) answers normally

    run = syncing.request_sync(db.session, supplier, "full")
    if issubclass(error, Transient):
        with pytest.raises(Transient):  # after recording it, so RQ's Retry applies
            syncing.run_sync(db.session, run.id, paged_client(simulator))
    else:
        assert syncing.run_sync(db.session, run.id, paged_client(simulator)).status == "failed"

    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert run.status == "failed" and reason in run.message
    assert run.errors == [] and run.failed == 0  # 错误明细 lists products; the run's reason is its message
    assert (run.pages, run.created, run.delisted) == (1, 2, 0)
    got = ours(supplier)
    assert sorted(got) == ["1001", "1002", "1005"]
    assert got["1001"].sale_price == Decimal("9.98") and got["1001"].is_listed
    assert got["1005"].is_listed and got["1005"].stock == 7
    supplier = db.session.get(Supplier, supplier.id)
    assert (supplier.last_sync_at, supplier.failure_streak) == (None, 1)

    simulator.healthy_requests = 10**6  # the supplier is back
    run = sync(supplier, "full", paged_client(simulator))
    assert (run.status, run.pages, run.created, run.unchanged, run.delisted) == ("succeeded", 2, 2, 2, 1)
    assert db.session.get(Supplier, supplier.id).failure_streak == 0


def test_a_supplier_that_is_down_is_recorded_with_the_reason(app, simulator):
    supplier = make_supplier(simulator, base_url="http://127.0.0.1:9")  # nothing listens there
    run = sync(supplier)
    assert run.status == "failed"
    assert run.message == "无法连接货源 127.0.0.1:9：网络不通、地址错误或对方服务未启动"


# --- failure streak ---------------------------------------------------------

def test_failed_runs_in_a_row_raise_one_alert(app, simulator):
    settings.put(db.session, "alerts", {"sync_failure_alert_after": 2})
    supplier = make_supplier(simulator)
    simulator.http_status = 500

    sync(supplier)
    assert notifications("sync_failed") == []
    sync(supplier)
    sync(supplier)

    alerts = notifications("sync_failed")
    assert [n.title for n in alerts] == ["货源同步连续失败 2 次：模拟货源"]
    assert "最近一次：货源服务器出错（HTTP 500），稍后重试" in alerts[0].body
    assert db.session.get(Supplier, supplier.id).failure_streak == 3

    simulator.http_status = None
    sync(supplier)
    assert db.session.get(Supplier, supplier.id).failure_streak == 0


def test_retries_of_one_run_count_as_one_failure(app, simulator):
    settings.put(db.session, "alerts", {"sync_failure_alert_after": 2})
    supplier = make_supplier(simulator)
    simulator.http_status = 503
    run = syncing.request_sync(db.session, supplier, "full")
    for _ in range(3):  # the first attempt and two of RQ's retries
        with pytest.raises(Transient):
            syncing.run_sync(db.session, run.id)

    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).attempts == 3
    assert db.session.get(Supplier, supplier.id).failure_streak == 1
    assert notifications("sync_failed") == []


# --- low-stock alerts -------------------------------------------------------

def test_low_stock_alerts_once_per_crossing_in_one_message(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    ours(supplier)["1003"].low_stock_threshold = 2
    db.session.commit()

    change_upstream(simulator, "1001", stock=3)
    change_upstream(simulator, "1002", stock=10)
    change_upstream(simulator, "1003", stock=3)  # its own threshold is 2
    sync(supplier, "incremental")
    alerts = notifications("low_stock")
    assert [n.title for n in alerts] == ["库存预警：模拟货源 有 2 个商品库存不足"]
    assert alerts[0].body == "测试商品1（1001）库存 3，阈值 10\n测试商品2（1002）库存 10，阈值 10"

    change_upstream(simulator, "1001", stock=1)  # lower still: already alerted
    sync(supplier, "incremental")
    sync(supplier, "full")
    assert len(notifications("low_stock")) == 1

    change_upstream(simulator, "1001", stock=40)  # recovers, then crosses again
    sync(supplier, "incremental")
    assert not ours(supplier)["1001"].low_stock_alerted
    change_upstream(simulator, "1001", stock=4)
    sync(supplier, "incremental")
    alerts = notifications("low_stock")
    assert len(alerts) == 2 and alerts[1].body == "测试商品1（1001）库存 4，阈值 10"


def test_low_stock_on_pages_already_applied_is_alerted_when_a_later_page_fails(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    simulator.products["1001"].stock = 2
    simulator.http_status = 502
    simulator.healthy_requests = len(simulator.requests) + 1

    run = sync(supplier, "full", paged_client(simulator))

    assert run.status == "failed"
    assert [n.body for n in notifications("low_stock")] == ["测试商品1（1001）库存 2，阈值 10"]
    assert ours(supplier)["1001"].low_stock_alerted


# --- alert channels ---------------------------------------------------------

def _cross_low_stock(supplier, simulator):
    sync(supplier)
    for code in ("1001", "1002"):
        change_upstream(simulator, code, stock=1)
    return sync(supplier, "incremental")


def test_wecom_robot_gets_one_markdown_message(app, simulator, robot):
    settings.put(db.session, "alerts", {"webhook_kind": "wecom", "webhook_url": robot.url})
    supplier = make_supplier(simulator, auto_list=True)

    _cross_low_stock(supplier, simulator)

    assert robot.received == [("/robot/send?access_token=tok", {"msgtype": "markdown", "markdown": {
        "content": "**库存预警：模拟货源 有 2 个商品库存不足**\n"
                   "> 测试商品1（1001）库存 1，阈值 10\n> 测试商品2（1002）库存 1，阈值 10"}})]


def test_dingtalk_robot_gets_a_signed_url(app, simulator, robot):
    secret = "SEC0123456789abcdef"
    settings.put(db.session, "alerts", {"webhook_kind": "dingtalk", "webhook_url": robot.url,
                                        "dingtalk_secret": encrypt(secret)})
    supplier = make_supplier(simulator, auto_list=True)

    _cross_low_stock(supplier, simulator)

    [(path, body)] = robot.received
    query = parse_qs(urlsplit(path).query)
    timestamp, sign = query["timestamp"][0], query["sign"][0]
    assert query["access_token"] == ["tok"]
    assert abs(int(timestamp) / 1000 - datetime.now().timestamp()) < 60
    expected = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert sign == base64.b64encode(expected).decode()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "库存预警：模拟货源 有 2 个商品库存不足"
    assert "> 测试商品2（1002）库存 1，阈值 10" in body["markdown"]["text"]


def test_a_robot_refusing_the_message_is_noted_and_the_sync_still_succeeds(app, simulator, robot):
    robot.reply = {"errcode": 310000, "errmsg": "sign not match"}
    settings.put(db.session, "alerts", {"webhook_kind": "dingtalk", "webhook_url": robot.url})
    supplier = make_supplier(simulator, auto_list=True)

    run = _cross_low_stock(supplier, simulator)

    assert run.status == "succeeded"
    [note] = notifications("low_stock")
    assert note.body.endswith("机器人发送失败：机器人返回错误 310000：sign not match")


def test_email_alert_through_smtp(app, simulator, mailbox):
    settings.put(db.session, "alerts", {
        "email_to": "boss@example.com", "smtp_host": mailbox.host, "smtp_port": mailbox.port,
        "smtp_ssl": False, "smtp_user": "shop@example.com", "smtp_password": encrypt("mail-pass"),
    })
    supplier = make_supplier(simulator, auto_list=True)

    _cross_low_stock(supplier, simulator)

    assert mailbox.logins == [("shop@example.com", "mail-pass", False)]  # no STARTTLS offered: plain
    [message] = mailbox.messages
    assert message["Subject"] == "[kamen] 库存预警：模拟货源 有 2 个商品库存不足"
    assert (message["From"], message["To"]) == ("shop@example.com", "boss@example.com")
    assert message.get_content().splitlines()[2:] == [
        "测试商品1（1001）库存 1，阈值 10", "测试商品2（1002）库存 1，阈值 10"]


# --- starting runs ----------------------------------------------------------

def test_one_run_per_supplier_at_a_time(app, simulator):
    supplier = make_supplier(simulator)
    first = syncing.request_sync(db.session, supplier, "full")
    with pytest.raises(syncing.SyncBusy):
        syncing.request_sync(db.session, supplier, "incremental")

    first.job_requested_at = utcnow() - timedelta(hours=3)  # its job never started: the worker died long ago
    db.session.commit()
    second = syncing.request_sync(db.session, supplier, "incremental")

    db.session.expire_all()
    stale = db.session.get(SyncRun, first.id)
    assert (stale.status, stale.message) == ("failed", syncing.REPLACED_MESSAGE)
    assert db.session.get(SyncRun, second.id).status == "queued"


def test_manual_suppliers_have_nothing_to_sync(app):
    supplier = Supplier(code="sheet", name="表格货源", kind=SupplierKind.MANUAL)
    db.session.add(supplier)
    db.session.commit()
    with pytest.raises(SupplierError, match="表格/手工货源没有接口可同步，请通过批量导入更新商品"):
        syncing.request_sync(db.session, supplier, "full")


def _at(text):
    """A shop-local moment and the same moment in UTC (Asia/Shanghai is UTC+8)."""
    local = datetime.fromisoformat(text)
    return local, local - timedelta(hours=8)


def _ran(supplier, mode, at_utc, status="succeeded"):
    db.session.add(SyncRun(supplier_id=supplier.id, mode=mode, status=status,
                           started_at=at_utc, finished_at=at_utc))
    if status == "succeeded":
        supplier.last_sync_at = at_utc
        if mode == "full":
            supplier.last_full_sync_at = at_utc
    db.session.commit()


def test_due_syncs_follow_the_interval(app, simulator):
    supplier = make_supplier(simulator, sync_interval_minutes=15)
    make_supplier(simulator, code="off", name="不自动同步")
    make_supplier(simulator, code="paused", name="停用", sync_interval_minutes=15, is_active=False)
    local, utc = _at("2024-06-01 10:00")

    assert syncing.due_syncs(db.session, local, utc) == [(supplier, "full")]  # never synced
    _ran(supplier, "full", utc)
    assert syncing.due_syncs(db.session, local + timedelta(minutes=14), utc + timedelta(minutes=14)) == []
    assert syncing.due_syncs(db.session, local + timedelta(minutes=15), utc + timedelta(minutes=15)) == [
        (supplier, "incremental")]


def test_nightly_full_sync_runs_once_a_night_at_shop_time(app, simulator):
    supplier = make_supplier(simulator, nightly_sync_at="02:00")
    _ran(supplier, "full", _at("2024-06-01 09:00")[1])

    assert syncing.due_syncs(db.session, *_at("2024-06-02 01:59")) == []
    assert syncing.due_syncs(db.session, *_at("2024-06-02 02:00")) == [(supplier, "full")]
    _ran(supplier, "full", _at("2024-06-02 02:00")[1])
    assert syncing.due_syncs(db.session, *_at("2024-06-02 02:01")) == []
    assert syncing.due_syncs(db.session, *_at("2024-06-02 23:59")) == []
    assert syncing.due_syncs(db.session, *_at("2024-06-03 02:00")) == [(supplier, "full")]
    _ran(supplier, "full", _at("2024-06-03 02:00")[1], status="failed")  # RQ retries it, with backoff
    assert syncing.due_syncs(db.session, *_at("2024-06-03 02:01")) == []


def test_a_supplier_that_is_down_is_not_restarted_every_minute(app, simulator):
    down = make_supplier(simulator, code="down", name="宕机货源", base_url="http://127.0.0.1:9",
                         sync_interval_minutes=15)
    up = make_supplier(simulator, code="up", name="正常货源", sync_interval_minutes=15)
    now = utcnow()

    started = dispatch_due(db.session, now + timedelta(hours=8), now)

    db.session.expire_all()
    runs = {r.supplier_id: r for r in db.session.scalars(sa.select(SyncRun)).all()}
    assert sorted(started) == sorted(r.id for r in runs.values())
    assert (runs[down.id].status, runs[up.id].status) == ("failed", "succeeded")  # one down never blocks another
    later = now + timedelta(minutes=1)
    assert dispatch_due(db.session, later + timedelta(hours=8), later) == []
    later = now + timedelta(minutes=16)
    assert len(dispatch_due(db.session, later + timedelta(hours=8), later)) == 2


def test_manual_suppliers_are_reminded_once_per_period_until_checked(app):
    now = utcnow()
    sheet = Supplier(code="sheet", name="表格货源", kind=SupplierKind.MANUAL, recheck_hours=8,
                     last_checked_at=now - timedelta(hours=26))

    def dispatch(hours):
        at = now + timedelta(hours=hours)
        dispatch_due(db.session, at + timedelta(hours=8), at)
        return [n.title for n in notifications("recheck")]

    db.session.add(sheet)
    db.session.commit()
    assert dispatch(-17) == ["请核对手工货源库存：表格货源"]
    assert notifications("recheck")[0].body == "该货源每 8 小时需核对一次库存与价格，核对后在后台点“已核对”。"
    assert len(dispatch(-16)) == 1
    assert len(dispatch(-9)) == 2  # a period later, still not checked

    syncing.mark_checked(db.session, sheet)
    assert syncing.overdue_manual_suppliers(db.session, utcnow()) == []
    assert len(dispatch(1)) == 2
    assert len(dispatch(9)) == 3  # due for its next check


def test_a_code_too_long_for_us_is_rejected_and_the_page_kept(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    product = simulator.products.pop("1005")
    product.code = "9" * 80
    simulator.products[product.code] = product

    run = sync(supplier)

    assert (run.status, run.created, run.failed) == ("succeeded", 4, 1)
    assert run.errors == [{"code": "9" * 64, "reason": "商品编码超过 64 个字符"}]
    assert sorted(ours(supplier)) == ["1001", "1002", "1003", "1004"]


def test_an_unexpected_error_still_ends_the_run(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    simulator.products["1003"].stock = 10**20  # more than our stock column holds
    run = syncing.request_sync(db.session, supplier, "full")

    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, RQ logs and retries it
        syncing.run_sync(db.session, run.id, paged_client(simulator))

    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    assert run.status == "failed" and run.message.startswith("同步时发生内部错误（")
    assert ours(supplier)["1001"].stock == 100  # page 1 was unchanged, page 2 rolled back
    assert syncing.request_sync(db.session, supplier, "full").status == "queued"  # not blocked for hours


def test_codes_with_quotes_and_backslashes_are_matched_as_written(app, simulator):
    supplier = make_supplier(simulator, auto_list=True)
    odd = "O'Brien\\'); DROP TABLE products; --"
    product = simulator.products.pop("1005")
    product.code = odd
    simulator.products[odd] = product
    sync(supplier)

    change_upstream(simulator, odd, stock=3)
    run = sync(supplier, "incremental")

    assert (run.status, run.changed, run.created) == ("succeeded", 1, 0)
    assert ours(supplier)[odd].stock == 3


def test_new_listed_product_already_short_is_alerted_on_arrival(app, simulator):
    change_upstream(simulator, "1002", stock=2)
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    alerts = notifications("low_stock")
    assert len(alerts) == 1 and "测试商品2（1002）库存 2，阈值 10" in alerts[0].body
    assert ours(supplier)["1002"].low_stock_alerted
    sync(supplier, "full")
    assert len(notifications("low_stock")) == 1


def test_a_dead_webhook_is_reported_without_its_key(app):
    from kamen.services import alerts

    settings.put(db.session, "alerts", {**settings.get(db.session, "alerts"), "webhook_kind": "wecom",
                                        "webhook_url": "http://127.0.0.1:9/cgi-bin/webhook/send?key=SECRET-KEY-123"})
    note = alerts.raise_alert(db.session, "test", "测试", ["一行"])
    assert "机器人发送失败：无法连接机器人地址" in note.body
    assert "SECRET-KEY-123" not in note.body
