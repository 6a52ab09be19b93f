"""同步商品库: pull a supplier's catalog into ours, page by page.

Each page is one transaction, so a bad answer halfway leaves every earlier
page applied and nothing half-written. Rows are compared before writing: an
incremental sync with nothing new writes nothing.
"""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen.models import BalanceSample, Category, DeliveryType, Product, StockMode, Supplier, SupplierKind, SyncRun
from kamen.money import format_money
from kamen.search_keys import search_key
from kamen.secretbox import decrypt
from kamen.services import alerts, background, delivery, settings, sources
from kamen.services.categories import CategoryLookup
from kamen.services.pricing import Markup, is_price_jump, price_problem
from kamen.services.suppliers import OWN_SUPPLIER_CODE
from kamen.services.transitions import transition
from kamen.suppliers import adapter_for
from kamen.suppliers.base import Delivery, Level, RejectedItem, SupplierError, Transient
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.sync")

# A supplier that gives a level but no count: the stock we record for it.
LEVEL_STOCK = {Level.IN: 999, Level.LOW: 1, Level.OUT: 0, Level.UNKNOWN: 0}
ACTIVE = ("queued", "running")
REPLACED_MESSAGE = "后台任务中断或未能启动，已视为失败（可能是进程重启或后台任务暂停），已由新的同步代替"
# Incremental syncs ask for changes since the last sync minus this overlap, so
# a supplier clock a little behind ours loses nothing; re-read rows that did
# not change cost no writes.
SYNC_OVERLAP = timedelta(minutes=10)
MAX_ERRORS_KEPT = 200
CODE_LENGTH = Product.__table__.c.code.type.length


class SyncBusy(Exception):
    """A sync of this supplier is already queued or running."""


@dataclass
class RunAlerts:
    """Alert lines gathered page by page: committed pages alert even if a later one fails."""

    low_stock: list = field(default_factory=list)
    sold_out: list = field(default_factory=list)  # already 库存紧张, now 0
    price_held: list = field(default_factory=list)  # 价格待确认 old → new


def supplier_markup(supplier):
    return Markup(percent=supplier.markup_percent, fixed=supplier.markup_fixed, step=supplier.markup_step,
                  min_margin=supplier.min_margin)


def sale_price_for(supplier, cost):
    return supplier_markup(supplier).apply(cost)


def adapter_for_supplier(supplier, callback_url=None, timeout=None):
    secret = decrypt(supplier.secret_encrypted)
    config = {
        "callback_url": callback_url,
        "timeout": timeout,
        "base_url": supplier.base_url,
        "app_key": supplier.app_id,
        "app_id": supplier.app_id,
        "secret": secret,
        "verify_reply_sign": supplier.verify_reply_sign,
    }
    return adapter_for(supplier.kind, config)


def _active_run(session, supplier_id):
    return session.scalar(
        sa.select(SyncRun).where(SyncRun.supplier_id == supplier_id, SyncRun.status.in_(ACTIVE))
        .order_by(SyncRun.id.desc())
    )


def request_sync(session, supplier, mode):
    """Create a queued SyncRun unless one is active; the caller asks for its job.

    At most one run per supplier is active (a unique index says so): of two
    clicks or ticks at once, one creates the run and the other gets SyncBusy.
    An active run whose job died or never started is failed with the reason
    and replaced, so it never blocks syncs silently."""
    if supplier.kind is SupplierKind.MANUAL:
        raise SupplierError("表格/手工货源没有接口可同步，请通过批量导入更新商品")
    active = _active_run(session, supplier.id)
    if active is not None:
        if background.is_busy(active):
            raise SyncBusy(active.id)
        if transition(session, SyncRun, active.id, ACTIVE, "failed", finished_at=utcnow(), job_token=None,
                      message=REPLACED_MESSAGE):
            session.commit()
    run = SyncRun(supplier_id=supplier.id, mode=mode, status="queued", job_requested_at=utcnow())
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        active = _active_run(session, supplier.id)
        raise SyncBusy(active.id if active else None) from None
    return run


