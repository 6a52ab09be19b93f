"""Housekeeping: old uploads and staged rows are deleted, reports keep their totals; lists load in few queries."""
import io
from datetime import timedelta

import sqlalchemy as sa

from jobs.maintenance import purge_old_imports
from kamen.extensions import db
from kamen.models import ImportBatch, ImportRow, Supplier, SupplierKind, Upload
from kamen.services.importing import batches, housekeeping, staging
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow
from tests.helpers import make_products

PRICES = "商品编码,商品名称,供货价,库存\nA1,商品一,10.00,5\nA2,商品二,-1,6\n"


def _committed(name="p.csv", supplier=None):
    supplier = supplier or default_supplier(db.session)
    batch = staging.create_batch(db.session, io.BytesIO(PRICES.replace("A", name[0]).encode()), name, supplier=supplier)
    batch = staging.analyze(db.session, batch.id)
    staging.apply_mapping(db.session, batch, staging.StageOptions(choices={m["column"]: m["key"] for m in batch.match_info}))
    batch = staging.stage(db.session, batch.id)
    batches.commit(db.session, batch)
    db.session.expire_all()
    return db.session.get(ImportBatch, batch.id)


def _age(batch, days):
    batch.created_at = utcnow() - timedelta(days=days)
    db.session.commit()


def test_nightly_job_deletes_old_uploads_and_rows_keeps_totals(app, auth):
    old, recent = _committed("a.csv"), _committed("b.csv")
    abandoned = staging.create_batch(db.session, io.BytesIO(PRICES.encode()), "c.csv", supplier=default_supplier(db.session))
    staging.analyze(db.session, abandoned.id)
    _age(old, 31)
    _age(recent, 29)
    _age(abandoned, 40)
    totals = (old.rows_in, old.created, old.failed)
    assert old.upload_id is not None
    old_upload = old.upload_id

    assert purge_old_imports() == [old.id, abandoned.id]

    db.session.expire_all()
    old, recent, abandoned = (db.session.get(ImportBatch, b.id) for b in (old, recent, abandoned))
    assert old.purged_at is not None and (old.rows_in, old.created, old.failed) == totals == (2, 1, 1)
    assert old.upload_id is None and db.session.get(Upload, old_upload) is None
    assert db.session.get(Upload, recent.upload_id) is not None
    rows = dict(db.session.execute(sa.select(ImportRow.batch_id, sa.func.count()).group_by(ImportRow.batch_id)).all())
    assert old.id not in rows and rows[recent.id] == 2
    assert (abandoned.status, abandoned.purged_at is not None) == ("cancelled", True)
    assert purge_old_imports() == []  # nothing twice

    auth.login()
    page = auth.client.get(f"/admin/imports/{old.id}").get_data(as_text=True)
    assert "按保留期限清理" in page and "撤销本次导入" not in page and "下载错误行" not in page


def test_keep_days_is_a_setting_with_a_clear_message(app, auth):
    auth.login()
    old = _committed()
    _age(old, 10)
    response = auth.client.post("/admin/imports/keep-days", data={"days": "很多"}, follow_redirects=True)
    assert "保留天数应为 1 到 3650 之间的整数" in response.get_data(as_text=True)
    assert housekeeping.keep_days(db.session) == 30
    auth.client.post("/admin/imports/keep-days", data={"days": "7"})
    assert housekeeping.keep_days(db.session) == 7
    assert 'value="7"' in auth.client.get("/admin/imports").get_data(as_text=True)
    assert purge_old_imports() == [old.id]


def test_imports_page_loads_suppliers_in_one_query(app, auth, count_queries):
    auth.login()
    for n in range(2):
        supplier = Supplier(code=f"s{n}", name=f"货源{n}", kind=SupplierKind.MANUAL)
        db.session.add(supplier)
        db.session.commit()
        _committed(f"{n}.csv", supplier)
    with count_queries() as few:
        auth.client.get("/admin/imports")
    for n in range(2, 6):
        supplier = Supplier(code=f"s{n}", name=f"货源{n}", kind=SupplierKind.MANUAL)
        db.session.add(supplier)
        db.session.commit()
        _committed(f"{n}.csv", supplier)
    db.session.expire_all()
    with count_queries() as many:
        page = auth.client.get("/admin/imports").get_data(as_text=True)
    assert "货源5" in page
    assert len(many) == len(few)


def test_supplier_page_counts_pending_goods_in_sql(app, auth, count_queries):
    auth.login()
    supplier = Supplier(code="up", name="主站", kind=SupplierKind.KAMEN, base_url="http://127.0.0.1:9")
    db.session.add(supplier)
    db.session.commit()
    make_products(3, pending_review=True, is_listed=False, supplier_id=supplier.id)
    with count_queries() as statements:
        page = auth.client.get(f"/admin/suppliers/{supplier.id}").get_data(as_text=True)
    assert "待审核与分类对应（3）" in page
    assert not any("FROM products" in s and "count(" not in s for s in statements)


def test_the_scheduled_actions_are_commands_too(app, runner):
    old = _committed()
    _age(old, 31)
    assert "已清理 1 个导入批次的文件和明细。" in runner.invoke(args=["purge-imports"]).output
    assert "已重新排队：0，已标记失败：0" in runner.invoke(args=["sweep-jobs"]).output
