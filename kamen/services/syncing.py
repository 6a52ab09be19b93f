"""同步商品库: pull a supplier's catalog into ours, page by page.

Each page is one transaction, so a bad answer halfway leaves every earlier
page applied and nothing half-written. Rows are compared before writing: an
incremental sync with nothing new writes nothing.
"""
import logging
from datetime import timedelta

import sqlalchemy as sa

from kamen.config import low_stock_threshold
from kamen.models import DeliveryType, Product, StockMode, Supplier, SupplierKind, SyncRun
from kamen.secretbox import decrypt
from kamen.services import alerts, settings
from kamen.services.pricing import Markup, price_problem
from kamen.services.suppliers import OWN_SUPPLIER_CODE
from kamen.suppliers import adapter_for
from kamen.suppliers.base import Delivery, Level, RejectedItem, SupplierError, Transient
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.sync")

# A supplier that gives a level but no count: the stock we record for it.
LEVEL_STOCK = {Level.IN: 999, Level.LOW: 1, Level.OUT: 0, Level.UNKNOWN: 0}
STALE_RUN = timedelta(hours=2)
# Incremental syncs ask for changes since the last sync minus this overlap, so
# a supplier clock a little behind ours loses nothing; re-read rows that did
# not change cost no writes.
SYNC_OVERLAP = timedelta(minutes=10)
MAX_ERRORS_KEPT = 200
CODE_LENGTH = Product.__table__.c.code.type.length


class SyncBusy(Exception):
    """A sync of this supplier is already queued or running."""


def supplier_markup(supplier):
    return Markup(percent=supplier.markup_percent, fixed=supplier.markup_fixed, step=supplier.markup_step,
                  min_margin=supplier.min_margin)


def sale_price_for(supplier, cost):
    return supplier_markup(supplier).apply(cost)


def adapter_for_supplier(supplier):
    secret = decrypt(supplier.secret_encrypted)
    config = {
        "base_url": supplier.base_url,
        "app_key": supplier.app_id,
        "app_id": supplier.app_id,
        "secret": secret,
    }
    return adapter_for(supplier.kind, config)


def request_sync(session, supplier, mode):
    """Create a queued SyncRun unless one is active; the caller enqueues it."""
    if supplier.kind is SupplierKind.MANUAL:
        raise SupplierError("表格/手工货源没有接口可同步，请通过批量导入更新商品")
    active = session.scalar(
        sa.select(SyncRun)
        .where(SyncRun.supplier_id == supplier.id, SyncRun.status.in_(("queued", "running")))
        .order_by(SyncRun.id.desc())
    )
    if active is not None:
        if utcnow() - active.started_at < STALE_RUN:
            raise SyncBusy(active.id)
        active.status, active.finished_at = "failed", utcnow()
        active.message = "运行超时，已视为失败（可能是进程重启）"
    run = SyncRun(supplier_id=supplier.id, mode=mode, status="queued")
    session.add(run)
    session.commit()
    return run