def fail_dead_run(session, run_id, reason):
    """The sweeper gave up on a run whose job kept dying."""
    failed = transition(session, SyncRun, run_id, ACTIVE, "failed", finished_at=utcnow(), job_token=None,
                        message=f"{reason}。可点“重试”重新同步。")
    session.commit()
    return failed


def run_sync(session, run_id, adapter=None):
    """Execute a queued run under its lease (a run picked up twice runs once).
    Raises Transient after recording it, so RQ can retry."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status in ("succeeded",):
        return run
    lease = background.Lease(SyncRun, run_id)
    try:
        taken = lease.acquire(session, ACTIVE + ("failed",), status="running", attempts=SyncRun.attempts + 1,
                              started_at=utcnow(), finished_at=None)
    except IntegrityError:  # an RQ retry of an old run while a newer run of the supplier is active
        session.rollback()
        return session.get(SyncRun, run_id)
    if not taken:
        return session.get(SyncRun, run_id)
    try:
        return _run(session, session.get(SyncRun, run_id), adapter, lease)
    except background.LeaseLost:
        session.rollback()
        log.warning("sync run %s: another job took it over; this one stops", run_id)
        return session.get(SyncRun, run_id)
    finally:
        lease.release(session)


def _run(session, run, adapter, lease):
    supplier = run.supplier
    notes = RunAlerts()
    try:
        adapter = adapter or adapter_for_supplier(supplier)
        _pull(session, supplier, run, adapter, notes, lease.beat)
    except background.LeaseLost:
        raise
    except SupplierError as exc:
        session.rollback()
        _finish_failed(session, supplier, run, exc)
        _send_alerts(session, supplier, notes)
        if isinstance(exc, Transient):
            raise
        return run
    except Exception as exc:  # a bug or a database error must not leave the run "running" for hours
        session.rollback()
        reason = SupplierError(f"同步时发生内部错误（{type(exc).__name__}），详见服务器日志")
        _finish_failed(session, supplier, run, reason)
        _send_alerts(session, supplier, notes)
        raise
    lease.beat(session)
    started, mode = run.started_at, run.mode
    if not transition(session, SyncRun, run.id, "running", "succeeded", finished_at=utcnow()):
        session.rollback()
        return session.get(SyncRun, run.id)
    supplier.last_sync_at = started
    if mode == "full":
        supplier.last_full_sync_at = started
    supplier.failure_streak = 0
    session.commit()
    run = session.get(SyncRun, run.id)
    _send_alerts(session, supplier, notes)
    check_balance(session, supplier, adapter)
    return run


def check_balance(session, supplier, adapter):
    """Alert once when our balance at the supplier drops below its threshold
    (and again only after it has recovered). A balance we cannot read is logged:
    the sync itself succeeded."""
    if supplier.balance_alert_below is None:
        return None
    try:
        balance = adapter.balance()
    except SupplierError as exc:
        log.warning("balance of supplier %s unreadable: %s", supplier.code, exc)
        return None
    if balance is None:
        return None
    session.add(BalanceSample(supplier_id=supplier.id, balance=balance))  # the scorecard's balance trend
    session.commit()
    low = balance < supplier.balance_alert_below
    if low and not supplier.balance_alerted:
        supplier.balance_alerted = True
        session.commit()
        alerts.raise_alert(session, "low_balance", f"货源余额不足：{supplier.name}", [
            f"当前余额 ¥{format_money(balance)}，低于告警线 ¥{format_money(supplier.balance_alert_below)}",
            "余额用完后代发会失败，请及时到货源充值。",
        ])
    elif not low and supplier.balance_alerted:
        supplier.balance_alerted = False
        session.commit()
    return balance


def _send_alerts(session, supplier, notes):
    """At most one stock alert and one price alert per run, each listing every product."""
    if notes.low_stock or notes.sold_out:
        counts = [f"{len(notes.low_stock)} 个商品库存不足"] if notes.low_stock else []
        counts += [f"{len(notes.sold_out)} 个商品售罄"] if notes.sold_out else []
        alerts.raise_alert(session, "low_stock", f"库存预警：{supplier.name} 有 {'、'.join(counts)}",
                           notes.sold_out + notes.low_stock)
    if notes.price_held:
        alerts.raise_alert(
            session, "price_held",
            f"价格待确认：{supplier.name} 有 {len(notes.price_held)} 个商品供货价变动超过 "
            f"{_percent(supplier.price_jump_percent)}%，未自动调价",
            notes.price_held + ["请到后台 → 货源 → 待审核与分类对应 中逐个或全部接受/拒绝。"],
        )


def _percent(value):
    return format(value.normalize(), "f")


def _finish_failed(session, supplier, run, exc):
    supplier = session.get(Supplier, supplier.id)
    # Why the run failed, in one line; 错误明细 stays the products 失败 counts.
    if not transition(session, SyncRun, run.id, "running", "failed", finished_at=utcnow(),
                      message=" ".join(str(exc).split())):
        session.rollback()
        return
    if session.get(SyncRun, run.id).attempts == 1:  # RQ's retries of this run are not more failed runs
        supplier.failure_streak += 1
    session.commit()
    limit = int(settings.get(session, "alerts")["sync_failure_alert_after"])
    if supplier.failure_streak == limit:
        alerts.raise_alert(
            session,
            "sync_failed",
            f"货源同步连续失败 {limit} 次：{supplier.name}",
            [f"最近一次：{exc}", "请检查货源地址、密钥和余额，或联系货源。"],
        )


def _pull(session, supplier, run, adapter, notes, beat):
    updated_after = None
    if run.mode == "incremental" and supplier.last_sync_at is not None:
        updated_after = supplier.last_sync_at - SYNC_OVERLAP
    seen = set()
    cursor = None
    while True:
        page = adapter.list_products(cursor=cursor, updated_after=updated_after)
        beat(session)  # in the page's transaction: a run taken over writes nothing more
        _apply_page(session, supplier, run, page, notes)
        seen.update(item.code for item in page.items)
        seen.update(r.code for r in page.rejected if r.code)
        cursor = page.next_cursor
        if not cursor:
            break
    if run.mode == "full":
        beat(session)
        _delist_gone(session, supplier, run, seen)


def _apply_page(session, supplier, run, page, notes):
    """Upsert one page in one transaction, adding alert lines to ``notes``."""
    threshold_default = settings.low_stock_threshold(session)
    # A code our column cannot hold would fail the whole page on PostgreSQL.
    rejected = page.rejected + [RejectedItem(item.code[:CODE_LENGTH], f"商品编码超过 {CODE_LENGTH} 个字符")
                                for item in page.items if len(item.code) > CODE_LENGTH]
    items = {item.code: item for item in page.items if len(item.code) <= CODE_LENGTH}
    existing = {}
    if items:
        # The codes are sent as literals: as bound parameters psycopg prepares the
        # query after five pages and PostgreSQL's generic plan then scans every
        # product of the supplier per page (20x slower on a fresh catalogue).
        codes = sa.bindparam("codes", list(items), literal_execute=True)
        rows = session.execute(
            sa.select(Product).where(Product.supplier_id == supplier.id, Product.code.in_(codes))
        ).scalars()
        existing = {p.code: p for p in rows}
    categories = category_context(session) if items else None
    inserts, updates = [], []
    for code, item in items.items():
        product = existing.get(code)
        if product is None:
            row = _new_row(supplier, item, categories)
            if row["is_listed"] and row["stock"] <= threshold_default:
                # Listed on arrival and already short: alert now, not at its next change.
                row["low_stock_alerted"] = True
                notes.low_stock.append(f"{row['name']}（{code}）库存 {row['stock']}，阈值 {threshold_default}")
            inserts.append(row)
            continue
        changes = _changes(supplier, product, item, categories)
        if not changes:
            run.unchanged += 1
            continue
        if changes.get("pending_cost") is not None:
            notes.price_held.append(_held_line(product, changes))
        threshold = product.effective_threshold(threshold_default)
        stock = changes.get("stock", product.stock)
        if product.stock_mode is not StockMode.UNLIMITED:
            if stock <= threshold and not product.low_stock_alerted:
                changes["low_stock_alerted"] = True
                notes.low_stock.append(f"{product.name}（{product.code}）库存 {stock}，阈值 {threshold}")
            elif stock > threshold and product.low_stock_alerted:
                changes["low_stock_alerted"] = False
            elif stock == 0 < product.stock and product.low_stock_alerted:
                notes.sold_out.append(f"{product.name}（{product.code}）已售罄（库存 {product.stock} → 0）")
        if changes.get("is_listed") is False:
            run.delisted += 1
        changes["id"] = product.id
        changes["updated_at"] = utcnow()
        updates.append(changes)
    if inserts:
        session.execute(sa.insert(Product), inserts)
    if updates:
        session.execute(sa.update(Product), updates)
        # Shop products that these fill as extra sources: their stock is a sum.
        sources.refresh_users_of(session, [u["id"] for u in updates if "stock" in u or "is_listed" in u])
    run.pages += 1
    run.seen += len(items) + len(rejected)
    run.created += len(inserts)
    run.changed += len(updates)
    run.failed += len(rejected)
    if rejected:
        kept = MAX_ERRORS_KEPT - len(run.errors or [])
        run.errors = (run.errors or []) + [{"code": r.code, "reason": r.reason} for r in rejected[:max(kept, 0)]]
    session.commit()


def _held_line(product, changes):
    new = changes["pending_cost"]
    listed = changes.get("is_listed", product.is_listed)
    keeps = f"仍按原售价 ¥{format_money(product.sale_price)} 销售" if listed else "原售价不高于新供货价，已下架"
    return (f"{product.name}（{product.code}）供货价 ¥{format_money(product.cost_price)} → "
            f"¥{format_money(new)}，{keeps}")


def _stock_of(item):
    if item.stock.qty is not None:
        return max(item.stock.qty, 0)
    return LEVEL_STOCK[item.stock.level]


def _buyer_fields(item):
    """The supplier's own fields (acg-faka widget, Fulu template, kamen fields);
    a top-up it describes no field for asks for the account its name implies
    (话费 → 手机号, Q币 → QQ号 …; the presets in services/delivery.py)."""
    if item.buyer_fields:
        return item.buyer_fields
    if item.delivery is Delivery.TOPUP:
        return delivery.PRESETS[delivery.topup_preset(f"{'/'.join(item.category_path)} {item.name}")].buyer_fields()
    return []


def category_context(session):
    """What placing synced goods needs, read once per page: (names and keyword rules, existing ids)."""
    return CategoryLookup(session), set(session.scalars(sa.select(Category.id)))


def _category_id(supplier, item, categories):
    """The admin's map for the remote path first, then the shop's keyword rules on
    the name, then a category of the same name ("游戏点卡/腾讯游戏" or "腾讯游戏"),
    then the supplier's default."""
    path = "/".join(item.category_path)
    lookup, existing = categories
    mapped = (supplier.category_map or {}).get(path)
    if mapped and int(mapped) in existing:  # a map entry may outlive its category
        return int(mapped)
    ruled = lookup.by_rule(item.name)
    if ruled is not None:
        return ruled
    if path:
        found = lookup.names.get(path) or lookup.names.get(item.category_path[-1])
        if found:
            return found
    return supplier.default_category_id


