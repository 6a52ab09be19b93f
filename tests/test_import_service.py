"""The import pipeline without HTTP: analyze → map → stage → commit → undo."""
import io
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ImportRow, Product
from kamen.services.importing import committing, staging
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product
from tests.import_files import messy_csv


def _batch(data=None, **kwargs):
    supplier = default_supplier(db.session)
    batch = staging.create_batch(db.session, io.BytesIO(data or messy_csv()), "价格表.csv", supplier=supplier, **kwargs)
    return staging.analyze(db.session, batch.id)


def _stage(batch, **options):
    choices = {m["column"]: m["key"] for m in batch.match_info}
    staging.apply_mapping(db.session, batch, staging.StageOptions(choices=choices, **options))
    return staging.stage(db.session, batch.id)


def test_analyze_finds_header_and_maps_synonyms(app):
    batch = _batch()
    assert batch.status == "mapping", batch.message
    assert batch.file_kind == "csv" and batch.header_row == 3
    assert batch.mapping == {"code": 0, "name": 1, "cost_price": 2, "face_value": 3, "stock": 4,
                             "promo_price": 5, "promo_end": 6}


def test_stage_counts_are_honest(app):
    make_product(code="QB30", name="腾讯Q币 30元", cost_price=Decimal("28.80"), sale_price=Decimal("29.66"),
                 face_value=Decimal("30"), stock=200, supplier_id=default_supplier(db.session).id)
    batch = _stage(_batch(), markup=staging.Markup(percent=Decimal("3")))
    assert batch.status == "ready", batch.message
    rows = {r.line: r for r in db.session.scalars(sa.select(ImportRow).where(ImportRow.batch_id == batch.id))}
    assert rows[5].action == "create" and rows[5].values["sale_price"] == "9.89"
    assert rows[6].action == "unchanged"
    assert rows[7].action == "error" and "进价格式错误" in rows[7].errors[0]["message"]
    assert rows[8].action == "error" and rows[8].errors[0]["kind"] == "重复编码"
    assert rows[9].action == "error" and rows[9].errors[0]["kind"] == "负库存"
    assert rows[10].action == "skip"  # the 合计 row
    assert (batch.created, batch.updated, batch.unchanged, batch.skipped, batch.failed) == (1, 0, 1, 1, 3)
    assert batch.rows_in == 6

    committing.request_commit(db.session, batch)
    batch = committing.commit_batch(db.session, batch.id)
    assert batch.status == "committed"
    qb10 = db.session.scalar(sa.select(Product).filter_by(code="QB10"))
    assert qb10.sale_price == Decimal("9.89") and qb10.stock == 500 and qb10.face_value == Decimal("10")
    # Committing again writes nothing more.
    batch.status = "committing"
    db.session.commit()
    committing.commit_batch(db.session, batch.id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 2

    committing.undo_batch(db.session, batch)
    assert db.session.scalar(sa.select(Product).filter_by(code="QB10")) is None


def test_import_does_not_overwrite_stock_it_does_not_own(app):
    from kamen.models import StockMode

    supplier = default_supplier(db.session)
    make_product(code="QB10", name="腾讯Q币 10元", cost_price=Decimal("9.60"), sale_price=Decimal("9.89"),
                 face_value=Decimal("10"), stock=0, stock_mode=StockMode.UNLIMITED, supplier_id=supplier.id)
    make_product(code="QB30", name="腾讯Q币 30元", cost_price=Decimal("28.80"), sale_price=Decimal("29.66"),
                 face_value=Decimal("30"), stock=7, stock_mode=StockMode.CARDS, supplier_id=supplier.id)
    batch = _stage(_batch(), markup=staging.Markup(percent=Decimal("3")))
    rows = {r.line: r for r in db.session.scalars(sa.select(ImportRow).where(ImportRow.batch_id == batch.id))}
    assert (rows[5].code, rows[5].action) == ("QB10", "unchanged")
    assert (rows[6].code, rows[6].action) == ("QB30", "unchanged")


def test_staging_reads_only_the_products_of_each_chunk(app, count_queries, monkeypatch):
    """Memory follows the chunk, not the catalogue: every product lookup names its codes,
    and decisions still see the catalogue and duplicates across chunk boundaries."""
    supplier_id = default_supplier(db.session).id
    db.session.execute(sa.insert(Product), [
        {"code": f"OLD{i}", "name": f"旧商品 {i}", "cost_price": Decimal("10"), "sale_price": Decimal("12"),
         "face_value": Decimal("10"), "stock": 5, "supplier_id": supplier_id, "buyer_fields": []}
        for i in range(500)
    ])
    make_product(code="QB30", name="腾讯Q币 30元", cost_price=Decimal("10.00"), sale_price=Decimal("29.66"),
                 face_value=Decimal("30"), stock=200, supplier_id=supplier_id)
    monkeypatch.setattr(staging, "CHUNK", 2)
    app.config["IMPORT_WORKERS"] = 1  # statements counted in this process (helpers: test_import_forked.py)
    batch = _batch()
    with count_queries() as statements:
        batch = _stage(batch, markup=staging.Markup(percent=Decimal("3")))
    assert batch.status == "ready", batch.message
    lookups = [s for s in statements if "FROM products" in s and "import_rows" not in s]
    assert lookups and all("products.code IN" in s or "products.code = ANY" in s for s in lookups), lookups
    rows = {r.line: r for r in db.session.scalars(sa.select(ImportRow).where(ImportRow.batch_id == batch.id))}
    assert rows[6].action == "update" and rows[6].warnings[0]["kind"] == "价格变动过大"  # QB30, second chunk
    assert rows[8].errors[0]["kind"] == "重复编码"  # QB10 again, a chunk after the first


def test_all_sheets_together_are_held_to_the_row_limit(app):
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title in ("话费", "游戏"):
        sheet = book.create_sheet(title)
        sheet.append(["商品编码", "商品名称", "供货价"])
        for i in range(4):
            sheet.append([f"{title}{i}", f"{title} {i}", 9.5])
    data = io.BytesIO()
    book.save(data)
    app.config["IMPORT_MAX_ROWS"] = 6  # each sheet (5 rows) is within it, both are not
    batch = _stage(_batch(data.getvalue()), sheet=staging.ALL_SHEETS)
    assert (batch.status, batch.message) == ("failed", "所有工作表合计超过单次导入上限 6 行，请拆分后分批导入")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportRow)) == 0


