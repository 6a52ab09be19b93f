"""From an uploaded file to staged rows the admin previews and fixes.

analyze: open the file, find the header, map columns (a saved template first).
stage: validate every row into ImportRow with the action committing would
take (create / update / unchanged / skip / error) and old → new per field.
revalidate_cell / set_skipped: the preview's inline fixes, one row at a time.
"""
import gc
import hashlib
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from kamen.models import Category, ImportBatch, ImportFix, ImportRow, MappingTemplate, Product, StockMode
from kamen.services import uploads
from kamen.services.categories import name_lookup
from kamen.services.importing import bulk
from kamen.services.importing.errors import BadCell, ImportFileError
from kamen.services.importing.header import cell_text, locate_table
from kamen.services.importing.mapping import (
    FIELDS_BY_KEY, ColumnMatch, Mapping, auto_map, header_fingerprint, manual_map, normalize_header,
)
from kamen.services.importing.normalize import parse_code
from kamen.services.importing.readers import ReadLimits, open_spreadsheet
from kamen.services.importing.validate import FileValidator, Issue, validate_row
from kamen.services.pricing import Markup, price_problem
from kamen.services.transitions import transition
from kamen.timeutil import from_local

ALL_SHEETS = "*"
CHUNK = 5000  # rows validated against one catalogue lookup, staged and committed together
MONEY_FIELDS = ("face_value", "cost_price", "market_price", "sale_price", "promo_price")
TIME_FIELDS = ("promo_start", "promo_end")
# Product attributes an import may set, compared for "unchanged" and kept as before-images.
PRODUCT_FIELDS = (
    "name", "category_id", "face_value", "tier_label", "cost_price", "market_price", "sale_price", "stock",
    "promo_price", "promo_start", "promo_end", "stock_mode", "delivery_type", "buyer_fields", "delivery_minutes",
)
ACCOUNT_FORMATS = {
    "手机号": (r"^1[3-9]\d{9}$", "11 位手机号"),
    "qq": (r"^[1-9]\d{4,11}$", "5-12 位数字"),
    "qq号": (r"^[1-9]\d{4,11}$", "5-12 位数字"),
    "邮箱": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "电子邮箱"),
}


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
        file_hash=hashing.hexdigest(), mode=mode, sheet=sheet, status="analyzing", **markup,
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
            table = locate_table(book.rows(first), header_row=batch.header_row)
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
    batch.status = "mapping"
    batch.message = mapping.missing_message()
    session.commit()
    return batch


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
    }
    session.add(template)
    session.flush()
    batch.template_id = template.id
    return template


def fail(session, batch, message, beat=no_beat):
    """The file itself is the problem: the admin re-maps or re-uploads (no 重试)."""
    beat(session)
    batch.status, batch.message, batch.step = "failed", message, None
    session.commit()
    return batch


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
    store_mapping(batch, mapping)
    batch.mode, batch.category_id, batch.delist_missing = options.mode, options.category_id, options.delist_missing
    if options.sheet is not None:
        batch.sheet = options.sheet
    if options.markup is not None:
        batch.markup_percent = options.markup.percent
        batch.markup_fixed = options.markup.fixed
        batch.markup_step = options.markup.step
    batch.max_price_change = options.max_price_change
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


