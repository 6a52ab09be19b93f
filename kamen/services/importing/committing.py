"""Commit a staged batch into the catalog, and undo it.

Rows are written in chunks, one transaction each, and marked committed in
the same transaction: a commit that is cancelled, crashes or runs twice
never writes a row twice. Updates keep before-images so the batch can be
undone while nothing later has touched its products. On PostgreSQL a chunk
is a few set-based statements (bulk.py); elsewhere the rows go through
Python here.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import orm

from kamen.models import CardCode, ImportBatch, ImportRow, Product, StockMode
from kamen.services import alerts, card_codes, catalog, settings
from kamen.services.importing import bulk
from kamen.services.importing.staging import (
    PRODUCT_FIELDS, ImportInvalid, no_beat, from_json, recount, redecide, remember_layout, to_json,
    waiting_categories, warning_count,
)
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.imports")

CHUNK = 5000
DELETED_REASON = "商品在预览后已被删除，跳过"


def request_commit(session, batch, *, confirm_warnings=False, at=None):
    """Mark a previewed batch committing (or scheduled at ``at``) in one conditional
    UPDATE: of two clicks, ticks or API retries exactly one gets it. The caller asks for the job."""
    if batch.status == "committing":
        raise ImportInvalid("该批次已在提交中")
    resumable = batch.status in ("ready", "scheduled") or (batch.status == "cancelled" and batch.step == "commit")
    if not resumable:
        raise ImportInvalid("只有预览就绪的批次才能提交")
    waiting = waiting_categories(batch)
    if waiting:
        raise ImportInvalid(f"文件中有 {len(waiting)} 个店铺还没有的分类（{'、'.join(waiting[:5])}），"
                            "请先在预览上方选择创建或归入已有分类")
    warned = warning_count(session, batch)
    if warned and not confirm_warnings:
        raise ImportInvalid(f"有 {warned} 行带警告（价格变动过大、售价高于面值等），请勾选确认后再提交")
    total = session.scalar(
        sa.select(sa.func.count()).where(
            ImportRow.batch_id == batch.id, ImportRow.action.in_(("create", "update")), ImportRow.committed.is_(False)
        )
    )
    values = {"warnings_confirmed": bool(confirm_warnings), "cancel_requested": False, "progress_done": 0,
              "progress_total": total, "message": ""}
    if at is not None:
        moved = transition(session, ImportBatch, batch.id, ("ready", "cancelled"), "scheduled", scheduled_for=at,
                           **values)
    else:
        moved = transition(session, ImportBatch, batch.id, ("ready", "cancelled", "scheduled"), "committing",
                           scheduled_for=None, step="commit", **values)
    session.commit()
    if not moved:
        raise ImportInvalid("该批次已在提交中或状态已变化，请刷新页面")
    return batch


def commit_batch(session, batch_id, beat=no_beat):
    """Write the batch's create/update rows, a chunk per transaction; honours cancel
    between chunks. ``beat`` renews the job's lease in each chunk's transaction."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None or batch.status != "committing":
        return batch
    run = _Run(moved=_take_over_created_codes(session, batch, beat))
    write = _write_side_by_side if bulk.is_postgresql(session) else _write_one_by_one
    if not write(session, batch, beat, run):
        _after_writes(session, batch)
        _recount_card_stock(session, batch)
        if run.moved:
            recount(session, batch)
        if _finish(session, batch, "cancelled", message="已取消：已写入的部分保留，可继续提交或撤销"):
            _notify_low_stock(session, session.get(ImportBatch, batch_id), run.low)  # the goods written are in the shop
        return session.get(ImportBatch, batch_id)
    _after_writes(session, batch)
    if batch.delist_missing:
        _delist_missing(session, batch)
    if run.moved:
        recount(session, batch)
    _recount_card_stock(session, batch)
    if _finish(session, batch, "committed", committed_at=utcnow()):
        batch = session.get(ImportBatch, batch_id)
        _remember_layout(session, batch)
        _notify_low_stock(session, batch, run.low)
    return session.get(ImportBatch, batch_id)


@dataclass
class _Run:
    """What one run of a commit did that its tail needs, so the tail reads no staged rows for it."""
    moved: int = 0  # rows whose action changed since staging (taken over, deleted since): counts are stale
    low: list = field(default_factory=list)  # goods it created, marked low on stock as they were written

    def wrote(self, written):
        """Add a chunk's ``bulk.Written``."""
        self.moved += written.deleted
        self.low += written.low


def _write_one_by_one(session, batch, beat, run):
    """The portable path: a chunk per transaction through Python; False when cancelled."""
    threshold = settings.low_stock_threshold(session)
    while True:
        beat(session)
        session.refresh(batch)
        if batch.cancel_requested:
            return False
        rows = _next_chunk(session, batch)
        if not rows:
            return True
        written = _write_chunk(session, batch, rows, threshold)
        batch.progress_done += len(rows)
        session.commit()
        run.wrote(written)