def _commit(batch):
    committing.request_commit(db.session, batch)
    return committing.commit_batch(db.session, batch.id)


def _rows(batch):
    return {r.code: r for r in db.session.scalars(sa.select(ImportRow).where(ImportRow.batch_id == batch.id))}


def test_import_never_types_card_code_stock(app):
    from kamen.models import StockMode
    from kamen.services import card_codes

    supplier = default_supplier(db.session)
    switched = make_product(code="CARD1", stock_mode=StockMode.CARDS, stock=0, supplier_id=supplier.id)
    card_codes.upload_text(db.session, switched, "K-1\nK-2\n")
    db.session.execute(sa.update(Product).where(Product.id == switched.id)
                       .values(stock_mode=StockMode.SYNCED, stock=80))  # synced for a while
    db.session.commit()
    csv = "商品编码,商品名称,供货价,售价,库存,需同步库存\nCARD1,卡密商品,9.00,10.00,50,否\nNEW1,新卡密商品,9.00,10.00,50,否\n"
    batch = _commit(_stage(_batch(csv.encode())))
    assert batch.status == "committed", batch.message
    stock = dict(db.session.execute(sa.select(Product.code, Product.stock)).all())
    assert stock == {"CARD1": 2, "NEW1": 0}
    assert db.session.scalar(sa.select(Product.stock_mode).filter_by(code="NEW1")) is StockMode.CARDS


def test_import_applies_the_suppliers_minimum_margin(app):
    supplier = default_supplier(db.session)
    supplier.min_margin = Decimal("1.00")
    db.session.commit()
    make_product(code="OLD1", cost_price=Decimal("8.00"), sale_price=Decimal("10.00"), supplier_id=supplier.id)
    csv = ("商品编码,商品名称,供货价,售价,折扣价\nLOW1,低价商品,9.50,10.00,\nPROMO1,折扣商品,9.00,12.00,9.99\n"
           "OLD1,老商品,9.50,,\nAUTO1,按加价,9.00,,\n")
    batch = _stage(_batch(csv.encode()), markup=staging.Markup(percent=Decimal("1")))
    rows = _rows(batch)
    assert rows["LOW1"].errors[0]["message"] == "售价 ¥10.00 低于供货价 ¥9.50 加最低利润 ¥1.00，会亏本"
    assert rows["PROMO1"].errors[0]["kind"] == "折扣价低于成本"
    # OLD1's file row has no 售价 but the markup prices it: 9.50 → at least 10.50.
    assert rows["OLD1"].action == "update" and rows["OLD1"].values["sale_price"] == "10.50"
    assert rows["AUTO1"].action == "create" and rows["AUTO1"].values["sale_price"] == "10.00"
    _commit(batch)
    prices = dict(db.session.execute(sa.select(Product.code, Product.sale_price)).all())
    assert prices == {"OLD1": Decimal("10.50"), "AUTO1": Decimal("10.00")}
