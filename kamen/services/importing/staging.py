"""From an uploaded file to staged rows the admin previews and fixes.

analyze: open the file, find the header, map columns (a saved template first).
stage: validate every row into ImportRow with the action committing would
take (create / update / unchanged / skip / error) and old → new per field.
revalidate_cell / set_skipped: the preview's inline fixes, one row at a time.
"""
import collections
import gc
import hashlib
import itertools
import json
import logging
import marshal
import multiprocessing.util
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import orm

from kamen.models import Category, ImportBatch, ImportFix, ImportRow, MappingTemplate, Product, StockMode
from kamen.services import delivery, uploads
from kamen.services.categories import CategoryLookup, path_key, similar_category
from kamen.services.importing import bulk, forked
from kamen.services.importing.errors import BadCell, ImportFileError
from kamen.services.importing.header import SourceRow, cell_text, locate_table
from kamen.services.importing.mapping import (
    FIELDS_BY_KEY, ColumnMatch, Mapping, auto_map, header_fingerprint, manual_map, normalize_header,
)
from kamen.services.importing.normalize import parse_code
from kamen.services.importing.readers import ReadLimits, open_spreadsheet
from kamen.services.importing.validate import FileValidator, Issue, validate_row
from kamen.services.pricing import PRICE_BASES, Markup, price_problem
from kamen.services.transitions import transition
from kamen.timeutil import from_local

log = logging.getLogger("kamen.imports")

ALL_SHEETS = "*"
CHUNK = 5000  # rows validated against one catalogue lookup, staged and committed together
PRICES_REMEMBERED = 20_000  # price combinations a file's staging keeps the checks of
MONEY_FIELDS = ("face_value", "cost_price", "market_price", "sale_price", "promo_price")
TIME_FIELDS = ("promo_start", "promo_end")
# Product attributes an import may set, compared for "unchanged" and kept as before-images.
PRODUCT_FIELDS = (
    "name", "category_id", "face_value", "tier_label", "cost_price", "market_price", "sale_price", "stock",
    "promo_price", "promo_start", "promo_end", "stock_mode", "delivery_type", "buyer_fields", "delivery_minutes",
)


class ImportInvalid(ValueError):
    """A request the admin must change (bad mapping, wrong state); str() is Chinese."""


def read_limits():
    config = current_app.config
    return ReadLimits(max_bytes=config["IMPORT_MAX_BYTES"], max_rows=config["IMPORT_MAX_ROWS"])


def create_batch(session, stream, filename, *, supplier, category_id=None, mode="upsert", sheet=None):
    """Store the upload (in the database) and create its batch; the file is read by ``analyze``."""
    markup = supplier_markup_defaults(supplier)
    hashing = _HashingReader(stream)
    try:
        upload = uploads.save(session, hashing, purpose="import", filename=filename,
                              max_bytes=current_app.config["IMPORT_MAX_BYTES"])
    except uploads.UploadTooLarge as exc:
        session.rollback()
        raise ImportFileError(str(exc)) from exc
    batch = ImportBatch(
        supplier_id=supplier.id, category_id=category_id, filename=upload.filename, upload_id=upload.id,
        file_hash=hashing.hexdigest(), mode=mode, sheet=sheet, status="analyzing", price_basis=supplier.price_basis,
        **markup,
    )
    session.add(batch)
    session.commit()
    return batch


class _HashingReader:
    """A stream that hashes what is read from it, so the upload is hashed while it is stored."""

    def __init__(self, stream):
        self._stream, self._hash = stream, hashlib.sha256()

    def read(self, size=-1):
        data = self._stream.read(size)
        self._hash.update(data)
        return data

    def hexdigest(self):
        return self._hash.hexdigest()


def imported_before(session, batch):
    """The earlier batch that committed this very file (byte for byte), or None."""
    if not batch.file_hash:
        return None
    return session.scalar(
        sa.select(ImportBatch)
        .where(ImportBatch.file_hash == batch.file_hash, ImportBatch.id != batch.id,
               ImportBatch.supplier_id == batch.supplier_id, ImportBatch.committed_at.is_not(None))
        .order_by(ImportBatch.committed_at.desc())
        .limit(1)
    )


@contextmanager
def open_batch_file(session, batch):
    """The batch's file, opened (ImportFileError when it is unusable or gone)."""
    try:
        with uploads.local_copy(session, batch.upload_id) as path, open_spreadsheet(path, read_limits()) as book:
            yield book
    except uploads.UploadGone as exc:
        raise ImportFileError(str(exc)) from exc


def supplier_markup_defaults(supplier):
    return {
        "markup_percent": supplier.markup_percent,
        "markup_fixed": supplier.markup_fixed,
        "markup_step": supplier.markup_step,
    }


def no_beat(session, **values):
    """Run outside a job (CLI, tests): nobody else holds the batch."""


def analyze(session, batch_id, beat=no_beat):
    """Read the header of the chosen sheet and propose a mapping; status → mapping.
    ``beat`` renews the job's lease on the batch (background.Lease.beat)."""
    batch = session.get(ImportBatch, batch_id)
    try:
        with open_batch_file(session, batch) as book:
            batch.file_kind, batch.sheets = book.kind, book.sheet_names
            batch.csv_encoding, batch.csv_delimiter = book.encoding, book.delimiter
            if batch.sheet and batch.sheet != ALL_SHEETS and batch.sheet not in book.sheet_names:
                batch.sheet = None
            first = book.sheet_names[0] if book.sheet_names and batch.sheet in (None, ALL_SHEETS) else batch.sheet
            table = locate_table(book.head(first), header_row=batch.header_row)
            batch.samples = _samples(table, len(table.headers))
    except ImportFileError as exc:
        return fail(session, batch, str(exc), beat)
    batch.header_row = table.header_index
    batch.headers = [cell_text(h) for h in table.headers]
    template = find_template(session, batch.supplier_id, batch.headers)
    mapping = auto_map(batch.headers, template.columns if template else None)
    batch.template_id = template.id if template else None
    store_mapping(batch, mapping)
    beat(session)
    _move(session, batch, "analyzing", "mapping", message=mapping.missing_message())
    return session.get(ImportBatch, batch_id)


# The statuses a batch is in while its file is read, mapped (an automated import) or staged.
READING = ("analyzing", "mapping", "staging")


SAMPLE_ROWS = 3