def _new_row(supplier, item, categories):
    stock = _stock_of(item)
    listed = supplier.auto_list and item.available and (stock > 0 or not supplier.auto_delist_at_zero)
    now = utcnow()
    return {
        "supplier_id": supplier.id,
        "code": item.code,
        "name": item.name[:200],
        "search_key": search_key(item.name[:200], item.code),
        "cover_url": item.cover_url,
        "category_id": _category_id(supplier, item, categories),
        "face_value": item.face_value,
        "cost_price": item.cost_price,
        "market_price": item.market_price,
        "sale_price": sale_price_for(supplier, item.cost_price),
        "stock_mode": StockMode.SYNCED,
        "stock": stock,
        "delivery_type": DeliveryType.CARD if item.delivery is Delivery.CARD else DeliveryType.TOPUP,
        "buyer_fields": _buyer_fields(item),
        "delivery_minutes": 5,
        "description": "",
        "is_listed": listed,
        "auto_delisted": supplier.auto_list and not listed,
        "pending_review": not supplier.auto_list,
        "low_stock_alerted": False,
        "remote_category": "/".join(item.category_path)[:200] or None,
        "is_pinned": False,
        "sort_weight": 0,
        "view_count": 0,
        "sales_count": 0,
        "created_at": now,
        "updated_at": now,
    }


