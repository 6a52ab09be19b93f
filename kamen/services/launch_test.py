"""上线测试: before customers find goods that do not sell, the shop tries them.

For goods just imported or synced (or picked by hand): take samples across
categories and price bands, then for each one render its real product page
and check the price, 面值, stock and description shown against the record;
check the record itself (price rule, a price far above the 面值); and, for
goods the shop delivers itself, buy one through the demo 易支付 gateway (no
real money moves) and time the delivery against the promised minutes.

Goods delivered by a supplier are only bought when the admin said yes for
this run: there the test order is a real purchase upstream. A test order is
refunded once measured, so it never counts as revenue. Failed goods are
taken off sale when the 上线测试 setting says so.
"""
import html
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app

from kamen.models import (
    Category,
    DeliveryType,
    ImportRow,
    LaunchCheck,
    LaunchRun,
    Order,
    OrderStatus,
    PaymentChannel,
    Product,
    StockMode,
    Supplier,
    SupplierKind,
    SyncRun,
)
from kamen.models.demopay import DemoPayTrade, DemoTradeStatus
from kamen.money import format_money
from kamen.services import background, catalog, demopay, ordering, payments, pricing, settings
from kamen.services.suppliers import OWN_SUPPLIER_CODE
from kamen.services.syncing import adapter_for_supplier
from kamen.suppliers.base import Level, SupplierError
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.launch_test")

SETTINGS_KEY = "launch_test"

JOB = "jobs.launch.run_launch_test"
ACTIVE = ("queued", "running", "waiting")
STATUS_LABELS = {"queued": "排队中", "running": "检查中", "waiting": "等待测试单到账", "done": "已完成",
                 "failed": "失败"}
CHECK_LABELS = {"pending": "待检查", "delivering": "等待到账", "passed": "通过", "failed": "未通过"}
PRICE_BANDS = ((Decimal("10"), "10 元以下"), (Decimal("50"), "10-50 元"), (Decimal("200"), "50-200 元"),
               (None, "200 元以上"))
PER_GROUP = 1  # samples per category × price band
MAX_SAMPLES = 40
FACE_TOLERANCE = Decimal("1.3")  # a price 30 % over its 面值 is a typo, not a markup
TEST_CONTACT = "launch-test@kamen.invalid"
# A test order in these states may still be delivered: by hand, or by the supplier it was forwarded to.
UNDELIVERED = (OrderStatus.PAID, OrderStatus.FORWARDING, OrderStatus.UNCERTAIN, OrderStatus.MANUAL)
# What a test order can be refunded from once it settles (kamen.services.ordering.REFUNDABLE).
SETTLED_UNREFUNDED = (OrderStatus.DELIVERED, OrderStatus.MANUAL, OrderStatus.UNFULFILLABLE)
TEST_ORDER_REASON = "上线测试单：演示支付，未真实收款，测量后自动退款"


class LaunchInvalid(ValueError):
    """str() is the Chinese message for the admin."""


@dataclass(frozen=True)
class Pick:
    product_id: int
    why: str


def price_band(price):
    for limit, label in PRICE_BANDS:
        if limit is None or price < limit:
            return label
    return PRICE_BANDS[-1][1]  # pragma: no cover


def sample(session, product_ids, chosen_ids=()):
    """One product per root category × price band (the best seller of each),
    then every product the admin chose. At most MAX_SAMPLES."""
    picks, seen = [], set()
    if product_ids is not None:
        root = sa.func.coalesce(Category.parent_id, Category.id)
        rows = session.execute(
            sa.select(Product.id, Product.sale_price, root.label("root"))
            .outerjoin(Category, Category.id == Product.category_id)
            .where(Product.id.in_(product_ids))
            .order_by(Product.sales_count.desc(), Product.id)
        ).all()
        names = dict(session.execute(sa.select(Category.id, Category.name)).all())
        groups = {}
        for pid, price, root_id in rows:
            key = (root_id, price_band(price))
            if len(groups.setdefault(key, [])) < PER_GROUP:
                groups[key].append(pid)
                picks.append(Pick(pid, f"{names.get(root_id, '未分类')} · {key[1]}"))
                seen.add(pid)
    chosen = session.scalars(sa.select(Product.id).where(Product.id.in_([int(i) for i in chosen_ids]))).all()
    picks += [Pick(pid, "管理员指定") for pid in chosen if pid not in seen]
    return picks[:MAX_SAMPLES]