def _samples(table, width):
    """The first few values under each column, so the admin sees what a column holds."""
    samples = [[] for _ in range(width)]
    seen = 0
    for source in table.rows:
        if source.skip:
            continue
        for index, cell in enumerate(source.cells[:width]):
            text = text_of(cell)
            if text:
                samples[index].append(text[:40])
        seen += 1
        if seen >= SAMPLE_ROWS:
            break
    return samples


def analyze_step(session, batch_id, beat=no_beat):
    """The analyze job: read the header; a layout this supplier committed before
    goes straight on to validation with the settings of that import."""
    batch = analyze(session, batch_id, beat)
    template = session.get(MappingTemplate, batch.template_id) if batch.template_id else None
    if batch.status != "mapping" or template is None or batch.message:
        return batch
    if any(m["how"] == "fuzzy" for m in batch.match_info):
        return batch
    matches = batch.match_info
    try:
        apply_mapping(session, batch, options_from_template(session, batch, template))
        batch.match_info = matches  # still "from the saved template", for the preview's note
    except ImportInvalid as exc:
        session.rollback()
        batch = session.get(ImportBatch, batch_id)
        batch.message = str(exc)
        session.commit()
        return batch
    batch.step = "stage"
    session.commit()
    return stage(session, batch_id, beat)


def options_from_template(session, batch, template):
    """StageOptions for ``batch`` from the settings ``template`` was saved with (what still applies)."""
    saved = template.options or {}
    category_id = batch.category_id or saved.get("category_id")  # picked at this upload, else last time's
    if category_id is not None and session.get(Category, category_id) is None:
        category_id = None
    sheet = saved.get("sheet")
    if sheet is not None and sheet != ALL_SHEETS and sheet not in (batch.sheets or []):
        sheet = None
    delist = saved.get("delist_missing", "")
    if delist == "category" and category_id is None:
        delist = ""
    markup = batch_markup(batch)
    if "markup_percent" in saved:
        markup = Markup(percent=Decimal(saved["markup_percent"]), fixed=Decimal(saved["markup_fixed"]),
                        step=Decimal(saved["markup_step"]), min_margin=batch.supplier.min_margin)
    return StageOptions(
        choices={m["column"]: m["key"] for m in batch.match_info}, mode=saved.get("mode", batch.mode),
        sheet=sheet, category_id=category_id, delist_missing=delist, markup=markup,
        max_price_change=Decimal(saved.get("max_price_change", batch.max_price_change)),
        price_basis=saved.get("price_basis"),
    )


def remember_layout(session, batch):
    """On commit: keep this supplier's column mapping and import settings under the
    file's header fingerprint, so the next file of this layout skips the mapping step."""
    if not batch.headers or not batch.match_info:
        return None
    mapping = Mapping(list(batch.headers), [ColumnMatch(**m) for m in batch.match_info])
    template = session.get(MappingTemplate, batch.template_id) if batch.template_id else None
    if template is None or template.fingerprint != mapping.fingerprint():
        template = find_template(session, batch.supplier_id, batch.headers)
    if template is None:
        stem = batch.filename.rsplit(".", 1)[0][:36]
        template = MappingTemplate(supplier_id=batch.supplier_id,
                                   name=f"{stem}（自动保存 {mapping.fingerprint()[:6]}）")
    template.fingerprint = mapping.fingerprint()
    template.columns = mapping.to_template()
    template.header_row = batch.header_row
    template.options = {
        "mode": batch.mode, "category_id": batch.category_id, "delist_missing": batch.delist_missing,
        "sheet": batch.sheet, "markup_percent": str(batch.markup_percent), "markup_fixed": str(batch.markup_fixed),
        "markup_step": str(batch.markup_step), "max_price_change": str(batch.max_price_change),
        "price_basis": batch.price_basis,
    }
    session.add(template)
    session.flush()
    batch.template_id = template.id
    return template


def fail(session, batch, message, beat=no_beat):
    """The file itself is the problem: the admin re-maps or re-uploads (no 重试)."""
    beat(session)
    batch_id = batch.id
    _move(session, batch, READING, "failed", message=message, step=None)
    return session.get(ImportBatch, batch_id)


def _move(session, batch, expected, new_status, **values):
    """A job's status change of its batch, as one conditional UPDATE (the columns set on
    ``batch`` so far are flushed first); commits. False, rolled back, when the batch
    was no longer in ``expected``."""
    moved = transition(session, ImportBatch, batch.id, expected, new_status, **values)
    if moved:
        session.commit()
    else:
        session.rollback()
    return moved


def store_mapping(batch, mapping):
    batch.mapping = {key: column for key, column in mapping.columns.items()}
    batch.match_info = [
        {"column": m.column, "header": m.header, "key": m.key, "how": m.how, "confidence": m.confidence}
        for m in mapping.matches
    ]


def find_template(session, supplier_id, headers):
    return session.scalar(
        sa.select(MappingTemplate)
        .where(MappingTemplate.supplier_id == supplier_id, MappingTemplate.fingerprint == header_fingerprint(headers))
        .order_by(MappingTemplate.id.desc())
    )


def template_by_name(session, supplier_id, name):
    return session.scalar(sa.select(MappingTemplate).filter_by(supplier_id=supplier_id, name=name))


@dataclass
class StageOptions:
    choices: dict  # column index -> field key ("" = ignore)
    mode: str = "upsert"
    sheet: str | None = None
    category_id: int | None = None
    delist_missing: str = ""
    markup: Markup | None = None
    max_price_change: Decimal = Decimal("30")
    template_name: str = ""
    price_basis: str | None = None  # PriceBasis value; None keeps the batch's