class _Context:
    """What deciding a row's action needs: the categories, and today's products for the codes at hand.

    ``load`` replaces the products with those of one chunk's codes, so staging
    memory follows the chunk, never the size of the supplier's catalogue.
    """

    def __init__(self, session, batch, codes=()):
        self.batch = batch
        self.min_margin = batch.supplier.min_margin
        self.categories = name_lookup(session)
        self.fixes = remembered_fixes(session, batch.supplier_id)  # source hash -> {field: text}
        self.names = SupplierNames(batch)
        self.current = {}  # code -> (product id, {field: value})
        self.prices = {}  # code -> {"cost_price", "sale_price"}, for the validator's price-change warning
        # A supplier's products share a handful of buyer_fields texts: decode each once.
        self._decoded = {}
        self.load(session, codes)

    def load(self, session, codes):
        self.current.clear()
        self.prices.clear()
        codes = list(codes)
        if not codes:
            return
        columns = [sa.cast(Product.buyer_fields, sa.Text) if f == "buyer_fields" else getattr(Product, f)
                   for f in PRODUCT_FIELDS]
        if bulk.is_postgresql(session):  # one array parameter: no 2,000-parameter statement to build
            wanted = Product.code == sa.any_(sa.bindparam("codes", codes, type_=postgresql.ARRAY(sa.String)))
        else:
            wanted = Product.code.in_(codes)
        stmt = sa.select(Product.id, Product.code, *columns).where(Product.supplier_id == self.batch.supplier_id, wanted)
        decoded = self._decoded
        for product_id, code, *values in session.execute(stmt):
            current = dict(zip(PRODUCT_FIELDS, values))
            text = current["buyer_fields"]
            if text not in decoded:
                decoded[text] = json.loads(text)
            current["buyer_fields"] = decoded[text]
            self.current[code] = (product_id, current)
            self.prices[code] = {"cost_price": current["cost_price"], "sale_price": current["sale_price"]}


def stage(session, batch_id, beat=no_beat):
    """Validate every row into staging; status → ready. Re-staging replaces earlier rows."""
    batch = session.get(ImportBatch, batch_id)
    batch.progress_done = 0
    session.execute(sa.delete(ImportRow).where(ImportRow.batch_id == batch.id))
    context = _Context(session, batch)
    columns = {k: int(v) for k, v in batch.mapping.items()}
    validator = FileValidator(
        columns, markup=batch_markup(batch), current=context.prices, max_price_change=batch.max_price_change,
    )
    pending, done = [], 0
    try:
        with open_batch_file(session, batch) as book, _without_cyclic_gc():
            sheets = book.sheet_names if batch.sheet == ALL_SHEETS else [batch.sheet or (book.sheet_names or [None])[0]]
            for sheet in sheets:
                sheet_category = context.categories.get(sheet) if batch.sheet == ALL_SHEETS else None
                table = locate_table(book.rows(sheet), header_row=batch.header_row)
                place = (columns.get("code"), sheet, sheet_category, beat)
                for source in table.rows:
                    pending.append(source)
                    if len(pending) >= CHUNK:
                        done += _stage_chunk(session, context, validator, pending, *place)
                        _check_total(done, book.limits)
                done += _stage_chunk(session, context, validator, pending, *place)
                _check_total(done, book.limits)
    except ImportFileError as exc:
        session.rollback()
        batch = session.get(ImportBatch, batch_id)
        session.execute(sa.delete(ImportRow).where(ImportRow.batch_id == batch.id))
        return fail(session, batch, str(exc), beat)
    if bulk.is_postgresql(session):
        bulk.refresh_statistics(session)
    recount(session, batch)
    beat(session)
    batch.status = "ready"
    session.commit()
    return batch


def _check_total(rows, limits):
    """Each sheet is bounded on its own; all sheets of one import together too."""
    if rows > limits.max_rows:
        raise ImportFileError(f"所有工作表合计超过单次导入上限 {limits.max_rows} 行，请拆分后分批导入")


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


def _stage_chunk(session, context, validator, sources, code_column, sheet, sheet_category, beat):
    """Validate and stage a chunk of rows against the products with the chunk's codes."""
    context.load(session, _codes_in(sources, code_column))
    batch = context.batch
    rows = [_stage_row(batch, context, validator, source, sheet, sheet_category) for source in sources]
    sources.clear()
    return _flush(session, batch, rows, beat)


def _codes_in(sources, column):
    codes = set()
    for source in sources:
        if not source.skip and column is not None and column < len(source.cells):
            try:
                codes.add(parse_code(source.cells[column]))
            except ValueError:
                pass  # validation reports it on the row
    return codes


def _flush(session, batch, rows, beat):
    if rows:
        beat(session)
        if bulk.is_postgresql(session):
            bulk.copy_staged_rows(session, rows)
        else:
            session.execute(sa.insert(ImportRow), rows)
        batch.progress_done += len(rows)
        session.commit()
    n = len(rows)
    rows.clear()
    return n


