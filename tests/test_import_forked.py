"""Staging in forked helper processes (PostgreSQL): the same rows as one process stages,
duplicates found across chunks, a helper's failure fails the batch whole."""
import io
import logging
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ImportBatch, ImportRow, Product
from kamen.services.importing import batches, bulk, forked, staging
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product
from tests.import_files import messy_csv, messy_xlsx

pytestmark = pytest.mark.backends("postgresql")

COMPARED = ("sheet", "line", "action", "code", "values", "errors", "warnings", "has_warnings", "error_kinds",
            "changes", "category_path", "skip_reason", "product_id", "edits", "cells", "auto_fixed")


def price_list(rows=60):
    """Rows with codes repeated far apart (other chunks), bad prices, negative stock, and
    goods the shop already has (updates and unchanged rows)."""
    out = []
    for i in range(rows):
        code = f"G{i % 45:03d}"  # rows 45.. repeat rows 0..: duplicates across chunks
        cost = "abc" if i % 13 == 5 else f"{9 + i % 7}.{i % 100:02d}"
        stock = "-3" if i % 17 == 4 else str(i * 3)
        out.append([code, f"腾讯Q币 {i}元", cost, "20", stock, "", ""])
    return out


def _staged(batch_id, workers, app):
    app.config["IMPORT_WORKERS"] = workers
    batch = staging.analyze(db.session, batch_id)
    choices = {m["column"]: m["key"] for m in batch.match_info}
    staging.apply_mapping(db.session, batch, staging.StageOptions(choices=choices,
                                                                  markup=staging.batch_markup(batch)))
    batch = staging.stage(db.session, batch.id)
    assert batch.status == "ready", batch.message
    rows = db.session.scalars(sa.select(ImportRow).where(ImportRow.batch_id == batch.id)
                              .order_by(ImportRow.line)).all()
    return batch, [{name: getattr(row, name) for name in COMPARED} for row in rows]


def _upload(data, filename="价格表.csv"):
    supplier = default_supplier(db.session)
    return staging.create_batch(db.session, io.BytesIO(data), filename, supplier=supplier).id


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(staging, "CHUNK", 7)
    # Earlier browser tests leave idle asyncio threads in this process, so the guard for
    # production (fork only from a single-threaded process) would keep staging in one
    # process; the helpers forked here run only kamen's code. The guard itself is
    # tested in a real rq work horse below.
    monkeypatch.setattr(forked, "can_fork", lambda: True)


def test_helpers_stage_the_rows_one_process_would(app, small_chunks, caplog):
    supplier_id = default_supplier(db.session).id
    for i in (1, 2, 30):
        make_product(code=f"G{i:03d}", name=f"腾讯Q币 {i}元", cost_price=Decimal("9.00"), sale_price=Decimal("9.50"),
                     face_value=Decimal("20"), stock=i * 3, supplier_id=supplier_id)
    data = messy_csv(price_list())
    alone_batch, alone = _staged(_upload(data), 1, app)
    with caplog.at_level(logging.INFO, logger="kamen.imports"):
        forked_batch, helped = _staged(_upload(data), 2, app)
    assert "2 helper processes" in caplog.text
    assert helped == alone
    counts = ("created", "updated", "unchanged", "skipped", "failed", "rows_in", "progress_done")
    assert [getattr(forked_batch, c) for c in counts] == [getattr(alone_batch, c) for c in counts]
    by_line = {row["line"]: row for row in helped}
    repeated = by_line[5 + 45]  # G000 again, 45 rows (several chunks) after line 5
    assert repeated["action"] == "error" and "与第 5 行重复" in repeated["errors"][0]["message"]
    assert sum(row["error_kinds"] == ",重复编码," for row in helped) > 5


def test_an_xlsx_with_dates_stages_in_helpers_as_in_one_process(app, small_chunks):
    """Chunks go to the helpers marshalled, those with cells marshal cannot carry (an xlsx's
    dates) pickled: either way the rows are the ones one process stages."""
    rows = price_list()
    for i, row in enumerate(rows):
        if i % 20 < 5:  # some chunks with dates, some without
            row[5], row[6] = "8.00", datetime(2027, 1, 1 + i % 20, 18, 30)
    data = messy_xlsx(rows)
    _, alone = _staged(_upload(data, "价格表.xlsx"), 1, app)
    _, helped = _staged(_upload(data, "价格表.xlsx"), 2, app)
    assert helped == alone
    dated = [row for row in helped if row["values"].get("promo_end")]
    assert len(dated) > 5 and dated[0]["edits"] == {"promo_end": "2027-01-01 18:30"}


def test_a_helper_failing_fails_the_batch_and_retry_stages_it_whole(app, small_chunks, monkeypatch, caplog):
    app.config["IMPORT_WORKERS"] = 2
    batch_id = _upload(messy_csv(price_list()))
    batch = staging.analyze(db.session, batch_id)
    options = staging.StageOptions(choices={m["column"]: m["key"] for m in batch.match_info},
                                   markup=staging.batch_markup(batch))
    copy = bulk.copy_staged_rows

    def broken_copy(session, rows):  # inherited by the forked helpers
        if any(row["line"] > 40 for row in rows):
            raise RuntimeError("disk full")
        return copy(session, rows)

    monkeypatch.setattr(bulk, "copy_staged_rows", broken_copy)
    batches.confirm_mapping(db.session, batch, options)  # the stage job runs in-process here
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch_id)
    assert batch.status == "failed" and "RuntimeError" in batch.message and "重试" in batch.message
    assert "disk full" in caplog.text  # the job's failure is logged with its reason

    monkeypatch.setattr(bulk, "copy_staged_rows", copy)
    batches.retry(db.session, batch)
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch_id)
    assert batch.status == "ready", batch.message
    lines = db.session.scalars(sa.select(ImportRow.line).where(ImportRow.batch_id == batch_id)).all()
    assert len(lines) == len(set(lines)) == 61  # every row once, with the 合计 row