def apply_mapping(session, batch, options):
    """Check and store the admin's mapping and options before any row work."""
    if batch.status not in ("mapping", "ready", "failed"):
        raise ImportInvalid("该批次当前状态不能修改列对应")
    try:
        mapping = manual_map(batch.headers, options.choices)
    except ValueError as exc:
        raise ImportInvalid(str(exc)) from exc
    if mapping.missing:
        raise ImportInvalid(mapping.missing_message())
    if options.mode not in ("upsert", "create", "update"):
        raise ImportInvalid("导入模式无效")
    if options.delist_missing == "category" and not options.category_id:
        raise ImportInvalid("“下架本分类中文件里没有的商品”需要先选择导入到的分类")
    if options.sheet is not None and options.sheet != ALL_SHEETS and options.sheet not in batch.sheets:
        raise ImportInvalid("工作表选择无效")
    if options.price_basis is not None and options.price_basis not in PRICE_BASES:
        raise ImportInvalid("定价方式无效，请刷新后重试")
    store_mapping(batch, mapping)
    batch.mode, batch.category_id, batch.delist_missing = options.mode, options.category_id, options.delist_missing
    if options.sheet is not None:
        batch.sheet = options.sheet
    if options.markup is not None:
        batch.markup_percent = options.markup.percent
        batch.markup_fixed = options.markup.fixed
        batch.markup_step = options.markup.step
    batch.max_price_change = options.max_price_change
    if options.price_basis is not None:
        batch.price_basis = options.price_basis
    if options.template_name:
        save_template(session, batch, options.template_name, mapping)
    if not transition(session, ImportBatch, batch.id, ("mapping", "ready", "failed"), "staging", message="",
                      progress_done=0):
        session.rollback()
        raise ImportInvalid("该批次当前状态不能修改列对应")
    session.commit()


def save_template(session, batch, name, mapping):
    template = template_by_name(session, batch.supplier_id, name) or MappingTemplate(
        supplier_id=batch.supplier_id, name=name[:60]
    )
    template.fingerprint = mapping.fingerprint()
    template.columns = mapping.to_template()
    template.header_row = batch.header_row
    session.add(template)
    session.flush()
    batch.template_id = template.id


def batch_markup(batch):
    return Markup(percent=batch.markup_percent, fixed=batch.markup_fixed, step=batch.markup_step,
                  min_margin=batch.supplier.min_margin)


def chosen_categories(batch):
    """New-category paths the admin already placed: path -> category id."""
    return {path: info["choice"] for path, info in (batch.new_categories or {}).items()
            if isinstance(info.get("choice"), int)}


class _Context:
    """What deciding a row's action needs: the categories, and today's products for the codes at hand.

    ``load`` replaces the products with those of one chunk's codes, so staging
    memory follows the chunk, never the size of the supplier's catalogue.
    """

    def __init__(self, session, batch, codes=()):
        self.batch = batch
        self.min_margin = batch.supplier.min_margin
        self.supplier_kind = batch.supplier.kind
        self.categories = CategoryLookup(session, chosen_categories(batch))
        self.fixes = remembered_fixes(session, batch.supplier_id)  # source hash -> {field: text}
        self.names = SupplierNames(batch)
        self.current = {}  # code -> (product id, {field: value})
        # code -> today's values, which the validator weighs a row's prices against (price-change
        # warning, 面值/市场价 caps)
        self.prices = {}
        # A supplier's products share a handful of buyer_fields texts: decode each once.
        self._decoded = {}
        self._fields_for = {}  # 充值账号格式 cell -> buyer fields (a file has a handful)
        self._stock_modes = {}
        self._preset_fields = {}
        self._problems = {}  # (cost, sale, promo) -> price_problem's answer
        self.load(session, codes)

    def preset_fields(self, preset):
        """A preset's buyer fields, one list for all rows (it is only encoded)."""
        fields = self._preset_fields.get(preset)
        if fields is None:
            fields = self._preset_fields[preset] = delivery.PRESETS[preset].buyer_fields()
        return fields

    def buyer_fields_for(self, fmt):
        """delivery.buyer_fields_for, once per distinct cell (rows share the list: it is only encoded)."""
        fields = self._fields_for.get(fmt)
        if fields is None:
            fields = self._fields_for[fmt] = delivery.buyer_fields_for(fmt)
        return fields

    def price_problem(self, cost, sale, promo):
        """pricing.price_problem with this supplier's minimum margin, once per prices: a
        re-import checks each of its goods, and they share a few thousand prices."""
        key = (cost, sale, promo)
        if key in self._problems:
            return self._problems[key]
        problem = price_problem(cost=cost, sale=sale, promo=promo, min_margin=self.min_margin)
        if len(self._problems) < PRICES_REMEMBERED:
            self._problems[key] = problem
        return problem

    def stock_mode_for(self, kind, has_stock):
        """delivery.stock_mode_for for this supplier, once per delivery type and stock or not."""
        mode = self._stock_modes.get((kind, has_stock))
        if mode is None:
            mode = self._stock_modes[kind, has_stock] = delivery.stock_mode_for(
                kind, self.supplier_kind, has_stock=has_stock)
        return mode

    def load(self, session, codes):
        self.current.clear()
        self.prices.clear()
        codes = list(codes)
        if not codes:
            return
        columns = [sa.cast(Product.buyer_fields, sa.Text) if f == "buyer_fields" else getattr(Product, f)
                   for f in PRODUCT_FIELDS]
        found = []
        for wanted in bulk.one_of(session, Product.code, codes, ranged=True):  # a chunk's codes
            found += bulk.plain_rows(session, sa.select(*columns, Product.id, Product.code).where(
                Product.supplier_id == self.batch.supplier_id, wanted))
        # Each product's dict made in C (zip leaves the id and code out): a re-import reads
        # 100,000 goods, a Python loop over them was most of the cost.
        values = list(map(dict, map(zip, itertools.repeat(PRODUCT_FIELDS), found)))
        decoded = self._decoded
        for current in values:
            text = current["buyer_fields"]
            if text not in decoded:
                decoded[text] = json.loads(text)
            current["buyer_fields"] = decoded[text]
        codes = [row[-1] for row in found]
        self.current.update(zip(codes, zip((row[-2] for row in found), values)))
        self.prices.update(zip(codes, values))  # the validator only reads them