def _write_side_by_side(session, batch, beat, run):
    """PostgreSQL: the chunks on IMPORT_WORKERS connections at once, so the database
    writes them on as many cores. Each chunk is its own transaction, which checks for
    取消 first and ends with the progress and the lease's beat (the batch row is
    locked only while it commits). False when cancelled; the first error is raised
    once the chunks under way have finished."""
    batch_id, supplier_id, now = batch.id, batch.supplier_id, utcnow()
    chunks = _BULK_WRITER.chunks(session, batch_id, CHUNK)
    threshold = settings.low_stock_threshold(session)
    session.commit()  # this session holds no connection while the chunks are written
    engine, local, opened = session.get_bind(), threading.local(), []
    cancelled, stop, lock = threading.Event(), threading.Event(), threading.Lock()

    def write(chunk):
        if stop.is_set():
            return
        own = getattr(local, "session", None)
        if own is None:
            own = local.session = orm.Session(engine)
            opened.append(own)
        try:
            if own.scalar(sa.select(ImportBatch.cancel_requested).where(ImportBatch.id == batch_id)):
                cancelled.set()
                stop.set()
                own.rollback()
                return
            written = _BULK_WRITER.write(own, batch_id, supplier_id, chunk, now, threshold)
            own.execute(sa.update(ImportBatch).where(ImportBatch.id == batch_id)
                        .values(progress_done=ImportBatch.progress_done + chunk[0])
                        .execution_options(synchronize_session=False))
            beat(own)
            own.commit()
            with lock:
                run.wrote(written)
        except BaseException:
            stop.set()
            own.rollback()
            raise

    try:
        with ThreadPoolExecutor(current_app.config["IMPORT_WORKERS"]) as pool:
            for future in [pool.submit(write, chunk) for chunk in chunks]:
                future.result()
    finally:
        for own in opened:
            own.close()
        session.expire(batch)
    return not cancelled.is_set()


def _finish(session, batch, new_status, **values):
    """committing → ``new_status`` in one conditional UPDATE, with the counts set on ``batch``;
    commits. False, rolled back, when the batch was no longer committing."""
    if transition(session, ImportBatch, batch.id, "committing", new_status, **values):
        session.commit()
        return True
    session.rollback()
    return False


def _remember_layout(session, batch):
    """Keep the layout for next week's file; the goods are in whatever happens here."""
    try:
        remember_layout(session, batch)
        session.commit()
    except sa.exc.IntegrityError:  # another commit of the same new layout saved it just now
        session.rollback()
        log.info("import batch %s: its layout was saved by another commit", batch.id)


def _notify_low_stock(session, batch, created_low):
    """One notice for the goods this import left at or below their 库存预警 threshold
    (each product once, as syncs do: it is marked until its stock recovers). New goods
    were marked as they were written (``created_low``: this run's); updated ones are
    marked here."""
    threshold = sa.func.coalesce(Product.low_stock_threshold, settings.low_stock_threshold(session))
    written = (ImportRow.batch_id == batch.id, ImportRow.committed.is_(True), ImportRow.product_id.is_not(None))
    updated = sa.select(ImportRow.product_id).where(*written, ImportRow.action == "update")
    listed = (Product.id, Product.name, Product.code, Product.stock, threshold)
    low = session.execute(
        sa.update(Product)
        .where(Product.id.in_(updated), Product.is_listed.is_(True), Product.stock_mode != StockMode.UNLIMITED,
               Product.stock <= threshold, Product.low_stock_alerted.is_(False))
        .values(low_stock_alerted=True, updated_at=Product.updated_at)  # not an edit: undo still restores them
        .returning(*listed)
        .execution_options(synchronize_session=False)
    ).all()
    for wanted in bulk.one_of(session, Product.id, created_low):
        low += session.execute(sa.select(*listed).where(wanted, Product.low_stock_alerted.is_(True))).all()
    low.sort(key=lambda row: row[0])  # by id (Row comparisons cost a second for 100,000 goods)
    session.commit()
    if not low:
        return None
    lines = [f"{name}（{code}）库存 {stock}，预警数量 {limit}" for _, name, code, stock, limit in low]
    return alerts.raise_alert(
        session, "low_stock", f"库存预警：导入 #{batch.id} 后有 {len(low)} 个商品库存不足", lines)