def run_sync(session, run_id, adapter=None):
    """Execute a queued run. Raises Transient after recording it, so RQ can retry."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status in ("succeeded",):
        return run
    supplier = run.supplier
    run.status, run.attempts, run.started_at, run.finished_at = "running", run.attempts + 1, utcnow(), None
    session.commit()
    crossed = []  # filled page by page: committed pages alert even if a later one fails
    try:
        adapter = adapter or adapter_for_supplier(supplier)
        _pull(session, supplier, run, adapter, crossed)
    except SupplierError as exc:
        session.rollback()
        _finish_failed(session, supplier, run, exc)
        _alert_low_stock(session, supplier, crossed)
        if isinstance(exc, Transient):
            raise
        return run
    except Exception as exc:  # a bug or a database error must not leave the run "running" for hours
        session.rollback()
        reason = SupplierError(f"同步时发生内部错误（{type(exc).__name__}），详见服务器日志")
        _finish_failed(session, supplier, run, reason)
        _alert_low_stock(session, supplier, crossed)
        raise
    now = utcnow()
    run.status, run.finished_at = "succeeded", now
    supplier.last_sync_at = run.started_at
    if run.mode == "full":
        supplier.last_full_sync_at = run.started_at
    supplier.failure_streak = 0
    session.commit()
    _alert_low_stock(session, supplier, crossed)
    return run


def _alert_low_stock(session, supplier, crossed):
    if crossed:
        alerts.raise_alert(
            session, "low_stock", f"库存预警：{supplier.name} 有 {len(crossed)} 个商品库存不足", crossed
        )


def _finish_failed(session, supplier, run, exc):
    run = session.get(SyncRun, run.id)
    supplier = session.get(Supplier, supplier.id)
    run.status, run.finished_at = "failed", utcnow()
    run.message = str(exc)
    run.errors = (run.errors or []) + [{"code": None, "reason": str(exc)}]
    if run.attempts == 1:  # RQ's retries of this run are not more failed runs
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


def _pull(session, supplier, run, adapter, crossed):
    updated_after = None
    if run.mode == "incremental" and supplier.last_sync_at is not None:
        updated_after = supplier.last_sync_at - SYNC_OVERLAP
    seen = set()
    cursor = None
    while True:
        page = adapter.list_products(cursor=cursor, updated_after=updated_after)
        crossed += _apply_page(session, supplier, run, page)
        seen.update(item.code for item in page.items)
        seen.update(r.code for r in page.rejected if r.code)
        cursor = page.next_cursor
        if not cursor:
            break
    if run.mode == "full":
        _delist_gone(session, supplier, run, seen)


def _apply_page(session, supplier, run, page):
    """Upsert one page in one transaction; returns low-stock alert lines."""
    threshold_default = low_stock_threshold()
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
    inserts, updates, crossed = [], [], []
    for code, item in items.items():
        product = existing.get(code)
        if product is None:
            row = _new_row(supplier, item)
            if row["is_listed"] and row["stock"] <= threshold_default:
                # Listed on arrival and already short: alert now, not at its next change.
                row["low_stock_alerted"] = True
                crossed.append(f"{row['name']}（{code}）库存 {row['stock']}，阈值 {threshold_default}")
            inserts.append(row)
            continue
        changes = _changes(supplier, product, item)
        if not changes:
            run.unchanged += 1
            continue
        threshold = product.effective_threshold(threshold_default)
        stock = changes.get("stock", product.stock)
        if product.stock_mode is not StockMode.UNLIMITED:
            if stock <= threshold and not product.low_stock_alerted:
                changes["low_stock_alerted"] = True
                crossed.append(f"{product.name}（{product.code}）库存 {stock}，阈值 {threshold}")
            elif stock > threshold and product.low_stock_alerted:
                changes["low_stock_alerted"] = False
        changes["id"] = product.id
        changes["updated_at"] = utcnow()
        updates.append(changes)
    if inserts:
        session.execute(sa.insert(Product), inserts)
    if updates:
        session.execute(sa.update(Product), updates)
    run.pages += 1
    run.seen += len(items) + len(rejected)
    run.created += len(inserts)
    run.changed += len(updates)
    run.failed += len(rejected)
    if rejected:
        kept = MAX_ERRORS_KEPT - len(run.errors or [])
        run.errors = (run.errors or []) + [{"code": r.code, "reason": r.reason} for r in rejected[:max(kept, 0)]]
    session.commit()
    return crossed


def _stock_of(item):
    if item.stock.qty is not None:
        return max(item.stock.qty, 0)
    return LEVEL_STOCK[item.stock.level]


def _buyer_fields(item):
    if item.delivery is not Delivery.TOPUP:
        return []
    template = item.field_template
    if isinstance(template, list) and template:
        return [
            {"key": str(f.get("name") or f"field{n}"), "label": str(f.get("label") or f.get("name")),
             "pattern": "", "hint": ""}
            for n, f in enumerate(template) if isinstance(f, dict)
        ]
    return [{"key": "account", "label": "充值账号", "pattern": "", "hint": ""}]


def _category_id(supplier, item):
    path = "/".join(item.category_path)
    mapped = (supplier.category_map or {}).get(path)
    return int(mapped) if mapped else supplier.default_category_id


def _new_row(supplier, item):
    stock = _stock_of(item)
    listed = supplier.auto_list and item.available and (stock > 0 or not supplier.auto_delist_at_zero)
    now = utcnow()
    return {
        "supplier_id": supplier.id,
        "code": item.code,
        "name": item.name[:200],
        "category_id": _category_id(supplier, item),
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


def _changes(supplier, product, item):
    """The fields the remote item changes on our product (empty: nothing to write)."""
    changes = {}
    if product.name != item.name[:200]:
        changes["name"] = item.name[:200]
    if item.face_value is not None and product.face_value != item.face_value:
        changes["face_value"] = item.face_value
    if product.market_price != item.market_price and item.market_price is not None:
        changes["market_price"] = item.market_price
    if product.cost_price != item.cost_price:
        changes["cost_price"] = item.cost_price
        sale = sale_price_for(supplier, item.cost_price)
        if sale != product.sale_price:
            changes["sale_price"] = sale
        if price_problem(cost=item.cost_price, sale=sale, promo=product.promo_price, min_margin=supplier.min_margin):
            changes["promo_price"] = None  # a promo below the new cost would sell at a loss
    if product.stock_mode is StockMode.SYNCED:
        stock = _stock_of(item)
        if product.stock != stock:
            changes["stock"] = stock
    else:  # our own card codes, or unlimited top-up: the supplier's count is not ours
        stock = 1 if product.stock_mode is StockMode.UNLIMITED else product.stock
    sellable = item.available and (stock > 0 or not supplier.auto_delist_at_zero)
    if product.is_listed and not sellable:
        changes["is_listed"], changes["auto_delisted"] = False, True
    elif not product.is_listed and product.auto_delisted and sellable:
        changes["is_listed"], changes["auto_delisted"] = True, False
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