def ids_for_codes(session, text):
    """Product ids for the 商品编码 an admin typed (spaces, commas or new lines between);
    LaunchInvalid names the codes no product has."""
    codes = [c for c in re.split(r"[\s,，、]+", text or "") if c][:MAX_SAMPLES]
    if not codes:
        return []
    found = session.execute(sa.select(Product.code, Product.id).where(Product.code.in_(codes))).all()
    known = {code for code, _ in found}
    missing = [c for c in codes if c not in known]
    if missing:
        raise LaunchInvalid(f"没有这些商品编码：{'、'.join(missing[:10])}")
    return [pid for _, pid in found]


def products_of_import(batch_id):
    return sa.select(ImportRow.product_id).where(
        ImportRow.batch_id == batch_id, ImportRow.committed.is_(True), ImportRow.product_id.is_not(None))


def products_of_sync(session, run_id):
    """Goods a sync run created or changed (their rows were written during it)."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise LaunchInvalid("同步记录不存在")
    return sa.select(Product.id).where(Product.supplier_id == run.supplier_id, Product.updated_at >= run.started_at)


def start(session, label, product_ids=None, chosen_ids=(), allow_supplier_orders=False):
    """Create a run over samples of ``product_ids`` (a select) plus ``chosen_ids``, and queue its job."""
    picks = sample(session, product_ids, chosen_ids)
    if not picks:
        raise LaunchInvalid("没有可测试的商品")
    names = dict(session.execute(sa.select(Product.id, Product.name)
                                 .where(Product.id.in_([p.product_id for p in picks]))).all())
    run = LaunchRun(label=label[:120], total=len(picks), allow_supplier_orders=allow_supplier_orders)
    session.add(run)
    session.flush()
    session.add_all(LaunchCheck(run_id=run.id, product_id=p.product_id, product_name=names[p.product_id],
                                why=p.why, problems=[], notes=[]) for p in picks)
    session.commit()
    background.request_job(session, LaunchRun, run.id, JOB)
    return run


# -- the job ----------------------------------------------------------------------


def run(session, run_id, render):
    """Check every pending sample. ``render(product_id)`` returns the shop's
    product page as (HTTP status, HTML), as a customer gets it."""
    lease = background.Lease(LaunchRun, run_id)
    if not lease.acquire(session, ("queued", "running"), status="running"):
        return session.get(LaunchRun, run_id)
    try:
        pending = session.scalars(sa.select(LaunchCheck.id).where(
            LaunchCheck.run_id == run_id, LaunchCheck.status == "pending").order_by(LaunchCheck.id)).all()
        for check_id in pending:
            lease.beat(session)
            _check(session, session.get(LaunchRun, run_id), session.get(LaunchCheck, check_id), render)
            session.commit()
        lease.beat(session, status="waiting")
        session.commit()
        settle(session, run_id)
    except background.LeaseLost:
        session.rollback()
        return session.get(LaunchRun, run_id)
    except Exception as exc:
        session.rollback()
        log.exception("launch test %s failed", run_id)
        session.execute(sa.update(LaunchRun).where(LaunchRun.id == run_id).values(
            status="failed", finished_at=utcnow(), message=f"上线测试中断：{str(exc)[:300]}"))
        session.commit()
    finally:
        lease.release(session)
    return session.get(LaunchRun, run_id)


def fail_dead_run(session, run_id, reason):
    """The sweeper gave up on a run whose job kept dying."""
    if transition(session, LaunchRun, run_id, ("queued", "running"), "failed", message=reason, finished_at=utcnow()):
        session.commit()
        return True
    return False


def resume(session, run_row):
    return background.request_job(session, LaunchRun, run_row.id, JOB)


def _check(session, run_row, check, render):
    product = session.get(Product, check.product_id) if check.product_id else None
    problems, notes = [], []
    if product is None:
        _finish(session, check, "pending", ["商品已被删除"], notes)
        return
    _check_record(product, problems, notes)
    if not product.is_listed:
        notes.append("商品未上架：顾客看不到，未检查页面、未下测试单")
    else:
        _check_page(product, render, problems, notes, settings.low_stock_threshold(session))
        _check_supplier_stock(product, problems, notes)
    values = {}
    order = _test_order(session, run_row, product, problems, notes) if product.is_listed and not problems else None
    if order is not None:
        values = dict(order_id=order.id, order_no=order.order_no, promised_minutes=product.delivery_minutes)
        if order.status in UNDELIVERED:  # not delivered yet: the per-minute poll decides
            transition(session, LaunchCheck, check.id, "pending", "delivering", problems=problems, notes=notes,
                       **values)
            return
        values.update(_measure(session, order, product.delivery_minutes, notes, problems))
    _finish(session, check, "pending", problems, notes, **values)


def _finish(session, check, expected, problems, notes, **values):
    """Decide one check (once, whoever else decides it) and count it on its run."""
    status = "failed" if problems else "passed"
    if not transition(session, LaunchCheck, check.id, expected, status, problems=problems, notes=notes,
                      checked_at=utcnow(), **values):
        return False
    counter = LaunchRun.failed if problems else LaunchRun.passed
    session.execute(sa.update(LaunchRun).where(LaunchRun.id == check.run_id)
                    .values({LaunchRun.done: LaunchRun.done + 1, counter: counter + 1})
                    .execution_options(synchronize_session=False))
    run_row = session.identity_map.get(sa.inspect(LaunchRun).identity_key_from_primary_key((check.run_id,)))
    if run_row is not None:
        session.expire(run_row)
    return True


def _check_record(product, problems, notes):
    supplier = product.supplier
    try:
        pricing.check_prices(cost=product.cost_price, sale=product.sale_price, promo=product.promo_price,
                             min_margin=supplier.min_margin if supplier else 0)
    except pricing.PriceRuleError as exc:
        problems.append(f"价格有误：{exc}")
    price = product.current_price()
    if product.face_value and price > product.face_value * FACE_TOLERANCE:
        problems.append(f"价格有误：售价 ¥{format_money(price)} 比面值 ¥{format_money(product.face_value)} "
                        f"高出 30% 以上，疑似填错")
    if product.face_value and product.cost_price > product.face_value * FACE_TOLERANCE:
        problems.append(f"价格有误：供货价 ¥{format_money(product.cost_price)} 比面值 "
                        f"¥{format_money(product.face_value)} 高出 30% 以上，请向货源核实")
    if not product.description.strip():
        notes.append("没有商品说明（建议补充使用方法和注意事项）")


_PAGE_PRICE = re.compile(r'<dd class="big"><span class="price">¥([^<]+)</span>')
_PAGE_FACE = re.compile(r"<dt>面值</dt><dd>¥([^<]+)</dd>")
_PAGE_STOCK = re.compile(r'<dt>库存</dt><dd><span class="badge badge-\w+">([^<]+)</span>')
_PAGE_DESC = re.compile(r'<section class="desc"><h2>商品说明</h2><p>(.*?)</p></section>', re.S)


def _check_page(product, render, problems, notes, low_stock_threshold):
    status, page = render(product.id)
    if status != 200:
        problems.append(f"商品页打不开（HTTP {status}）")
        return
    item = catalog.shop_item(product, low_stock_threshold)
    found = _PAGE_PRICE.search(page)
    shown = found.group(1) if found else None
    if shown != format_money(item.price):
        problems.append(f"商品页价格不对：页面显示 {'¥' + shown if shown else '无价格'}，应为 ¥{format_money(item.price)}")
    found = _PAGE_FACE.search(page)
    face = found.group(1) if found else None
    expected_face = format_money(product.face_value) if product.face_value else None
    if face != expected_face:
        problems.append(f"商品页面值不对：页面显示 {'¥' + face if face else '无'}，"
                        f"应为 {'¥' + expected_face if expected_face else '无'}")
    found = _PAGE_STOCK.search(page)
    stock = html.unescape(found.group(1)) if found else None
    if stock != item.stock_state.label:
        problems.append(f"商品页库存不对：页面显示“{stock or '无'}”，应为“{item.stock_state.label}”")
    found = _PAGE_DESC.search(page)
    description = html.unescape(found.group(1)).strip() if found else ""
    if description != product.description.strip():
        problems.append("商品页的商品说明与后台不一致")
    if not problems:
        notes.append(f"商品页：价格 ¥{format_money(item.price)}、面值、库存“{item.stock_state.label}”、说明均与后台一致")


def _check_supplier_stock(product, problems, notes):
    """Goods the shop shows in stock from a supplier's count: ask the supplier now."""
    supplier = product.supplier
    if product.stock_mode is not StockMode.SYNCED or supplier.kind is SupplierKind.MANUAL or product.stock <= 0:
        return
    try:
        level = adapter_for_supplier(supplier).get_stock([product.code]).get(product.code)
    except SupplierError as exc:
        notes.append(f"无法向货源核对库存：{exc}")
        return
    if level is None or level.level is Level.OUT:
        problems.append(f"库存不对：商城显示有货（库存 {product.stock}），货源“{supplier.name}”当前缺货")
    else:
        notes.append("货源当前有货")