def _changes(supplier, product, item, categories):
    """The fields the remote item changes on our product (empty: nothing to write)."""
    changes = {}
    if product.name != item.name[:200]:
        changes["name"] = item.name[:200]
        changes["search_key"] = search_key(item.name[:200], product.code)
    if item.cover_url and product.cover_url != item.cover_url:
        changes["cover_url"] = item.cover_url
    remote_category = "/".join(item.category_path)[:200] or None
    if product.remote_category != remote_category:
        changes["remote_category"] = remote_category
    if product.category_id is None:  # an admin's placement is never overridden
        category_id = _category_id(supplier, item, categories)
        if category_id:
            changes["category_id"] = category_id
    if item.face_value is not None and product.face_value != item.face_value:
        changes["face_value"] = item.face_value
    if product.market_price != item.market_price and item.market_price is not None:
        changes["market_price"] = item.market_price
    if item.buyer_fields is not None and product.buyer_fields != _buyer_fields(item):
        changes["buyer_fields"] = _buyer_fields(item)  # the supplier checks them when we order
    changes.update(_cost_changes(supplier, product, item.cost_price))
    held = changes.get("pending_cost", product.pending_cost)
    others = 0
    if product.stock_mode is StockMode.SYNCED:
        stock = _stock_of(item)
        if product.own_stock is not None:  # extra sources fill it too (kamen.services.sources)
            if product.own_stock != stock:
                changes["own_stock"] = stock
            others = sources.extra_stock(sa.orm.object_session(product), product.id)
            stock += others
        if product.stock != stock:
            changes["stock"] = stock
    else:  # our own card codes, or unlimited top-up: the supplier's count is not ours
        stock = 1 if product.stock_mode is StockMode.UNLIMITED else product.stock
    sellable = (item.available or others > 0) and (stock > 0 or not supplier.auto_delist_at_zero)
    if held is not None and product.sale_price <= held:
        sellable = False  # held: the old price no longer covers the new cost
    if product.is_listed and not sellable:
        changes["is_listed"], changes["auto_delisted"] = False, True
    elif not product.is_listed and product.auto_delisted and sellable:
        changes["is_listed"], changes["auto_delisted"] = True, False
    return changes


