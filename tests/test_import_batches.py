"""An import batch never stays stuck: upsert on commit, 失败 with 重试/取消, leases, the sweeper."""
import io
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from jobs.imports import commit_import
from kamen.extensions import db
from kamen.models import ImportBatch, ImportRow, Product
from kamen.services import background, sweeper
from kamen.services.importing import batches, committing, staging
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow

PRICES = "商品编码,商品名称,供货价,库存\nA1,商品一,10.00,5\nA2,商品二,20.00,6\nA3,商品三,30.00,7\n"


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _upload(admin, text=PRICES):
    supplier = default_supplier(db.session)
    response = admin.post("/admin/imports/new", data={"supplier_id": str(supplier.id), "category_id": "",
                                                      "file": (io.BytesIO(text.encode()), "价格表.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    batch = db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))
    form = {f"col_{m['column']}": m["key"] for m in batch.match_info}
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data={
        "mode": "upsert", "markup_percent": "0", "markup_fixed": "1", "markup_step": "0.01", "max_price_change": "30",
        **form})
    assert response.status_code == 302
    return _fresh(batch.id)


def _fresh(batch_id):
    db.session.expire_all()
    return db.session.get(ImportBatch, batch_id)


def _products():
    db.session.expire_all()
    return {p.code: p for p in db.session.scalars(sa.select(Product))}


def _commit(admin, batch, **form):
    return admin.post(f"/admin/imports/{batch.id}/commit", data=form, follow_redirects=True).get_data(as_text=True)


def test_the_same_price_list_committed_twice_upserts(admin):
    first = _upload(admin)
    second = _upload(admin, PRICES.replace("20.00", "21.00"))
    assert (first.created, second.created) == (3, 3)  # both previewed before either was committed

    _commit(admin, first)
    page = _commit(admin, second)

    first, second = _fresh(first.id), _fresh(second.id)
    assert (first.status, second.status) == ("committed", "committed"), second.message
    assert (second.created, second.updated, second.unchanged) == (0, 1, 2)
    assert second.rows_in == second.created + second.updated + second.unchanged + second.skipped + second.failed
    assert "导入报告" in page
    products = _products()
    assert sorted(products) == ["A1", "A2", "A3"]
    assert products["A2"].cost_price == Decimal("21.00") and products["A2"].sale_price == Decimal("22.00")

    # The second batch's update keeps its before-image: undo restores the first file's prices.
    admin.post(f"/admin/imports/{second.id}/undo")
    assert _products()["A2"].cost_price == Decimal("20.00")


def test_a_create_only_batch_skips_codes_created_since_its_preview(admin):
    first = _upload(admin)
    supplier = default_supplier(db.session)
    batch = staging.create_batch(db.session, io.BytesIO(PRICES.encode()), "p.csv", supplier=supplier, mode="create")
    batch = staging.analyze(db.session, batch.id)
    staging.apply_mapping(db.session, batch, staging.StageOptions(
        choices={m["column"]: m["key"] for m in batch.match_info}, mode="create"))
    staging.stage(db.session, batch.id)
    _commit(admin, first)
    batches.commit(db.session, _fresh(batch.id))
    batch = _fresh(batch.id)
    assert (batch.status, batch.created, batch.skipped) == ("committed", 0, 3)
    assert len(_products()) == 3


def _poison(batch, code="A2"):
    """A staged value the database cannot store: the commit fails unexpectedly."""
    row = db.session.scalar(sa.select(ImportRow).filter_by(batch_id=batch.id, code=code))
    row.values = {**row.values, "delivery_minutes": 10**20}
    db.session.commit()
    return row


def test_an_unexpected_commit_error_fails_the_batch_logs_it_and_offers_retry(admin, caplog):
    batch = _upload(admin)
    row = _poison(batch)

    with caplog.at_level(logging.ERROR):
        page = _commit(admin, batch)

    batch = _fresh(batch.id)
    assert batch.status == "failed" and batch.step == "commit"
    assert batch.message.startswith("提交时发生内部错误（") and "重试" in batch.message
    assert batch.message in page and "重试" in page and "取消" in page
    assert _products() == {}  # the failing chunk was rolled back
    failures = [r for r in caplog.records if "background job" in r.getMessage()]
    assert failures and failures[0].exc_info is not None  # logged with its traceback

    row = db.session.get(ImportRow, row.id)
    row.values = {**row.values, "delivery_minutes": 6}
    db.session.commit()
    page = admin.post(f"/admin/imports/{batch.id}/retry", follow_redirects=True).get_data(as_text=True)
    batch = _fresh(batch.id)
    assert batch.status == "committed" and batch.created == 3 and "导入报告" in page
    assert _products()["A2"].delivery_minutes == 6


def test_a_failed_batch_can_be_cancelled(admin):
    batch = _upload(admin)
    _poison(batch)
    _commit(admin, batch)
    assert _fresh(batch.id).status == "failed"
    admin.post(f"/admin/imports/{batch.id}/cancel")
    assert _fresh(batch.id).status == "cancelled"


def test_two_commits_of_one_batch_start_one(admin):
    batch = _upload(admin)
    other_tab = db.session.get(ImportBatch, batch.id)
    batch.status = "scheduled"  # the scheduler's tick and a click at the same minute
    batch.scheduled_for = utcnow() - timedelta(minutes=1)
    db.session.commit()

    assert batches.commit_due(db.session) == [batch.id]
    assert batches.commit_due(db.session) == []
    with pytest.raises(staging.ImportInvalid):
        committing.request_commit(db.session, other_tab)
    assert _fresh(batch.id).status == "committed"


def _committing(admin):
    batch = _upload(admin)
    committing.request_commit(db.session, batch)  # marked committing; its job was never sent
    return _fresh(batch.id)


def test_a_job_whose_batch_is_leased_by_a_live_job_does_nothing(admin):
    batch = _committing(admin)
    holder = background.Lease(ImportBatch, batch.id)
    assert holder.acquire(db.session, ("committing",))

    assert commit_import(batch.id) == "committing"  # picked up twice: the second does nothing
    assert _products() == {}
    assert not background.Lease(ImportBatch, batch.id).acquire(db.session, ("committing",))


def test_the_sweeper_sends_jobs_that_never_reached_the_queue(admin):
    batch = _committing(admin)
    db.session.execute(sa.update(ImportBatch).values(job_id="lost", job_requested_at=utcnow(), job_enqueued_at=None))
    db.session.commit()

    swept = sweeper.sweep(db.session)

    assert swept.enqueued == [("import_batches", batch.id)]
    assert _fresh(batch.id).status == "committed" and len(_products()) == 3


def _dead_commit(admin):
    """A batch committing under the lease of a job that is about to die."""
    batch = _committing(admin)
    dead = background.Lease(ImportBatch, batch.id)
    assert dead.acquire(db.session, ("committing",))
    db.session.execute(sa.update(ImportBatch).values(job_id="dead", job_enqueued_at=utcnow()))
    db.session.commit()
    return batch, dead


def test_the_sweeper_resumes_a_dead_job_then_gives_up_with_a_reason(admin):
    batch, _ = _dead_commit(admin)

    assert sweeper.sweep(db.session).enqueued == []  # its heartbeat is fresh: alive
    later = utcnow() + timedelta(minutes=10)
    db.session.execute(sa.update(ImportBatch).values(job_resumes=3))
    db.session.commit()
    swept = sweeper.sweep(db.session, now=later)

    batch = _fresh(batch.id)
    assert swept.failed == [("import_batches", batch.id)]
    assert batch.status == "failed" and "后台任务中断" in batch.message and "重试" in batch.message
    admin.post(f"/admin/imports/{batch.id}/retry")
    assert _fresh(batch.id).status == "committed" and len(_products()) == 3


def test_the_sweeper_resumes_a_dead_commit_where_it_stopped(admin):
    batch, dead = _dead_commit(admin)

    swept = sweeper.sweep(db.session, now=utcnow() + timedelta(minutes=10))

    assert swept.enqueued == [("import_batches", batch.id)]
    batch = _fresh(batch.id)
    assert (batch.status, batch.created, batch.job_resumes) == ("committed", 3, 1)
    with pytest.raises(background.LeaseLost):  # the dead job, were it only slow, writes nothing more
        dead.beat(db.session)
    db.session.rollback()


def test_cancel_of_a_commit_whose_job_died_ends_it_at_once(admin):
    batch = _committing(admin)
    db.session.execute(sa.update(ImportBatch).values(job_requested_at=utcnow() - timedelta(hours=1),
                                                     job_enqueued_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    admin.post(f"/admin/imports/{batch.id}/cancel")
    assert _fresh(batch.id).status == "cancelled"
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "继续提交" in page


def test_undo_from_a_second_tab_after_the_first_is_refused(admin):
    """Two tabs on one committed batch: the first 撤销 restores, the second (its page still
    says 已提交) is refused by the status change itself, and restores nothing again."""
    batch = _upload(admin)
    _commit(admin, batch)
    second_tab = _fresh(batch.id)
    assert second_tab.status == "committed"
    assert "已撤销" in admin.post(f"/admin/imports/{batch.id}/undo", follow_redirects=True).get_data(as_text=True)
    assert _products() == {}
    db.session.add(Product(supplier_id=second_tab.supplier_id, code="A1", name="后来手动添加", cost_price=Decimal("1"),
                           sale_price=Decimal("2")))
    db.session.commit()

    second_tab = _fresh(batch.id)
    sa.orm.attributes.set_committed_value(second_tab, "status", "committed")  # what that tab still believes
    with pytest.raises(staging.ImportInvalid, match="已撤销或状态已变化"):
        committing.undo_batch(db.session, second_tab)
    assert set(_products()) == {"A1"} and _fresh(batch.id).status == "undone"