def stage(session, batch_id, beat=no_beat):
    """Validate every row into staging; status → ready. Re-staging replaces earlier rows."""
    batch = session.get(ImportBatch, batch_id)
    batch.progress_done = 0
    session.execute(sa.delete(ImportRow).where(ImportRow.batch_id == batch.id))
    context = _Context(session, batch)
    columns = {k: int(v) for k, v in batch.mapping.items()}
    validator = FileValidator(
        columns, markup=batch_markup(batch), current=context.prices, max_price_change=batch.max_price_change,
        basis=batch.price_basis,
    )
    code_column = columns.get("code")
    tally = collections.Counter()
    try:
        with open_batch_file(session, batch) as book, _without_cyclic_gc():
            chunks = _chunks(context, book, batch.sheet, batch.header_row)
            helpers = _helpers(session, context)
            if helpers > 1:
                tally = _stage_side_by_side(session, context, validator, chunks, code_column, beat, helpers)
            else:
                for sheet, sheet_category, sources in chunks:
                    codes = _codes_in(sources, code_column)
                    tally += _stage_chunk(session, context, validator, sources, codes, sheet, sheet_category, beat)
    except ImportFileError as exc:
        session.rollback()
        batch = session.get(ImportBatch, batch_id)
        session.execute(sa.delete(ImportRow).where(ImportRow.batch_id == batch.id))
        return fail(session, batch, str(exc), beat)
    if bulk.is_postgresql(session):
        bulk.refresh_statistics(session)
    # Counted as the chunks were staged: no pass over 100,000 staged rows to count them again.
    refresh_new_categories(session, batch, {path: n for (kind, path), n in tally.items() if kind == "path"})
    recount(session, batch, {action: n for (kind, action), n in tally.items() if kind == "action"})
    beat(session)
    _move(session, batch, "staging", "ready")
    return session.get(ImportBatch, batch_id)


def _sheet_category(context, chosen, sheet):
    """Importing all sheets (``chosen``, the batch's sheet choice, is ALL_SHEETS): a sheet
    goes into the category it is named like, or a new one of its name."""
    if chosen != ALL_SHEETS or not sheet:
        return None
    return context.categories.get(sheet) or path_key(sheet) or None


def _chunks(context, book, chosen, header_row):
    """The rows to stage, CHUNK at a time, as (sheet, the sheet's category, rows), from the
    sheet ``chosen`` (or all of them) with the header at ``header_row``."""
    sheets = book.sheet_names if chosen == ALL_SHEETS else [chosen or (book.sheet_names or [None])[0]]
    total = 0
    for sheet in sheets:
        sheet_category = _sheet_category(context, chosen, sheet)
        table = locate_table(book.rows(sheet), header_row=header_row)
        pending = []
        for source in table.rows:
            pending.append(source)
            if len(pending) >= CHUNK:
                total = _check_total(total + len(pending), book.limits)
                yield sheet, sheet_category, pending
                pending = []
        if pending:
            total = _check_total(total + len(pending), book.limits)
            yield sheet, sheet_category, pending


def _check_total(rows, limits):
    """Each sheet is bounded on its own; all sheets of one import together too."""
    if rows > limits.max_rows:
        raise ImportFileError(f"所有工作表合计超过单次导入上限 {limits.max_rows} 行，请拆分后分批导入")
    return rows


def _helpers(session, context):
    """How many processes stage the file: IMPORT_WORKERS forked helpers on PostgreSQL when
    this process may fork (forked.can_fork), else this process alone. A remembered fix
    of a 商品编码 keeps it alone: helpers are told each code's first line as the file
    is read, before any fix."""
    workers = current_app.config["IMPORT_WORKERS"]
    if workers < 2 or not bulk.is_postgresql(session) or not forked.can_fork():
        return 1
    if any("code" in fix for fix in context.fixes.values()):
        return 1
    return workers


def _stage_side_by_side(session, context, validator, chunks, code_column, beat, helpers):
    """Stage the chunks in forked helpers, each with its own connection; a chunk is one
    transaction (rows, progress, the lease's beat), as on the one-process path. A code
    may repeat across chunks: this process reads the file, notes each code's first
    line and gives every chunk the first lines of its codes."""
    batch = context.batch
    snapshot = SimpleNamespace(id=batch.id, supplier_id=batch.supplier_id, mapping=dict(batch.mapping),
                               mode=batch.mode, category_id=batch.category_id)
    engine, helper = session.get_bind(), {}
    # No connection of this process in use while it forks, nor while the helpers work:
    # from here on it reads the file only (the batch's attributes were read above).
    session.commit()

    def setup():
        engine.dispose(close=False)  # the inherited connections stay this process's parent's
        helper["session"] = orm.Session(engine)
        multiprocessing.util.Finalize(None, helper["session"].close, exitpriority=10)
        context.batch = snapshot  # no lazy load through the parent's session

    def work(item):
        sheet, sheet_category, packed, first_lines = item
        validator.expect(first_lines)
        return _stage_chunk(helper["session"], context, validator, _unpacked(packed), first_lines, sheet,
                            sheet_category, beat)

    def items():
        first_line = {}
        for sheet, sheet_category, sources in chunks:
            codes = {}
            for source in sources:
                code = _code_of(source, code_column)
                if code is not None:
                    codes[code] = first_line.setdefault(code, source.line)
            yield sheet, sheet_category, _packed(sources), codes

    tally = sum(forked.run(items(), work, processes=helpers, setup=setup), collections.Counter())
    log.info("import batch %s: staged by %d helper processes", snapshot.id, helpers)
    return tally


def _packed(sources):
    """A chunk's rows as they go to a helper: marshalled, at a third of what pickling 5,000
    rows costs both ways; a chunk with cells marshal cannot write (an xlsx's dates and
    bad cells) is pickled as it is."""
    try:
        return marshal.dumps([tuple(source) for source in sources])
    except ValueError:
        return sources


def _unpacked(packed):
    return list(map(SourceRow._make, marshal.loads(packed))) if packed.__class__ is bytes else packed


def _code_of(source, column):
    """The row's 商品编码 as validation reads it, or None (blank, unreadable: validation
    reports it on the row; not a product row)."""
    if source.skip or column is None or column >= len(source.cells):
        return None
    cell = source.cells[column]
    if cell is None or (cell.__class__ is str and (not cell or cell.isspace())):
        return None
    try:
        return parse_code(cell)
    except ValueError:
        return None


@contextmanager
def _without_cyclic_gc():
    """Staging allocates millions of small acyclic containers that reference counting frees;
    the cyclic collector would walk them, and every live object, thousands of times (about
    a third of the CPU). It is off for the loop only and runs once at the end. Process-wide:
    in embedded mode the web threads skip cyclic collection for those seconds too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect(1)


def _stage_chunk(session, context, validator, sources, codes, sheet, sheet_category, beat):
    """Validate and stage a chunk of rows against the products with the chunk's ``codes``,
    in one transaction: the rows, the progress, and last the lease's beat (so helpers
    staging side by side lock the batch row only while they commit). Returns the
    chunk's tally: rows by ("action", action) and rows waiting by ("path", new category)."""
    context.load(session, codes)
    batch = context.batch
    rows = [_stage_row(batch, context, validator, source, sheet, sheet_category) for source in sources]
    if bulk.is_postgresql(session):
        bulk.copy_staged_rows(session, rows)
    else:
        session.execute(sa.insert(ImportRow), rows)
    session.execute(sa.update(ImportBatch).where(ImportBatch.id == batch.id)
                    .values(progress_done=ImportBatch.progress_done + len(rows))
                    .execution_options(synchronize_session=False))
    beat(session)
    session.commit()
    tally = _tally(rows)
    rows.clear()  # freed here, not with the next chunk's rows alive
    return tally