def _cost_changes(supplier, product, cost):
    """Reprice from a new cost, or hold a jump past the supplier's limit as 价格待确认.

    A held product keeps its cost and sale price; ``pending_cost`` records the
    supplier's new cost until an admin decides (services/price_holds.py)."""
    changes = {}
    if cost == product.cost_price:
        if product.pending_cost is not None:
            changes["pending_cost"] = None  # back where it was: nothing left to confirm
        return changes
    if is_price_jump(product.cost_price, cost, supplier.price_jump_percent):
        if product.pending_cost != cost:
            changes["pending_cost"] = cost
        promo = product.promo_price
        if promo is not None and promo <= cost:
            changes["promo_price"] = None
        return changes
    if product.pending_cost is not None:
        changes["pending_cost"] = None
    changes.update(repriced(supplier, product, cost))
    return changes


def repriced(supplier, product, cost):
    """The fields that move ``product`` to ``cost`` under the supplier's markup rule."""
    changes = {"cost_price": cost}
    sale = sale_price_for(supplier, cost)
    if sale != product.sale_price:
        changes["sale_price"] = sale
    if price_problem(cost=cost, sale=sale, promo=product.promo_price, min_margin=supplier.min_margin):
        changes["promo_price"] = None  # a promo below the new cost would sell at a loss
    return changes