def _ships_itself(session, product):
    """Goods the shop delivers without buying from a supplier: its own card codes, or
    its own goods delivered by hand."""
    if product.stock_mode is StockMode.CARDS:
        return True
    own = session.scalar(sa.select(Supplier.id).where(Supplier.code == OWN_SUPPLIER_CODE))
    return product.supplier_id == own and product.delivery_type is DeliveryType.MANUAL


def _demo_channel(session):
    config = current_app.config
    if not config["DEMO_GATEWAY"]:
        return None, None
    channel = session.scalar(sa.select(PaymentChannel).where(PaymentChannel.name == payments.DEMO_CHANNEL_NAME))
    merchant = demopay.configured_merchant()
    if channel is None:
        channel, _ = payments.ensure_demo_channel(session, config["DEMO_GATEWAY_URL"] or "http://127.0.0.1/demopay/",
                                                  merchant.pid, merchant.key)
    return channel, merchant


def _test_order(session, run_row, product, problems, notes):
    """Buy the product as a customer would and pay on the demo gateway; the order, or None."""
    if product.delivery_type is DeliveryType.TOPUP:
        notes.append("直充商品：需要真实充值账号，未下测试单")
        return None
    if product.buyer_fields:
        notes.append("需要买家填写信息，未下测试单")
        return None
    if not _ships_itself(session, product) and not run_row.allow_supplier_orders:
        notes.append("由货源发货：本次未同意向货源真实下单，未下测试单")
        return None
    channel, merchant = _demo_channel(session)
    if channel is None:
        notes.append("演示支付未开启，未下测试单")
        return None
    try:
        order_no = ordering.create_order(session, ordering.BuyRequest(
            product_id=product.id, quantity=str(product.min_per_order), contact=TEST_CONTACT, ip="launch-test"))
    except ordering.OrderRefused as exc:
        problems.append(f"顾客无法下单：{exc}")
        return None
    order = ordering.by_number(session, order_no)
    trade = demopay.open_trade(session, merchant, demopay.PaymentRequest(
        type="alipay", out_trade_no=order_no, notify_url="", return_url="", name=product.name,
        money=order.amount, param="launch-test", client_ip="127.0.0.1", device="pc"))
    # The buyer pays on the gateway; its signed notify goes to the shop's own handler.
    transition(session, DemoPayTrade, trade.id, DemoTradeStatus.PENDING, DemoTradeStatus.PAID, paid_at=utcnow())
    session.commit()
    session.refresh(trade)
    if not payments.handle_notify(session, channel.id, demopay.result_params(trade, merchant)):
        problems.append("演示支付的付款通知被拒绝，订单未付款")
    session.refresh(order)
    return order