def _tally(rows):
    tally = collections.Counter(("action", row["action"]) for row in rows)
    tally.update(("path", row["category_path"]) for row in rows
                 if row["category_path"] is not None and row["action"] in _WAITING)
    return tally


_WAITING = frozenset(("create", "update"))  # the actions whose rows wait for a new category


def _codes_in(sources, column):
    return {code for code in (_code_of(source, column) for source in sources) if code is not None}


def _stage_row(batch, context, validator, source, sheet, sheet_category):
    cells, edits = source.cells, {}
    if not _JSON_SCALARS.issuperset(map(type, cells)):  # dates, bad cells: rare, and never in CSV
        edits = _unstored_texts(batch.mapping, cells)
        cells = [json_cell(c) for c in cells]
    read, fixed = source.cells, []
    if context.fixes and not source.skip:
        fix = context.fixes.get(source_hash(cells))
        if fix:
            read, fixed = _patched(batch, source.cells, fix)
            edits.update((field, text_of(fix[field])) for field in fixed)
    if source.skip:
        row = {"values": {}, "errors": [], "warnings": [], "has_warnings": False, "error_kinds": "", "changes": {},
               "code": None, "category_path": None, "skip_reason": source.skip, "product_id": None,
               "action": "skip"}
    else:
        row = _decide(context, validator.check(read, source.line), sheet_category)
    row.update(batch_id=batch.id, sheet=sheet, line=source.line, cells=cells, edits=edits, before=None,
               committed=False, auto_fixed=fixed)
    return row


def row_texts(mapping, cells, edits):
    """A staged row's text for each mapped field, as the preview shows it and validation
    reads it: the file's cell (``cells`` as staged), or ``edits`` where the row holds
    another text (the admin's fix, a remembered fix, a change in bulk, an xlsx date)."""
    width = len(cells)
    texts = {key: text_of(cells[int(col)]) if int(col) < width else "" for key, col in mapping.items()}
    if edits:
        texts.update(edits)
    return texts


def _unstored_texts(mapping, cells):
    """The texts of mapped cells that their staged (JSON) form reads differently: an
    xlsx date is stored as ISO text, and shown and validated as the admin typed it."""
    texts = {}
    for key, col in mapping.items():
        cell = cells[col] if col < len(cells) else None
        if cell.__class__ not in _JSON_SCALARS and text_of(cell) != text_of(json_cell(cell)):
            texts[key] = text_of(cell)
    return texts


def source_hash(cells):
    """Identifies a supplier's row by everything it holds. ``cells`` as staged (JSON-safe
    scalars, whose repr survives the trip through the database), so a staged row and the
    same row in next week's file agree; repr is half the cost of json.dumps here."""
    return hashlib.sha256(repr(cells).encode()).hexdigest()


def _patched(batch, cells, fix):
    """The row's cells with the remembered fixes of its mapped columns; (cells, fields fixed)."""
    patched, fixed = list(cells), []
    for field, text in fix.items():
        column = batch.mapping.get(field)
        if column is None:
            continue
        if column >= len(patched):
            patched.extend([None] * (column + 1 - len(patched)))
        patched[column] = text
        fixed.append(field)
    return patched, sorted(fixed)


def remembered_fixes(session, supplier_id):
    fixes = {}
    for digest, field, text in session.execute(
        sa.select(ImportFix.source_hash, ImportFix.field, ImportFix.text).where(ImportFix.supplier_id == supplier_id)
    ):
        fixes.setdefault(digest, {})[field] = text
    return fixes


def remember_fix(session, batch, row, field, text):
    """Keep an inline fix for the identical row in this supplier's next files; a fix
    back to what the file says forgets it."""
    digest = source_hash(row.cells)
    fix = session.scalar(sa.select(ImportFix).filter_by(supplier_id=batch.supplier_id, source_hash=digest, field=field))
    column = batch.mapping[field]
    original = text_of(row.cells[column]) if column < len(row.cells) else ""
    if text == original:
        if fix is not None:
            session.delete(fix)
        return
    if fix is None:
        session.add(ImportFix(supplier_id=batch.supplier_id, source_hash=digest, field=field, text=text))
    else:
        fix.text = text


def _decide(context, result, sheet_category=None):
    """The action committing would take for one validated row, and what changes.

    ``sheet_category`` is the sheet's category id, or the path of a new one."""
    batch = context.batch
    code = result.values.get("code")
    issue = context.names.issue
    errors = [issue(i) for i in result.errors] if result.errors else []
    warnings = [issue(i) for i in result.warnings] if result.warnings else []
    existing = context.current.get(code)
    new, waiting = _product_values(result.values, context, sheet_category, is_new=existing is None)
    old = existing[1] if existing else None
    _stock_rule(new, old["stock_mode"] if existing else None)
    fields = {"code": code, "errors": errors, "warnings": warnings, "values": to_json(new), "changes": {},
              "has_warnings": bool(warnings), "product_id": None, "skip_reason": "", "category_path": None}
    if existing is not None:
        fields["product_id"] = existing[0]
        if not errors:
            # The row's prices with the product's other prices of today (a new product's are
            # the row's own, which validation has checked).
            merged = {**old, **new}
            problem = context.price_problem(merged["cost_price"], merged["sale_price"], merged["promo_price"])
            if problem:
                errors.append(issue(Issue(problem.field, problem.kind, problem.message)))
    if errors:
        kinds = ",".join(sorted({e["kind"] for e in errors}))
        fields.update(action="error", error_kinds=f",{kinds},")
        return fields
    # A written row's warning kinds, for accepting the warnings of one kind at once.
    fields["has_warnings"], fields["error_kinds"] = _warning_state(warnings)
    if existing is None:
        if batch.mode == "update":
            fields.update(action="skip", skip_reason="仅更新模式：商品不存在，跳过")
        else:
            fields.update(action="create", category_path=waiting)
        return fields
    if batch.mode == "create":
        fields.update(action="skip", skip_reason="仅新增模式：商品已存在，跳过")
        return fields
    changes = {f: [_json_value(old[f]), _json_value(v)] for f, v in new.items() if old[f] != v}
    fields.update(changes=changes, action="update" if changes or waiting else "unchanged", category_path=waiting)
    return fields