def _delist_gone(session, supplier, run, seen):
    """A full sync did not list them: the supplier no longer offers them."""
    rows = session.execute(
        sa.select(Product.id, Product.code).where(Product.supplier_id == supplier.id, Product.is_listed.is_(True))
    ).all()
    gone = [pid for pid, code in rows if code not in seen]
    if gone:
        session.execute(
            sa.update(Product)
            .where(Product.id.in_(gone))
            .values(is_listed=False, auto_delisted=True, updated_at=utcnow())
        )
    run.delisted += len(gone)
    session.commit()


def due_syncs(session, now_local, now_utc):
    """(supplier, mode) pairs whose interval or nightly time has come.

    Counted from the last run started, failed or not: a failed run is retried
    by RQ with backoff, so the schedule must not start a new one every minute."""
    due = []
    suppliers = session.scalars(
        sa.select(Supplier).where(Supplier.is_active.is_(True), Supplier.kind != SupplierKind.MANUAL)
    ).all()
    last_run, last_full_run = _last_runs(session)
    for supplier in suppliers:
        tried = last_run.get(supplier.id)
        if _nightly_due(supplier, last_full_run.get(supplier.id), now_local, now_utc):
            due.append((supplier, "full"))
        elif supplier.sync_interval_minutes and (
            tried is None or now_utc - tried >= timedelta(minutes=supplier.sync_interval_minutes)
        ):
            due.append((supplier, "incremental" if supplier.last_sync_at else "full"))
    return due


def _last_runs(session):
    """When each supplier's latest run, and latest full run, started."""
    started = sa.func.max(SyncRun.started_at)
    full_started = sa.func.max(sa.case((SyncRun.mode == "full", SyncRun.started_at)))
    rows = session.execute(sa.select(SyncRun.supplier_id, started, full_started).group_by(SyncRun.supplier_id))
    last_run, last_full_run = {}, {}
    for supplier_id, at, full_at in rows:
        last_run[supplier_id], last_full_run[supplier_id] = at, full_at
    return last_run, last_full_run


def _nightly_due(supplier, last_full_run, now_local, now_utc):
    if not supplier.nightly_sync_at:
        return False
    hour, minute = (int(x) for x in supplier.nightly_sync_at.split(":"))
    today_at = now_local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if now_local < today_at:
        return False
    due_since_utc = now_utc - (now_local - today_at)
    return last_full_run is None or last_full_run < due_since_utc


def overdue_manual_suppliers(session, now_utc):
    """Manual suppliers whose stock an admin has not confirmed within recheck_hours."""
    suppliers = session.scalars(
        sa.select(Supplier).where(
            Supplier.is_active.is_(True), Supplier.kind == SupplierKind.MANUAL, Supplier.code != OWN_SUPPLIER_CODE
        )
    ).all()
    return [s for s in suppliers if _older_than(s.last_checked_at, now_utc, s.recheck_hours)]


def manual_suppliers_to_remind(session, now_utc):
    return [
        s for s in overdue_manual_suppliers(session, now_utc)
        if _older_than(s.recheck_reminded_at, now_utc, s.recheck_hours)
    ]


def _older_than(moment, now_utc, hours):
    return moment is None or now_utc - moment >= timedelta(hours=hours)


def mark_checked(session, supplier):
    supplier.last_checked_at = utcnow()
    session.commit()