def _measure(session, order, promised_minutes, notes, problems, now=None):
    """A test order's delivery against the promise: the values to record, or None
    while it may still arrive in time. A decided test order is refunded."""
    promised = timedelta(minutes=promised_minutes or 0)
    if order.status is OrderStatus.DELIVERED and order.delivered_at and order.paid_at:
        took = order.delivered_at - order.paid_at
        if took > promised:
            problems.append(f"到账太慢：付款后 {_minutes(took)} 才到账，承诺 {promised_minutes} 分钟内")
        else:
            notes.append(f"测试单 {order.order_no} 付款后 {_minutes(took)} 到账（承诺 {promised_minutes} 分钟内）")
        _refund(session, order)
        return {"delivery_seconds": int(took.total_seconds())}
    if order.status in UNDELIVERED:
        waited = (now or ordering.now()) - order.paid_at
        if waited <= promised:
            return None
        problems.append(f"到账太慢：承诺 {promised_minutes} 分钟内到账，付款 {_minutes(waited)} 后仍未到账")
        if order.status in (OrderStatus.FORWARDING, OrderStatus.UNCERTAIN):
            # The supplier may still deliver: refunded as soon as it settles (poll).
            notes.append(f"测试单 {order.order_no} 仍在货源处理中，货源给出结果后自动退款")
        else:
            _refund(session, order)
        return {}
    problems.append(f"测试单 {order.order_no} 没有发货：{order.status.label}")
    return {}