def _stock_rule(new, mode_today):
    """Unlimited top-up has no stock; card-code stock is the count of unsold codes, never
    the file's: a product becoming 本地卡密 starts at 0 and the commit recounts it."""
    mode = new.get("stock_mode", mode_today)
    if mode == _CARDS and mode_today != _CARDS:
        new["stock"] = 0
    elif mode == _CARDS or (mode_today is not None and mode == _UNLIMITED):
        new.pop("stock", None)


_CARDS, _SYNCED, _UNLIMITED = StockMode.CARDS.value, StockMode.SYNCED.value, StockMode.UNLIMITED.value


class SupplierNames:
    """Messages say the supplier's own column names: "进货价格式错误", not "供货价格式错误"."""

    def __init__(self, batch):
        headers = batch.headers or []
        names = {}
        for key, column in (batch.mapping or {}).items():
            header = str(headers[int(column)]).strip() if int(column) < len(headers) else ""
            label = FIELDS_BY_KEY[key].label if key in FIELDS_BY_KEY else ""
            if header and label and normalize_header(header) != normalize_header(label):
                names[label] = header
        self._names = names
        # Longest first: 面值档位 before 面值, 需同步库存 before 库存.
        self._pattern = re.compile("|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))) if names else None

    def issue(self, issue):
        message = issue.message
        if self._pattern is not None:
            message = self._pattern.sub(lambda m: self._names[m.group(0)], message)
        return {"field": issue.field, "kind": issue.kind, "message": message}


def _product_values(values, context, sheet_category, *, is_new):
    """Validated import fields → (the Product attributes the row sets, the path of a
    new category the row waits for, or None)."""
    out = {}
    for key in ("name", "face_value", "tier_label", "cost_price", "market_price", "sale_price", "stock",
                "promo_price", "delivery_minutes"):
        if key in values:
            out[key] = values[key]
    for key in TIME_FIELDS:
        if key in values:
            out[key] = from_local(values[key])
    category_id, waiting = _category_for(values, context, sheet_category)
    if category_id is not None:
        out["category_id"] = category_id
    _delivery_values(values, context, out, is_new=is_new)
    if is_new:
        out.setdefault("stock", 0)
        out.setdefault("stock_mode", _SYNCED)
        out.setdefault("delivery_type", "card")
        out.setdefault("buyer_fields", [])
        out.setdefault("delivery_minutes", 5)
    return out, waiting


def _category_for(values, context, sheet_category):
    """(category id, new path): the import's own category, else a keyword rule on
    the name, else the file's 分类 (or the sheet's); a category the shop lacks is
    a new path the row waits for."""
    batch = context.batch
    if batch.category_id:
        return batch.category_id, None
    lookup = context.categories
    ruled = lookup.by_rule(values.get("name"))
    if ruled is not None:
        return ruled, None
    if "category" in values:
        found = lookup.get(values["category"])
        return (found, None) if found is not None else (None, path_key(values["category"]) or None)
    if isinstance(sheet_category, str):
        found = lookup.get(sheet_category)
        return (found, None) if found is not None else (None, sheet_category)
    return sheet_category, None


def _delivery_values(values, context, out, *, is_new):
    """发货方式 / 充值账号格式 as the file (or a bulk change in the preview) says; a new
    product without them gets the delivery its name and category imply. The stock
    mode follows the delivery unless the file says 需同步库存."""
    kind, fmt = values.get("delivery_type"), values.get("account_format")
    if kind is None and fmt is None and not is_new:
        if "sync_stock" in values:
            out["stock_mode"] = _stock_mode(values, context, None)
        return
    if kind is None:
        inferred = delivery.infer(values.get("name", ""), values.get("category", ""))
        kind = inferred.type if fmt is None or inferred.type != "card" else "topup"
        fields = inferred.buyer_fields if fmt is None else context.buyer_fields_for(fmt)
    elif kind == "card":
        fields = []
    elif fmt is not None:
        fields = context.buyer_fields_for(fmt)
    else:
        text = f"{values.get('category', '')} {values.get('name', '')}"
        fields = context.preset_fields(delivery.topup_preset(text))
    out["delivery_type"], out["buyer_fields"] = kind, fields
    out["stock_mode"] = _stock_mode(values, context, kind)


def _stock_mode(values, context, kind):
    if "sync_stock" in values:
        kind = kind or values.get("delivery_type", "card")
        return _SYNCED if values["sync_stock"] else _CARDS if kind == "card" else _UNLIMITED
    return context.stock_mode_for(kind, "stock" in values)


def to_json(values):
    scalars = _JSON_SCALARS
    # Prices are most of a row's other values: their text without a call each.
    return {k: v if v.__class__ in scalars else str(v) if v.__class__ is Decimal else _json_value(v)
            for k, v in values.items()}


def _json_value(v):
    if v.__class__ in _JSON_SCALARS:  # names, codes, stock: most values; str enums are subclasses
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if hasattr(v, "value") and isinstance(getattr(v, "value"), str):  # enums
        return v.value
    return v


def from_json(values):
    """Staged JSON values → Python values for the Product columns."""
    out = {}
    for k, v in values.items():
        if v is not None and k in MONEY_FIELDS:
            v = Decimal(v)
        elif v is not None and k in TIME_FIELDS:
            v = datetime.fromisoformat(v)
        out[k] = v
    return out


_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


def json_cell(value):
    """A cell as JSON (for the error file): numbers stay numbers, dates become text."""
    if value.__class__ in _JSON_SCALARS:  # nearly every cell; this runs for each of them
        return value
    if isinstance(value, BadCell):
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value


def text_of(value):
    """A cell as the text an admin edits in the preview."""
    if value.__class__ is str:
        return value.strip()
    if value is None or isinstance(value, BadCell):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value).strip()