def test_a_real_worker_stages_with_helpers_and_commits(app, redis_url, db_url):
    """Production: the stage job runs in an rq work horse, which forks the helpers."""
    import uuid

    from kamen import queue
    from tests.helpers import burst_worker

    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    batch, _ = batches.upload(db.session, io.BytesIO(messy_csv(price_list())), "价格表.csv",
                              supplier=default_supplier(db.session))
    assert burst_worker(app, db_url, redis_url, queue_name).returncode == 0
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == "mapping", batch.message
    batches.confirm_mapping(db.session, batch, staging.StageOptions(
        choices={m["column"]: m["key"] for m in batch.match_info}, markup=staging.batch_markup(batch)))
    probe = queue.enqueue("tests.jobs_probe.import_helpers", batch.id)
    result = burst_worker(app, db_url, redis_url, queue_name)
    assert result.returncode == 0, result.stderr
    assert queue.rq_queue().fetch_job(probe.id).return_value() == app.config["IMPORT_WORKERS"] == 2
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == "ready", batch.message
    assert (batch.created, batch.failed, batch.skipped, batch.progress_done) == (38, 22, 1, 61)
    batches.commit(db.session, batch, confirm_warnings=True)
    assert burst_worker(app, db_url, redis_url, queue_name).returncode == 0
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == "committed", batch.message
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 38


def test_commit_chunks_written_side_by_side_survive_a_failed_chunk(app, monkeypatch):
    """Commit on two connections: a chunk that fails is rolled back alone, the batch is
    失败 with the reason, and 重试 writes the rest, nothing twice."""
    from kamen.services.importing import committing

    app.config["IMPORT_WORKERS"] = 2
    monkeypatch.setattr(committing, "CHUNK", 4)
    batch, _ = batches.upload(db.session, io.BytesIO(messy_csv(price_list())), "价格表.csv",
                              supplier=default_supplier(db.session))
    batch = db.session.get(ImportBatch, batch.id)
    batches.confirm_mapping(db.session, batch, staging.StageOptions(
        choices={m["column"]: m["key"] for m in batch.match_info}, markup=staging.batch_markup(batch)))
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.created) == ("ready", 38)
    write, failed = bulk.ChunkWriter.write, []

    def flaky(self, session, batch_id, supplier_id, chunk, *args):
        if not failed and chunk[1] > 20:  # one chunk past the first few
            failed.append(chunk)
            raise RuntimeError("connection reset")
        return write(self, session, batch_id, supplier_id, chunk, *args)

    monkeypatch.setattr(bulk.ChunkWriter, "write", flaky)
    batches.commit(db.session, batch, confirm_warnings=True)
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == "failed" and "RuntimeError" in batch.message
    written = db.session.scalar(sa.select(sa.func.count()).select_from(Product))
    assert 0 < written < 38
    assert written == db.session.scalar(sa.select(sa.func.count()).where(
        ImportRow.batch_id == batch.id, ImportRow.committed.is_(True)))

    batches.retry(db.session, batch)
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == "committed", batch.message
    codes = db.session.scalars(sa.select(Product.code)).all()
    assert len(codes) == len(set(codes)) == 38
    assert batch.progress_done == batch.progress_total


def test_only_a_single_threaded_process_forks():
    import threading

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not forked.can_fork()
    finally:
        release.set()
        other.join()


def test_a_chunks_goods_are_found_by_code_whatever_order_and_collation(app):
    """Staging looks a chunk's codes up by an index range the database works out in its own
    collation, with the few codes at either end asked for apart: every code is found
    exactly, in code order or not, with codes that sort differently byte by byte and by
    collation (case, hyphens, full-width), repeats from far away, blanks and new codes."""
    supplier = default_supplier(db.session)
    odd = ["a-1", "A-1", "a1", "B 2", "b2", "Ｃ3", "c-3", "Z-9", "z9", "_x"]
    codes = [f"SP{100000 + i}" for i in range(600)] + odd
    db.session.add_all(Product(supplier_id=supplier.id, code=code, name=f"商品 {code}", cost_price=Decimal("9.00"),
                               sale_price=Decimal("10.00")) for code in codes)
    db.session.commit()
    batch = staging.create_batch(db.session, io.BytesIO(messy_csv()), "价格表.csv", supplier=supplier)
    context = staging._Context(db.session, batch)
    asked = codes[300:560] + codes[5:9] + odd + [None, "NEW-1", "SP999999"]
    for order in (sorted, lambda c: list(reversed(c)), lambda c: c):
        context.load(db.session, order([c for c in asked if c is not None]) + [None])
        assert set(context.current) == set(codes[300:560] + codes[5:9] + odd)
        assert set(context.prices) == set(context.current)
    where = bulk.one_of(db.session, Product.code, asked, ranged=True)
    assert len(where) == 2  # the bulk of them by a range, the ends apart
