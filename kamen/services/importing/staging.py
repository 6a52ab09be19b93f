"""From an uploaded file to staged rows the admin previews and fixes.

analyze: open the file, find the header, map columns (a saved template first).
stage: validate every row into ImportRow with the action committing would
take (create / update / unchanged / skip / error) and old → new per field.
revalidate_cell / set_skipped: the preview's inline fixes, one row at a time.
"""
import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from kamen.models import ImportBatch, ImportRow, MappingTemplate, Product, StockMode
from kamen.services import uploads
from kamen.services.categories import name_lookup
from kamen.services.importing import bulk
from kamen.services.importing.errors import BadCell, ImportFileError
from kamen.services.importing.header import cell_text, locate_table
from kamen.services.importing.mapping import FIELDS_BY_KEY, auto_map, header_fingerprint, manual_map
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
    try:
        upload = uploads.save(session, stream, purpose="import", filename=filename,
                              max_bytes=current_app.config["IMPORT_MAX_BYTES"])
    except uploads.UploadTooLarge as exc:
        session.rollback()
        raise ImportFileError(str(exc)) from exc
    batch = ImportBatch(
        supplier_id=supplier.id, category_id=category_id, filename=upload.filename, upload_id=upload.id,
        mode=mode, sheet=sheet, status="analyzing", **markup,
    )
    session.add(batch)
    session.commit()
    return batch


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
    _move(session, batch, "staging", "ready")
    return session.get(ImportBatch, batch_id)


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
    """Store staged rows. They hold Python values (cells as read, Decimal prices): the COPY
    encodes them to JSON in one pass (bulk.py); SQLite's JSON columns take JSON values."""
    if rows:
        beat(session)
        if bulk.is_postgresql(session):
            bulk.copy_staged_rows(session, rows)
        else:
            for row in rows:
                row["cells"] = [json_cell(c) for c in row["cells"]]
                row["values"] = to_json(row["values"])
            session.execute(sa.insert(ImportRow), rows)
        batch.progress_done += len(rows)
        session.commit()
    n = len(rows)
    rows.clear()
    return n


def _stage_row(batch, context, validator, source, sheet, sheet_category):
    """One staged row as a dict of ImportRow columns; ``cells`` and ``values`` still hold
    Python values (see _flush): each value is converted once, when it is written."""
    cells = source.cells
    width = len(cells)
    if source.skip:
        row = {"values": {}, "errors": [], "warnings": [], "has_warnings": False, "error_kinds": "", "changes": {},
               "code": None, "skip_reason": source.skip, "product_id": None, "action": "skip"}
    else:
        row = _decide(context, validator.check(cells, source.line), sheet_category, json_values=False)
    row["batch_id"], row["sheet"], row["line"], row["cells"] = batch.id, sheet, source.line, cells
    row["raw"] = {key: (cells[col].strip() if cells[col].__class__ is str else text_of(cells[col])) if col < width
                  else "" for key, col in batch.mapping.items()}
    row["before"], row["committed"] = None, False
    return row


def _decide(context, result, sheet_category=None, *, json_values=True):
    """The action committing would take for one validated row, and what changes
    (``values`` as Python values when not ``json_values``: staging converts them as it writes)."""
    batch = context.batch
    code = result.values.get("code")
    errors = [_issue(i) for i in result.errors]
    warnings = [_issue(i) for i in result.warnings]
    existing = context.current.get(code)
    new = _product_values(result.values, context, sheet_category, errors, is_new=existing is None)
    _stock_rule(new, existing[1]["stock_mode"] if existing else None)
    fields = {"code": code, "errors": errors, "warnings": warnings, "values": to_json(new) if json_values else new,
              "changes": {}, "has_warnings": bool(warnings), "product_id": None, "skip_reason": "", "error_kinds": ""}
    if existing is None:
        merged = new
    else:
        merged = {**existing[1], **new}
        fields["product_id"] = existing[0]
    problem = None if errors else price_problem(
        cost=merged.get("cost_price"), sale=merged.get("sale_price"), promo=merged.get("promo_price"),
        min_margin=context.min_margin)
    if problem:  # the row's prices with the product's other prices of today
        errors.append(_issue(Issue(problem.field, problem.kind, problem.message)))
    if errors:
        fields["action"], fields["error_kinds"] = "error", f",{','.join(sorted({e['kind'] for e in errors}))},"
    elif existing is None:
        fields["action"] = "create"
        if batch.mode == "update":
            fields["action"], fields["skip_reason"] = "skip", "仅更新模式：商品不存在，跳过"
    elif batch.mode == "create":
        fields["action"], fields["skip_reason"] = "skip", "仅新增模式：商品已存在，跳过"
    else:
        fields["changes"] = {f: [_json_value(existing[1][f]), _json_value(v)] for f, v in new.items()
                             if existing[1][f] != v}
        fields["action"] = "update" if fields["changes"] else "unchanged"
    return fields


def _stock_rule(new, mode_today):
    """Unlimited top-up has no stock; card-code stock is the count of unsold codes, never
    the file's: a product becoming 本地卡密 starts at 0 and the commit recounts it."""
    mode = new.get("stock_mode", mode_today)
    if mode == StockMode.CARDS.value and mode_today != StockMode.CARDS.value:
        new["stock"] = 0
    elif mode == StockMode.CARDS.value or (mode_today is not None and mode == StockMode.UNLIMITED.value):
        new.pop("stock", None)


def _issue(issue):
    return {"field": issue.field, "kind": issue.kind, "message": issue.message}


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
            errors.append(_issue(Issue("category", "格式错误",
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
    row.raw = {**row.raw, field: text.strip()[:500]}
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