def _minutes(delta):
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} 分 {seconds % 60} 秒" if seconds >= 60 else f"{seconds} 秒"


def _refund(session, order):
    try:
        ordering.refund(session, order.id, TEST_ORDER_REASON)
    except ordering.OrderRefused:
        session.rollback()


def poll(session, now=None):
    """The per-minute step: decide test orders waiting for delivery, then settle runs."""
    waiting = session.scalars(sa.select(LaunchCheck).join(LaunchRun).where(
        LaunchRun.status == "waiting", LaunchCheck.status == "delivering")).all()
    for check in waiting:
        order = session.get(Order, check.order_id) if check.order_id else None
        problems, notes = list(check.problems or []), list(check.notes or [])
        if order is None:
            problems.append("测试单已被删除")
            decided = {}
        else:
            decided = _measure(session, order, check.promised_minutes, notes, problems, now)
        if decided is not None:
            _finish(session, check, "delivering", problems, notes, **decided)
            session.commit()
    for run_id in session.scalars(sa.select(LaunchRun.id).where(LaunchRun.status == "waiting")).all():
        settle(session, run_id)
    _refund_settled(session)


def _refund_settled(session):
    """Test orders decided while their supplier still held them are refunded once it answered."""
    order_ids = session.scalars(sa.select(Order.id).join(LaunchCheck, LaunchCheck.order_id == Order.id).where(
        LaunchCheck.status.in_(("passed", "failed")), Order.status.in_(SETTLED_UNREFUNDED),
        Order.contact == TEST_CONTACT)).all()
    for order_id in order_ids:
        _refund(session, session.get(Order, order_id))


def settle(session, run_id):
    """A run whose samples are all decided is done; its failed goods come off sale when the setting says so."""
    open_checks = session.scalar(sa.select(sa.func.count()).select_from(LaunchCheck).where(
        LaunchCheck.run_id == run_id, LaunchCheck.status.in_(("pending", "delivering"))))
    if open_checks:
        return False
    failed_ids = session.scalars(sa.select(LaunchCheck.product_id).where(
        LaunchCheck.run_id == run_id, LaunchCheck.status == "failed", LaunchCheck.product_id.is_not(None))).all()
    delisted = 0
    if failed_ids and settings.get(session, SETTINGS_KEY)["keep_failed_unlisted"]:
        delisted = session.execute(sa.update(Product).where(Product.id.in_(failed_ids), Product.is_listed.is_(True))
                                   .values(is_listed=False)).rowcount
    if transition(session, LaunchRun, run_id, ("running", "waiting"), "done", finished_at=utcnow(), delisted=delisted):
        session.commit()
        return True
    session.rollback()
    return False


def runs(session, limit=50):
    return session.scalars(sa.select(LaunchRun).order_by(LaunchRun.id.desc()).limit(limit)).all()