def _stage_row(batch, context, validator, source, sheet, sheet_category):
    cells = [json_cell(c) for c in source.cells]
    read, fixed = source.cells, []
    if context.fixes and not source.skip:
        fix = context.fixes.get(source_hash(cells))
        if fix:
            read, fixed = _patched(batch, source.cells, fix)
    raw = {key: text_of(read[col]) if col < len(read) else "" for key, col in batch.mapping.items()}
    base = {"batch_id": batch.id, "sheet": sheet, "line": source.line, "cells": cells, "raw": raw,
            "values": {}, "errors": [], "warnings": [], "has_warnings": False, "error_kinds": "", "changes": {},
            "code": None, "skip_reason": "", "product_id": None, "before": None, "committed": False,
            "auto_fixed": fixed}
    if source.skip:
        return {**base, "action": "skip", "skip_reason": source.skip}
    result = validator.check(read, source.line)
    return {**base, **_decide(context, result, sheet_category)}


def source_hash(cells):
    """Identifies a supplier's row by everything it holds (cells as staged, JSON-safe)."""
    text = json.dumps(cells, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
    """The action committing would take for one validated row, and what changes."""
    batch = context.batch
    code = result.values.get("code")
    issue = context.names.issue
    errors = [issue(i) for i in result.errors]
    warnings = [issue(i) for i in result.warnings]
    existing = context.current.get(code)
    new = _product_values(result.values, context, sheet_category, errors, is_new=existing is None)
    _stock_rule(new, existing[1]["stock_mode"] if existing else None)
    fields = {"code": code, "errors": errors, "warnings": warnings, "values": to_json(new), "changes": {},
              "has_warnings": bool(warnings), "product_id": None, "skip_reason": ""}
    if existing is None:
        merged = new
    else:
        merged = {**existing[1], **new}
        fields["product_id"] = existing[0]
    problem = None if errors else price_problem(
        cost=merged.get("cost_price"), sale=merged.get("sale_price"), promo=merged.get("promo_price"),
        min_margin=context.min_margin)
    if problem:  # the row's prices with the product's other prices of today
        errors.append(issue(Issue(problem.field, problem.kind, problem.message)))
    if errors:
        kinds = ",".join(sorted({e["kind"] for e in errors}))
        return {**fields, "action": "error", "error_kinds": f",{kinds},"}
    fields["error_kinds"] = ""
    if existing is None:
        if batch.mode == "update":
            return {**fields, "action": "skip", "skip_reason": "仅更新模式：商品不存在，跳过"}
        return {**fields, "action": "create"}
    if batch.mode == "create":
        return {**fields, "action": "skip", "skip_reason": "仅新增模式：商品已存在，跳过"}
    changes = {f: [_json_value(existing[1][f]), _json_value(v)] for f, v in new.items() if existing[1][f] != v}
    fields["changes"] = changes
    return {**fields, "action": "update" if changes else "unchanged"}


def _stock_rule(new, mode_today):
    """Unlimited top-up has no stock; card-code stock is the count of unsold codes, never
    the file's: a product becoming 本地卡密 starts at 0 and the commit recounts it."""
    mode = new.get("stock_mode", mode_today)
    if mode == StockMode.CARDS.value and mode_today != StockMode.CARDS.value:
        new["stock"] = 0
    elif mode == StockMode.CARDS.value or (mode_today is not None and mode == StockMode.UNLIMITED.value):
        new.pop("stock", None)


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


def _product_values(values, context, sheet_category, errors, *, is_new):
    """Validated import fields → Product attributes (only what the row sets)."""
    out = {}
    for key in ("name", "face_value", "tier_label", "cost_price", "market_price", "sale_price", "stock",
                "promo_price", "delivery_minutes"):
        if key in values:
            out[key] = values[key]
    for key in TIME_FIELDS:
        if key in values:
            out[key] = from_local(values[key])
    if "delivery_type" in values:
        out["delivery_type"] = values["delivery_type"]
    if "sync_stock" in values:
        delivery = values.get("delivery_type", "card")
        out["stock_mode"] = (
            StockMode.SYNCED.value if values["sync_stock"]
            else StockMode.CARDS.value if delivery == "card" else StockMode.UNLIMITED.value
        )
    if "account_format" in values:
        out["buyer_fields"] = buyer_fields_for(values["account_format"])
    category_id = context.batch.category_id or sheet_category
    if "category" in values:
        found = context.categories.get(values["category"].replace(" / ", "/"))
        if found is None:
            errors.append(context.names.issue(Issue("category", "格式错误",
                                       f"分类“{values['category']}”不存在，请先在分类管理中创建，或为本次导入选择分类")))
        else:
            category_id = found
    if category_id is not None:
        out["category_id"] = category_id
    if is_new:
        out.setdefault("stock", 0)
        out.setdefault("stock_mode", StockMode.SYNCED.value)
        out.setdefault("delivery_type", "card")
        out.setdefault("buyer_fields", [])
        out.setdefault("delivery_minutes", 5)
    return out


def buyer_fields_for(text):
    pattern, hint = ACCOUNT_FORMATS.get(text.strip().lower(), ("", ""))
    label = "充值账号" if pattern else text.strip()
    return [{"key": "account", "label": label, "pattern": pattern, "hint": hint or (text.strip() if pattern else "")}]


def to_json(values):
    return {k: _json_value(v) for k, v in values.items()}


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
    if batch.status != "ready":
        raise ImportInvalid("该批次已提交或正在处理，不能再修改")
    if field not in FIELDS_BY_KEY or field not in batch.mapping:
        raise ImportInvalid("该列未参与导入，不能修改")
    text = text.strip()[:500]
    row.raw = {**row.raw, field: text}
    row.auto_fixed = [f for f in row.auto_fixed or [] if f != field]
    remember_fix(session, batch, row, field, text)
    _revalidate(session, batch, row)
    session.commit()
    return row


def _revalidate(session, batch, row):
    markup, limit = batch_markup(batch), batch.max_price_change
    result = validate_row(row.raw, markup=markup, current=None, max_price_change=limit)
    code = result.values.get("code")
    context = _Context(session, batch, codes=[code] if code else [])
    if code in context.current:
        result = validate_row(row.raw, markup=markup, current=context.prices[code], max_price_change=limit)
    if code is not None:
        clash = session.scalar(
            sa.select(ImportRow.line).where(
                ImportRow.batch_id == batch.id, ImportRow.code == code, ImportRow.id != row.id,
                ImportRow.action != "skip",
            ).order_by(ImportRow.line)
        )
        if clash is not None:
            result.errors.append(Issue("code", "重复编码", f"商品编码“{code}”与第 {clash} 行重复"))
    sheet_category = context.categories.get(row.sheet) if batch.sheet == ALL_SHEETS else None
    for name, value in _decide(context, result, sheet_category).items():
        setattr(row, name, value)
    recount(session, batch)


def redecide(session, batch, rows):
    """Decide staged ``rows`` (id, raw, sheet, code) again against today's catalogue: a
    product with their code appeared after staging (the same file committed twice, a
    sync in between). Returns the new decisions as ImportRow column values by id."""
    context = _Context(session, batch, codes=[r.code for r in rows])
    current = context.prices
    markup, limit = batch_markup(batch), batch.max_price_change
    decided = []
    for row in rows:
        result = validate_row(row.raw, markup=markup, current=current.get(row.code), max_price_change=limit)
        sheet_category = context.categories.get(row.sheet) if batch.sheet == ALL_SHEETS else None
        decided.append({"id": row.id, **_decide(context, result, sheet_category)})
    return decided


def set_skipped(session, batch, row, skipped):
    if batch.status != "ready":
        raise ImportInvalid("该批次已提交或正在处理，不能再修改")
    if skipped:
        row.action, row.skip_reason = "skip", "管理员选择跳过"
        recount(session, batch)
    else:
        _revalidate(session, batch, row)
    session.commit()
    return row


ACTIONS = ("create", "update", "unchanged", "skip", "error")


def recount(session, batch):
    counts = dict(
        session.execute(
            sa.select(ImportRow.action, sa.func.count()).where(ImportRow.batch_id == batch.id).group_by(ImportRow.action)
        ).all()
    )
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