def revalidate_cell(session, batch, row, field, text):
    """An inline fix: change one cell, re-validate that row at once."""
    _editable(batch)
    if field not in FIELDS_BY_KEY or field not in batch.mapping:
        raise ImportInvalid("该列未参与导入，不能修改")
    text = text.strip()[:500]
    row.edits = {**(row.edits or {}), field: text}
    row.auto_fixed = [f for f in row.auto_fixed or [] if f != field]
    remember_fix(session, batch, row, field, text)
    _revalidate(session, batch, row)
    session.commit()
    return row


def _revalidate(session, batch, row):
    markup, limit, basis = batch_markup(batch), batch.max_price_change, batch.price_basis
    texts = row_texts(batch.mapping, row.cells, row.edits)
    result = validate_row(texts, markup=markup, current=None, max_price_change=limit, basis=basis)
    code = result.values.get("code")
    context = _Context(session, batch, codes=[code] if code else [])
    if code in context.current:
        result = validate_row(texts, markup=markup, current=context.prices[code], max_price_change=limit,
                              basis=basis)
    if code is not None:
        clash = session.scalar(
            sa.select(ImportRow.line).where(
                ImportRow.batch_id == batch.id, ImportRow.code == code, ImportRow.id != row.id,
                ImportRow.action != "skip",
            ).order_by(ImportRow.line)
        )
        if clash is not None:
            result.errors.append(Issue("code", "重复编码", f"商品编码“{code}”与第 {clash} 行重复"))
    decided = _keep_accepted(row.warnings, _decide(context, result, _sheet_category(context, batch.sheet, row.sheet)))
    for name, value in decided.items():
        setattr(row, name, value)
    session.flush()
    refresh_new_categories(session, batch)
    recount(session, batch)


def redecide(session, batch, rows):
    """Decide staged ``rows`` (id, cells, edits, sheet, code, warnings) again against
    today's catalogue and categories: a product with their code appeared after staging
    (the same file committed twice, a sync in between), the admin placed a new category
    or changed the delivery in bulk. Returns the decisions as ImportRow values by id."""
    context = _Context(session, batch, codes=[r.code for r in rows])
    current = context.prices
    markup, limit, basis = batch_markup(batch), batch.max_price_change, batch.price_basis
    decided = []
    for row in rows:
        result = validate_row(row_texts(batch.mapping, row.cells, row.edits), markup=markup,
                              current=current.get(row.code), max_price_change=limit, basis=basis)
        decision = _decide(context, result, _sheet_category(context, batch.sheet, row.sheet))
        decided.append({"id": row.id, **_keep_accepted(row.warnings, decision)})
    return decided


def _keep_accepted(old_warnings, decision):
    """Warnings the admin accepted stay accepted (the same message on the same row)."""
    accepted = {w["message"] for w in old_warnings or () if w.get("accepted")}
    if accepted and decision["warnings"] and decision["action"] != "error":
        decision["warnings"] = [{**w, "accepted": True} if w["message"] in accepted else w
                                for w in decision["warnings"]]
        decision["has_warnings"], decision["error_kinds"] = _warning_state(decision["warnings"])
    return decision


def _warning_state(warnings):
    """(has_warnings, error_kinds) of a written row: the kinds still waiting for the admin."""
    if not warnings:
        return False, ""
    waiting = sorted({w["kind"] for w in warnings if not w.get("accepted")})
    return bool(waiting), f",{','.join(waiting)}," if waiting else ""


WRITABLE = ("create", "update", "unchanged")


def _redecide_where(session, batch, *conditions, edits=None, actions=WRITABLE):
    """Decide again the batch's rows matching ``conditions`` (by default rows that
    would be written: errors and skips keep their reason), ``edits`` (field -> text)
    made to them first; returns how many."""
    rows = session.execute(
        sa.select(ImportRow.id, ImportRow.cells, ImportRow.edits, ImportRow.sheet, ImportRow.code, ImportRow.warnings)
        .where(ImportRow.batch_id == batch.id, ImportRow.action.in_(actions), *conditions)
        .order_by(ImportRow.id)
    ).all()
    done = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if edits is not None:
            chunk = [SimpleNamespace(**{**r._asdict(), "edits": {**(r.edits or {}), **edits}}) for r in chunk]
        decided = redecide(session, batch, chunk)
        if edits is not None:
            for row, decision in zip(chunk, decided):
                decision["edits"] = row.edits
        session.execute(sa.update(ImportRow), decided)
        done += len(chunk)
    return done


def _editable(batch):
    if batch.status != "ready":
        raise ImportInvalid("该批次已提交或正在处理，不能再修改")


# -- categories the file would create --------------------------------------------

def refresh_new_categories(session, batch, counts=None):
    """Count the rows waiting for each new category (or take ``counts``, path -> rows);
    keep the admin's choices. Placed paths stay (their rows found them), unplaced paths
    nobody waits for go."""
    if counts is None:
        counts = dict(session.execute(
            sa.select(ImportRow.category_path, sa.func.count())
            .where(ImportRow.batch_id == batch.id, ImportRow.category_path.is_not(None),
                   ImportRow.action.in_(_WAITING))
            .group_by(ImportRow.category_path)
        ).all())
    known = batch.new_categories or {}
    refreshed = {}
    for path in sorted(set(known) | set(counts)):
        info = dict(known.get(path) or {"choice": None})
        if "similar" not in info:
            found = similar_category(session, path)
            info["similar"] = list(found) if found else None
        info["rows"] = counts.get(path, 0)
        if info["rows"] or isinstance(info.get("choice"), int):
            refreshed[path] = info
    batch.new_categories = refreshed


def waiting_categories(batch):
    """Paths rows wait for: neither created nor mapped yet."""
    return [path for path, info in (batch.new_categories or {}).items() if info.get("choice") is None and info["rows"]]


def default_choices(batch):
    """What accepting all in one click does: a near-duplicate is that category, anything else is created."""
    return {path: (info["similar"][0] if info.get("similar") else "create")
            for path, info in (batch.new_categories or {}).items() if path in waiting_categories(batch)}


def place_categories(session, batch, choices):
    """The admin's choice per new path: "create" (after the existing categories) or an
    existing category id; the waiting rows take it. Paths not in ``choices`` keep waiting."""
    _editable(batch)
    from kamen.models import Category
    from kamen.services.categories import ensure_path, forget_shop_tree, split_path

    placed = {}
    known = batch.new_categories or {}
    for path, choice in choices.items():
        if path not in known or choice in (None, ""):
            continue
        if choice == "create":
            placed[path] = ensure_path(session, split_path(path)).id
        else:
            try:
                category = session.get(Category, int(choice))
            except (TypeError, ValueError):
                category = None
            if category is None:
                session.rollback()
                raise ImportInvalid("所选分类不存在，请刷新后重试")
            placed[path] = category.id
    if not placed:
        return 0
    batch.new_categories = {path: {**info, "choice": placed.get(path, info.get("choice"))}
                            for path, info in known.items()}
    session.flush()
    moved = _redecide_where(session, batch, ImportRow.category_path.in_(list(placed)))
    refresh_new_categories(session, batch)
    recount(session, batch)
    session.commit()
    forget_shop_tree()
    return moved