def _take_over_created_codes(session, batch, beat):
    """Rows staged as new whose code a product now has (the same list committed
    twice, a sync in between) are decided again: an update, or unchanged. Commit
    is an upsert by supplier + 商品编码, never a unique violation. One join per
    commit (a resumed or retried commit checks again). Returns how many rows it moved."""
    moved = 0
    while True:
        rows = session.execute(
            sa.select(ImportRow.id, ImportRow.cells, ImportRow.edits, ImportRow.sheet, ImportRow.code,
                      ImportRow.warnings)
            .join(Product, sa.and_(Product.supplier_id == batch.supplier_id, Product.code == ImportRow.code))
            .where(ImportRow.batch_id == batch.id, ImportRow.action == "create", ImportRow.committed.is_(False))
            .order_by(ImportRow.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return moved
        beat(session)
        # Never "create" again: they leave this query.
        session.execute(sa.update(ImportRow), redecide(session, batch, rows))
        session.commit()
        moved += len(rows)


def _next_chunk(session, batch):
    return session.scalars(
        sa.select(ImportRow)
        .where(ImportRow.batch_id == batch.id, ImportRow.action.in_(("create", "update")),
               ImportRow.committed.is_(False))
        .order_by(ImportRow.id)
        .limit(CHUNK)
    ).all()


def _write_chunk(session, batch, rows, threshold):
    """Write ``rows`` through Python; the caller commits. Returns a bulk.Written."""
    now = utcnow()
    deleted = 0
    updates = [r for r in rows if r.action == "update"]
    current = {}
    if updates:
        found = session.execute(
            sa.select(Product.id, *[getattr(Product, f) for f in PRODUCT_FIELDS])
            .where(Product.id.in_([r.product_id for r in updates]))
        )
        current = {row.id: row for row in found}
    for row in updates:
        before = current.get(row.product_id)
        if before is None:  # deleted since staging: nothing to update
            row.action, row.skip_reason, row.committed = "skip", DELETED_REASON, True
            deleted += 1
            continue
        values = from_json(row.values)
        row.before = to_json({f: getattr(before, f) for f in values})
        session.execute(sa.update(Product).where(Product.id == row.product_id).values(**values, updated_at=now))
        row.committed = True
    creates = [r for r in rows if r.action == "create"]
    low = []
    if creates:
        inserted = session.execute(
            sa.insert(Product).returning(Product.id, Product.code, Product.low_stock_alerted),
            [_new_product(batch, r, now, threshold) for r in creates],
        ).all()
        ids = {code: pid for pid, code, _ in inserted}
        low = [pid for pid, _, alerted in inserted if alerted]
        for row in creates:
            row.product_id = ids[row.code]
            row.committed = True
    return bulk.Written(deleted, low)


NEW_PRODUCT_DEFAULTS = {
    **{f: None for f in PRODUCT_FIELDS},
    "stock": 0, "stock_mode": "synced", "delivery_type": "card", "buyer_fields": [], "delivery_minutes": 5,
    "description": "", "is_listed": True, "is_pinned": False, "sort_weight": 0, "view_count": 0, "sales_count": 0,
    "auto_delisted": False, "pending_review": False, "low_stock_alerted": False, "remote_category": None,
}


_BULK_WRITER = bulk.ChunkWriter(PRODUCT_FIELDS, NEW_PRODUCT_DEFAULTS, DELETED_REASON)


def _new_product(batch, row, now, threshold):
    """Every key present in every row: one executemany INSERT needs uniform rows. Marked
    low on stock as it is written when it is (as bulk.py's INSERT does)."""
    values = {**NEW_PRODUCT_DEFAULTS, **from_json(row.values), "supplier_id": batch.supplier_id, "code": row.code,
              "created_at": now, "updated_at": now}
    values["low_stock_alerted"] = bool(values["is_listed"] and values["stock_mode"] != StockMode.UNLIMITED.value
                                       and values["stock"] <= threshold)
    return values


def _committed_ids(session, batch):
    """The batch's written products, as a list: an ``IN (subquery)`` over rows and goods
    loaded a moment ago is planned on stale statistics (a nested loop over 100k × 100k)."""
    return session.scalars(sa.select(ImportRow.product_id).where(
        ImportRow.batch_id == batch.id, ImportRow.committed.is_(True), ImportRow.product_id.is_not(None))).all()


def _after_writes(session, batch):
    """After the chunks: on PostgreSQL (whose set-based chunks write the search keys with
    the names) fresh statistics, so the tail is planned on the goods just written; on the
    portable path the written names get their shop search keys."""
    if bulk.is_postgresql(session):
        bulk.refresh_statistics(session, "products")
        return
    for ids in _chunks(_committed_ids(session, batch)):
        catalog.refresh_search_keys(session, ids)


def _recount_card_stock(session, batch):
    """Products the batch made 本地卡密 were staged with stock 0: their stock is their unsold
    codes (goods it created have none: an upload since counted its own)."""
    made_cards = session.scalars(sa.select(ImportRow.product_id).where(
        ImportRow.batch_id == batch.id, ImportRow.committed.is_(True), ImportRow.action == "update",
        ImportRow.values["stock_mode"].as_string() == StockMode.CARDS.value)).all()
    for ids in _chunks(made_cards):
        card_codes.recount_stock(session, ids)


def _delist_missing(session, batch):
    """Delist the supplier's (or the category's) listed products the file did not name."""
    in_file = sa.select(ImportRow.code).where(ImportRow.batch_id == batch.id, ImportRow.code.is_not(None))
    stmt = sa.select(Product.id).where(
        Product.supplier_id == batch.supplier_id, Product.is_listed.is_(True), Product.code.not_in(in_file)
    )
    if batch.delist_missing == "category":
        stmt = stmt.where(Product.category_id == batch.category_id)
    ids = session.scalars(stmt).all()
    for chunk in _chunks(ids):
        session.execute(sa.update(Product).where(Product.id.in_(chunk)).values(is_listed=False, updated_at=utcnow()))
    batch.delisted_ids = ids


def _chunks(ids, size=10_000):
    """Bounded IN lists: PostgreSQL takes at most 65,535 parameters per statement."""
    return (ids[i:i + size] for i in range(0, len(ids), size))


def _edited_since(batch):
    """Products changed after the batch was committed (an edit, a sync, card codes added)."""
    return sa.or_(
        Product.updated_at > batch.committed_at,
        Product.id.in_(sa.select(CardCode.product_id)),
    )


def undo_blockers(session, batch, limit=10):
    """Codes of this batch's products changed after it was committed: undo skips them
    (it would lose that change). None when the batch cannot be undone."""
    if batch.status != "committed" or batch.purged_at is not None:  # before-images cleared by housekeeping
        return None
    return [code for _, code in _edited_products(session, batch, limit)]


def _edited_products(session, batch, limit=None):
    touched = sa.select(ImportRow.product_id).where(ImportRow.batch_id == batch.id, ImportRow.committed.is_(True))
    stmt = sa.select(Product.id, Product.code).where(Product.id.in_(touched), _edited_since(batch)).order_by(Product.id)
    found = session.execute(stmt.limit(limit) if limit else stmt).all()
    for ids in _chunks(batch.delisted_ids or []):
        if limit and len(found) >= limit:
            break
        more = sa.select(Product.id, Product.code).where(Product.id.in_(ids), _edited_since(batch))
        found += session.execute(more.limit(limit) if limit else more).all()
    return found[:limit] if limit else found


def undo_batch(session, batch):
    """Restore before-images, delete created products, relist what was delisted, all in one
    transaction, except for the products changed since the import: they stay as they are.
    Returns the codes skipped."""
    if undo_blockers(session, batch, limit=1) is None:
        raise ImportInvalid("只有已提交的批次才能撤销")
    edited = _edited_products(session, batch)
    skipped = {product_id for product_id, _ in edited}
    # First, in the same transaction: of two undo clicks one restores, the other is refused.
    if not transition(session, ImportBatch, batch.id, "committed", "undone", undone_at=utcnow()):
        session.rollback()
        raise ImportInvalid("该批次已撤销或状态已变化，请刷新页面")
    committed = (ImportRow.batch_id == batch.id, ImportRow.committed.is_(True))
    restores = {}
    rows = session.execute(
        sa.select(ImportRow.product_id, ImportRow.before).where(*committed, ImportRow.action == "update")
    )
    for product_id, before in rows:
        if before and product_id not in skipped:
            # One executemany per set of restored columns (rows of one batch mostly share it).
            restores.setdefault(tuple(sorted(before)), []).append({"id": product_id, **from_json(before)})
    for params in restores.values():
        session.execute(sa.update(Product), params)
    catalog.refresh_search_keys(session, sa.select(ImportRow.product_id).where(*committed, ImportRow.action == "update"))
    created = [pid for pid in session.scalars(
        sa.select(ImportRow.product_id).where(*committed, ImportRow.action == "create")) if pid not in skipped]
    for ids in _chunks(created):
        session.execute(sa.delete(Product).where(Product.id.in_(ids)))
    undone = [pid for pid in session.scalars(sa.select(ImportRow.product_id).where(*committed)) if pid not in skipped]
    for ids in _chunks(undone):
        session.execute(sa.update(ImportRow).where(*committed, ImportRow.product_id.in_(ids)).values(committed=False))
    relist = [pid for pid in batch.delisted_ids or [] if pid not in skipped]
    for ids in _chunks(relist):
        session.execute(sa.update(Product).where(Product.id.in_(ids)).values(is_listed=True))
    codes = [code for _, code in edited]
    if codes:
        shown = "、".join(codes[:20]) + (f" 等 {len(codes)} 个" if len(codes) > 20 else "")
        batch.message = f"撤销时跳过了导入后又被修改过的商品：{shown}（保持当前数据）"
    session.commit()
    return codes
