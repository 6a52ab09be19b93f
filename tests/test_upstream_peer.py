"""Two real kamens over HTTP: a 主站 serving its upstream API and a 分站 syncing from it."""
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Product, Supplier, SupplierKind, SyncRun
from kamen.secretbox import encrypt
from kamen.services import syncing


def _supplier(main, secret=None):
    supplier = Supplier(code="main", name="主站", kind=SupplierKind.KAMEN, base_url=main["url"],
                        app_id=main["app_id"], secret_encrypted=encrypt(secret or main["secret"]),
                        auto_list=True, markup_percent=Decimal("10"))
    db.session.add(supplier)
    db.session.commit()
    return supplier


def _sync(supplier, mode):
    run = syncing.request_sync(db.session, supplier, mode)
    syncing.run_sync(db.session, run.id)
    db.session.expire_all()
    return db.session.get(SyncRun, run.id)


def test_sub_station_syncs_catalog_and_stock_changes(app, main_station):
    supplier = _supplier(main_station)
    run = _sync(supplier, "full")
    assert run.status == "succeeded", run.message
    assert run.created == 30 and run.failed == 0
    qb10 = db.session.scalar(sa.select(Product).filter_by(supplier_id=supplier.id, code="self.QB10"))
    # 分站价 on the main station = 9.60 × 1.02 = 9.79; our markup of 10% → 10.77.
    assert qb10.cost_price == Decimal("9.79") and qb10.sale_price == Decimal("10.77")
    # The 主站's buyer field arrives whole: its pattern and hint are not lost on the way.
    assert qb10.buyer_fields == [{"key": "account", "label": "QQ号", "pattern": r"^[1-9]\d{4,11}$",
                                  "hint": "5-12 位数字"}]

    with main_station["app"].app_context():
        product = db.session.scalar(sa.select(Product).filter_by(code="WY50"))
        product.stock = 4
        db.session.commit()
    run = _sync(supplier, "incremental")
    assert (run.status, run.created, run.changed) == ("succeeded", 0, 1)
    wy50 = db.session.scalar(sa.select(Product).filter_by(supplier_id=supplier.id, code="self.WY50"))
    assert wy50.stock == 4

    run = _sync(supplier, "incremental")
    assert (run.status, run.changed, run.created) == ("succeeded", 0, 0)


def test_bad_signature_is_refused_and_recorded(app, main_station):
    supplier = _supplier(main_station, secret="not-the-secret")
    run = _sync(supplier, "full")
    assert run.status == "failed"
    assert "签名错误" in run.message
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product).where(Product.supplier_id == supplier.id)) == 0