def refuse_waiting(session, batch):
    """Unattended imports told not to create categories: the waiting rows fail, as before."""
    for path in waiting_categories(batch):
        message = f"分类“{path}”不存在，请先在分类管理中创建，或选择自动创建分类"
        session.execute(
            sa.update(ImportRow)
            .where(ImportRow.batch_id == batch.id, ImportRow.category_path == path,
                   ImportRow.action.in_(("create", "update")))
            .values(action="error", category_path=None, error_kinds=",分类不存在,",
                    errors=[{"field": "category", "kind": "分类不存在", "message": message}])
        )
    refresh_new_categories(session, batch)
    recount(session, batch)
    session.commit()


# -- delivery and warnings, in bulk ----------------------------------------------

def set_delivery(session, batch, delivery_type, preset="", *, row_ids=None, name_contains=""):
    """发货方式 (and buyer fields) for the chosen rows, or the rows whose name contains
    a word, or all written rows; as if the file had said so. Returns how many rows."""
    _editable(batch)
    if delivery_type not in ("card", "topup", "manual"):
        raise ImportInvalid("请选择发货方式")
    if preset and preset not in delivery.PRESETS:
        raise ImportInvalid("买家填写项无效，请刷新后重试")
    if delivery_type != "card" and not preset:
        raise ImportInvalid("充值到账号和人工发货需要选择买家填写什么（如手机号、QQ号）")
    conditions = []
    if row_ids is not None:
        ids = [int(i) for i in row_ids if str(i).isdigit()]
        if not ids:
            raise ImportInvalid("请先勾选要修改的行，或填写名称包含的关键词")
        conditions.append(ImportRow.id.in_(ids))
    edits = {"delivery_type": delivery_type, "account_format": preset if delivery_type != "card" else ""}
    if name_contains:
        word = name_contains.strip().lower()
        named = {"name": batch.mapping["name"]} if "name" in batch.mapping else {}
        ids = [row_id for row_id, cells, row_edits in session.execute(
            sa.select(ImportRow.id, ImportRow.cells, ImportRow.edits).where(ImportRow.batch_id == batch.id,
                                                                            *conditions))
            if word in row_texts(named, cells, row_edits).get("name", "").lower()]
        conditions = [ImportRow.id.in_(ids)] if ids else [sa.false()]
    changed = _redecide_where(session, batch, *conditions, edits=edits)
    refresh_new_categories(session, batch)
    recount(session, batch)
    session.commit()
    return changed


def set_price_basis(session, batch, basis):
    """The preview's 定价方式: every row is priced again (a duplicate code stays refused)."""
    _editable(batch)
    if basis not in PRICE_BASES:
        raise ImportInvalid("定价方式无效，请刷新后重试")
    batch.price_basis = basis
    session.flush()
    _redecide_where(session, batch, ~ImportRow.error_kinds.contains(",重复编码,"), actions=(*WRITABLE, "error"))
    refresh_new_categories(session, batch)
    recount(session, batch)
    session.commit()


def accept_warnings(session, batch, kind=""):
    """批量确认: the written rows' warnings of one kind (or all) no longer hold the commit;
    a row with another kind of warning still waits for that one. Returns the rows touched."""
    _editable(batch)
    stmt = sa.select(ImportRow.id, ImportRow.warnings).where(
        ImportRow.batch_id == batch.id, ImportRow.has_warnings, ImportRow.action.in_(("create", "update")))
    if kind:
        stmt = stmt.where(ImportRow.error_kinds.contains(f",{kind},"))
    updates = []
    for row_id, warnings in session.execute(stmt):
        warnings = [{**w, "accepted": True} if not kind or w["kind"] == kind else w for w in warnings]
        has_warnings, kinds = _warning_state(warnings)
        updates.append({"id": row_id, "warnings": warnings, "has_warnings": has_warnings, "error_kinds": kinds})
    if updates:
        session.execute(sa.update(ImportRow), updates)
    session.commit()
    return len(updates)


def warning_kinds(session, batch):
    """{kind: rows} of the warnings still waiting for the admin."""
    kinds = {}
    for joined, n in session.execute(
        sa.select(ImportRow.error_kinds, sa.func.count())
        .where(ImportRow.batch_id == batch.id, ImportRow.has_warnings, ImportRow.action.in_(("create", "update")))
        .group_by(ImportRow.error_kinds)
    ):
        for kind in filter(None, joined.split(",")):
            kinds[kind] = kinds.get(kind, 0) + n
    return dict(sorted(kinds.items()))


def set_skipped(session, batch, row, skipped):
    _editable(batch)
    if skipped:
        row.action, row.skip_reason, row.category_path = "skip", "管理员选择跳过", None
        session.flush()
        refresh_new_categories(session, batch)
        recount(session, batch)
    else:
        _revalidate(session, batch, row)
    session.commit()
    return row


ACTIONS = ("create", "update", "unchanged", "skip", "error")


def recount(session, batch, counts=None):
    """The batch's row counts by action, counted in the database unless given (action -> rows)."""
    if counts is None:
        counts = dict(session.execute(
            sa.select(ImportRow.action, sa.func.count()).where(ImportRow.batch_id == batch.id)
            .group_by(ImportRow.action)
        ).all())
    batch.created, batch.updated = counts.get("create", 0), counts.get("update", 0)
    batch.unchanged, batch.skipped, batch.failed = counts.get("unchanged", 0), counts.get("skip", 0), counts.get("error", 0)
    batch.rows_in = sum(counts.get(a, 0) for a in ACTIONS)


def warning_count(session, batch):
    """Rows that would be written and carry a warning (need the admin's confirmation)."""
    return session.scalar(
        sa.select(sa.func.count()).where(
            ImportRow.batch_id == batch.id, ImportRow.action.in_(("create", "update")), ImportRow.has_warnings
        )
    )
