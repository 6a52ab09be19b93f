"""批量导入: upload → column mapping → preview with inline fixes → commit (now or later) → report / undo."""
import io
import os
import tempfile
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import abort, current_app, flash, make_response, redirect, render_template, request, send_file, url_for
from sqlalchemy.orm import joinedload

from kamen.blueprints.admin import bp
from kamen.blueprints.common import is_htmx
from kamen.extensions import db
from kamen.models import Category, DeliveryType, ImportBatch, ImportRow, MappingTemplate, PriceBasis, StockMode, Supplier
from kamen.money import MoneyError, parse_money
from kamen.services import delivery, pricing
from kamen.services.background import PAUSED_MESSAGE
from kamen.services.importing import automation, batches, committing, housekeeping, staging
from kamen.services.importing.errors import ImportFileError
from kamen.services.importing.mapping import FIELDS, FIELDS_BY_KEY, column_letter
from kamen.services.importing.template import template_csv, template_xlsx
from kamen.services.categories import category_choices
from kamen.services.suppliers import default_supplier
from kamen.timeutil import from_local, shop_zone

PAGE_SIZE = 50
IN_PROGRESS = batches.IN_PROGRESS
ACTION_LABELS = {"create": "新增", "update": "更新", "unchanged": "无变化", "skip": "跳过", "error": "错误"}
STATUS_LABELS = {
    "analyzing": "读取表头中", "mapping": "待确认列对应", "staging": "校验中", "ready": "预览就绪",
    "scheduled": "已预约提交", "committing": "提交中", "committed": "已提交", "cancelled": "已取消",
    "failed": "失败", "undone": "已撤销",
}
# Which Product attribute a staged change of each import field lands in.
FIELD_ATTRS = {"category": "category_id", "sync_stock": "stock_mode", "account_format": "buyer_fields"}


@bp.context_processor
def _import_labels():
    return {"import_status_labels": STATUS_LABELS, "action_labels": ACTION_LABELS}


def _batch_or_404(batch_id):
    return db.session.get(ImportBatch, batch_id) or abort(404)


def _flash_paused(handle):
    """The queue was unreachable: the batch waits and resumes by itself."""
    if handle is not None and handle.paused:
        flash(PAUSED_MESSAGE, "warning")


@bp.get("/imports")
def imports():
    rows = db.session.scalars(
        sa.select(ImportBatch).options(joinedload(ImportBatch.supplier)).order_by(ImportBatch.id.desc()).limit(50)
    ).all()
    return render_template("admin/imports.html", batches=rows, keep_days=housekeeping.keep_days(db.session))


@bp.post("/imports/keep-days")
def import_keep_days():
    try:
        days = housekeeping.set_keep_days(db.session, request.form.get("days", ""))
    except staging.ImportInvalid as exc:
        flash(str(exc), "error")
    else:
        flash(f"已保存：导入的文件和逐行明细保留 {days} 天，统计数字一直保留。", "success")
    return redirect(url_for("admin.imports"))


@bp.get("/imports/template.<kind>")
def import_template(kind):
    if kind == "xlsx":
        names = [name.replace(" / ", "/") for _, name in category_choices(db.session)]
        data, mime = template_xlsx(names), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    elif kind == "csv":
        data, mime = template_csv(), "text/csv; charset=utf-8"
    else:
        abort(404)
    return send_file(io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=f"kamen商品导入模板.{kind}")


@bp.route("/imports/new", methods=["GET", "POST"])
def import_new():
    suppliers = db.session.scalars(sa.select(Supplier).order_by(Supplier.id)).all() or [default_supplier(db.session)]
    error = None
    if request.method == "POST":
        upload = request.files.get("file")
        supplier = db.session.get(Supplier, request.form.get("supplier_id", type=int) or 0)
        category_id = request.form.get("category_id", type=int) or None
        if upload is None or not upload.filename:
            error = "请选择要导入的文件"
        elif supplier is None:
            error = "货源选择无效，请刷新后重试"
        elif category_id is not None and db.session.get(Category, category_id) is None:
            error = "分类选择无效，请刷新后重试"
        else:
            try:
                batch, handle = batches.upload(db.session, upload.stream, upload.filename, supplier=supplier,
                                               category_id=category_id)
            except ImportFileError as exc:
                error = str(exc)
            else:
                _flash_paused(handle)
                return redirect(url_for("admin.import_batch", batch_id=batch.id))
    html = render_template("admin/import_new.html", suppliers=suppliers, categories=category_choices(db.session), error=error)
    return html, (400 if error else 200)


@bp.get("/imports/<int:batch_id>")
def import_batch(batch_id):
    batch = _batch_or_404(batch_id)
    if is_htmx():
        if batch.status in IN_PROGRESS:
            return render_template("admin/_import_progress.html", batch=batch)
        response = make_response("")
        response.headers["HX-Refresh"] = "true"
        return response
    if batch.status in IN_PROGRESS:
        return render_template("admin/import_batch.html", batch=batch, step="progress")
    if batch.status == "mapping" or (batch.status in ("ready", "failed") and request.args.get("step") == "mapping"
                                     and batch.headers):
        return _mapping_page(batch)
    if batch.status in ("ready", "scheduled"):
        return _preview_page(batch)
    blockers = committing.undo_blockers(db.session, batch)
    return render_template("admin/import_batch.html", batch=batch, step="report", blockers=blockers,
                           **_written_rows(batch))


def _written_rows(batch):
    """The report's list: what each written row got (sale price, delivery, category), a page at a time."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    written = sa.select(ImportRow).where(ImportRow.batch_id == batch.id, ImportRow.committed.is_(True),
                                         ImportRow.action.in_(("create", "update")))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(written.subquery()))
    rows = db.session.scalars(written.order_by(ImportRow.line, ImportRow.id).limit(PAGE_SIZE)
                              .offset((page - 1) * PAGE_SIZE)).all()
    return {"written": rows, "written_total": total, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
            **_preview_context(batch)}


def _mapping_page(batch, error=None, status=200):
    columns = []
    by_column = {m["column"]: m for m in batch.match_info}
    for index, header in enumerate(batch.headers):
        if str(header).strip():
            columns.append({"index": index, "letter": column_letter(index), "header": header,
                            "match": by_column.get(index),
                            "samples": (batch.samples or [])[index] if index < len(batch.samples or []) else []})
    return render_template(
        "admin/import_batch.html", batch=batch, step="mapping", columns=columns, fields=FIELDS,
        price_bases=PriceBasis.choices(),
        categories=category_choices(db.session), error=error or (batch.message if batch.status == "mapping" else None),
        same_file=staging.imported_before(db.session, batch),
    ), status


@bp.post("/imports/<int:batch_id>/header")
def import_header(batch_id):
    """Re-read the file with another header row or sheet the admin picked."""
    batch = _batch_or_404(batch_id)
    try:
        _flash_paused(batches.reread_header(db.session, batch, request.form.get("header_line", type=int),
                                            request.form.get("sheet")))
    except staging.ImportInvalid as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.import_batch", batch_id=batch.id))


@bp.post("/imports/<int:batch_id>/mapping")
def import_mapping(batch_id):
    batch = _batch_or_404(batch_id)
    form = request.form
    try:
        options = staging.StageOptions(
            choices={i: form.get(f"col_{i}", "") for i in range(len(batch.headers))},
            mode=form.get("mode", "upsert"),
            sheet=form.get("sheet") or None,
            category_id=form.get("category_id", type=int) or None,
            delist_missing=form.get("delist_missing", ""),
            markup=pricing.parse_markup(form),
            max_price_change=parse_money(form.get("max_price_change") or "30", field="价格变动提醒阈值"),
            template_name=form.get("template_name", "").strip()[:60],
            price_basis=form.get("price_basis") or None,
        )
        if options.category_id is not None and db.session.get(Category, options.category_id) is None:
            raise staging.ImportInvalid("分类选择无效，请刷新后重试")
        handle = batches.confirm_mapping(db.session, batch, options)
    except (staging.ImportInvalid, MoneyError, pricing.PriceRuleError) as exc:
        db.session.rollback()
        return _mapping_page(_batch_or_404(batch_id), error=str(exc), status=400)
    _flash_paused(handle)
    return redirect(url_for("admin.import_batch", batch_id=batch.id))


SHOW_FILTERS = {
    "all": None,
    "error": ImportRow.action == "error",
    "warning": sa.and_(ImportRow.has_warnings, ImportRow.action.in_(("create", "update"))),
    "waiting": ImportRow.category_path.is_not(None),
    "create": ImportRow.action == "create",
    "update": ImportRow.action == "update",
    "unchanged": ImportRow.action == "unchanged",
    "skip": ImportRow.action == "skip",
}
ROW_ORDER = sa.case(
    (ImportRow.action == "error", 0), (ImportRow.has_warnings, 1), (ImportRow.action == "update", 2),
    (ImportRow.action == "create", 3), (ImportRow.action == "unchanged", 4), else_=5,
)


def _preview_page(batch):
    show = request.args.get("show", "all")
    kind = request.args.get("kind", "")
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    stmt = sa.select(ImportRow).where(ImportRow.batch_id == batch.id)
    if SHOW_FILTERS.get(show) is not None:
        stmt = stmt.where(SHOW_FILTERS[show])
    if kind:
        stmt = stmt.where(ImportRow.error_kinds.contains(f",{kind},"))
    path = request.args.get("path", "")
    if path:
        stmt = stmt.where(ImportRow.category_path == path)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(
        stmt.order_by(ROW_ORDER, ImportRow.line, ImportRow.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    kinds = db.session.scalars(
        sa.select(ImportRow.error_kinds).where(ImportRow.batch_id == batch.id, ImportRow.action == "error").distinct()
    ).all()
    error_kinds = sorted({k for joined in kinds for k in joined.split(",") if k})
    return render_template(
        "admin/import_batch.html", batch=batch, step="preview", rows=rows, total=total, page=page,
        pages=max(1, -(-total // PAGE_SIZE)), show=show, kind=kind, error_kinds=error_kinds, path=path,
        warnings=staging.warning_count(db.session, batch), warning_kinds=staging.warning_kinds(db.session, batch),
        waiting=staging.waiting_categories(batch), price_bases=PriceBasis.choices(), presets=delivery.PRESETS,
        categories=category_choices(db.session), schedules_on=bool(current_app.config["REDIS_URL"]),
        same_file=staging.imported_before(db.session, batch),
        template=_straight_template(batch),
        auto_fixed=db.session.scalar(sa.select(sa.func.count()).where(
            ImportRow.batch_id == batch.id, sa.cast(ImportRow.auto_fixed, sa.Text) != "[]")),
        **_preview_context(batch),
    )


def _straight_template(batch):
    """The saved layout this batch went straight to the preview with (no mapping step), or None."""
    if not batch.template_id or not all(m["how"] == "template" for m in batch.match_info):
        return None
    return db.session.get(MappingTemplate, batch.template_id)


def _preview_context(batch):
    keys = sorted(batch.mapping, key=lambda k: batch.mapping[k])
    if "sale_price" not in batch.mapping:
        keys.append("sale_price")  # shown as computed from the markup, not editable
    categories = dict(category_choices(db.session))
    return {"field_keys": keys, "fields_by_key": FIELDS_BY_KEY, "field_attrs": FIELD_ATTRS, "key_fields": KEY_FIELDS,
            "category_names": categories, "shown": lambda row, key, texts: _shown_value(row, key, categories, texts),
            "texts_of": lambda row: staging.row_texts(batch.mapping, row.cells, row.edits),
            "delivery_labels": dict(DeliveryType.choices()),
            "stock_mode_labels": dict(StockMode.choices()), "basis_label": PriceBasis(batch.price_basis).label}


# The preview's columns a phone keeps (a cell with an error or warning shows too).
KEY_FIELDS = ("code", "name", "cost_price", "sale_price")
# Fields whose normalized value the preview shows (the others are shown as typed).
SHOWN_NORMALIZED = ("code", "name", "face_value", "tier_label", "cost_price", "market_price", "sale_price",
                    "stock", "promo_price", "delivery_minutes")


def _shown_value(row, key, categories, texts):
    """What the import will store for a cell, as the admin reads it (48.50 for "￥４８．５０");
    ``texts``: the row's texts (staging.row_texts)."""
    values = row.values or {}
    if key in SHOWN_NORMALIZED and values.get(key) is not None:
        return str(values[key])
    if key == "category" and values.get("category_id") is not None:
        return categories.get(values["category_id"], texts.get(key, ""))
    if key == "delivery_type" and values.get("delivery_type"):
        return DeliveryType(values["delivery_type"]).label
    return texts.get(key, "")


def _row_or_404(batch, row_id):
    row = db.session.get(ImportRow, row_id)
    if row is None or row.batch_id != batch.id:
        abort(404)
    return row


def _render_row(batch, row, **extra):
    return render_template("admin/_import_row.html", batch=batch, row=row, **_preview_context(batch), **extra)


@bp.get("/imports/<int:batch_id>/rows/<int:row_id>/cell/<field>")
def import_cell(batch_id, row_id, field):
    batch = _batch_or_404(batch_id)
    row = _row_or_404(batch, row_id)
    if not is_htmx():
        return redirect(url_for("admin.import_batch", batch_id=batch.id))
    editing = field if request.args.get("edit") == "1" and field in batch.mapping else None
    return _render_row(batch, row, editing=editing)


@bp.post("/imports/<int:batch_id>/rows/<int:row_id>/cell/<field>")
def import_cell_save(batch_id, row_id, field):
    batch = _batch_or_404(batch_id)
    row = _row_or_404(batch, row_id)
    try:
        staging.revalidate_cell(db.session, batch, row, field, request.form.get("value", ""))
    except staging.ImportInvalid as exc:
        if not is_htmx():
            flash(str(exc), "error")
            return redirect(url_for("admin.import_batch", batch_id=batch.id))
        return _render_row(batch, row, editing=field, edit_error=str(exc)), 422
    if not is_htmx():
        return redirect(url_for("admin.import_batch", batch_id=batch.id))
    response = make_response(_render_row(batch, row, saved=True))
    response.headers["HX-Trigger"] = "import-counts-changed"
    return response


@bp.post("/imports/<int:batch_id>/rows/<int:row_id>/skip")
def import_skip(batch_id, row_id):
    batch = _batch_or_404(batch_id)
    row = _row_or_404(batch, row_id)
    try:
        staging.set_skipped(db.session, batch, row, request.form.get("skip") == "1")
    except staging.ImportInvalid as exc:
        flash(str(exc), "error")
    if not is_htmx():
        return redirect(url_for("admin.import_batch", batch_id=batch.id))
    response = make_response(_render_row(batch, row))
    response.headers["HX-Trigger"] = "import-counts-changed"
    return response


def _preview_action(batch_id, action, done):
    """A preview-wide change (pricing, categories, delivery, warnings): flash, back to the preview."""
    batch = _batch_or_404(batch_id)
    try:
        result = action(batch)
    except staging.ImportInvalid as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(done(result), "success")
    return redirect(url_for("admin.import_batch", batch_id=batch_id, show=request.form.get("show") or None))


@bp.post("/imports/<int:batch_id>/pricing")
def import_pricing(batch_id):
    basis = request.form.get("price_basis", "")
    return _preview_action(batch_id, lambda batch: staging.set_price_basis(db.session, batch, basis),
                           lambda _: f"已按“{PriceBasis(basis).label}”重新定价。")


@bp.post("/imports/<int:batch_id>/categories")
def import_categories(batch_id):
    """Place the new categories: all as proposed in one click, or each as the admin picked."""
    def place(batch):
        if request.form.get("accept_all") == "1":
            choices = staging.default_choices(batch)
        else:
            paths = {key[5:]: value for key, value in request.form.items() if key.startswith("path_")}
            choices = {path: request.form.get(f"cat_{key}", "") for key, path in paths.items()}
        return staging.place_categories(db.session, batch, choices)

    return _preview_action(batch_id, place, lambda moved: f"分类已确定，{moved} 行已归入。")


@bp.post("/imports/<int:batch_id>/warnings/accept")
def import_accept_warnings(batch_id):
    kind = request.form.get("kind", "")
    return _preview_action(batch_id, lambda batch: staging.accept_warnings(db.session, batch, kind),
                           lambda n: f"已确认 {n} 行的警告。")


@bp.post("/imports/<int:batch_id>/delivery")
def import_delivery(batch_id):
    form = request.form
    ids = form.getlist("row") if form.get("scope") == "selected" else None
    return _preview_action(
        batch_id,
        lambda batch: staging.set_delivery(db.session, batch, form.get("delivery_type", ""), form.get("preset", ""),
                                           row_ids=ids, name_contains=form.get("name_contains", "").strip()),
        lambda n: f"已修改 {n} 行的发货方式。",
    )


@bp.get("/imports/<int:batch_id>/counts")
def import_counts(batch_id):
    batch = _batch_or_404(batch_id)
    return render_template("admin/_import_counts.html", batch=batch, show=request.args.get("show", "all"),
                           warnings=staging.warning_count(db.session, batch))


@bp.post("/imports/<int:batch_id>/commit")
def import_commit(batch_id):
    batch = _batch_or_404(batch_id)
    at = None
    when = request.form.get("at", "").strip()
    try:
        if when:
            at = _next_local_time(when)
        handle = batches.commit(db.session, batch, confirm_warnings=request.form.get("confirm_warnings") == "1", at=at)
    except staging.ImportInvalid as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.import_batch", batch_id=batch.id))
    if at is None:
        _flash_paused(handle)
    else:
        flash(f"已预约在 {when} 提交。", "success")
    return redirect(url_for("admin.import_batch", batch_id=batch.id))


def _next_local_time(text):
    """'03:00' → the next 03:00 shop time, as naive UTC."""
    try:
        hour, minute = (int(x) for x in text.split(":"))
        local_now = datetime.now(shop_zone()).replace(tzinfo=None)
        at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as exc:
        raise staging.ImportInvalid("预约时间格式应为 HH:MM，如 03:00") from exc
    if at <= local_now:
        at += timedelta(days=1)
    return from_local(at)


@bp.post("/imports/<int:batch_id>/cancel")
def import_cancel(batch_id):
    return _batch_action(batch_id, lambda batch: flash(batches.cancel(db.session, batch), "success"))


@bp.post("/imports/<int:batch_id>/retry")
def import_retry(batch_id):
    return _batch_action(batch_id, lambda batch: _flash_paused(batches.retry(db.session, batch)))


def _batch_action(batch_id, action):
    batch = _batch_or_404(batch_id)
    try:
        action(batch)
    except staging.ImportInvalid as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.import_batch", batch_id=batch.id))


@bp.post("/imports/<int:batch_id>/undo")
def import_undo(batch_id):
    batch = _batch_or_404(batch_id)
    try:
        skipped = committing.undo_batch(db.session, batch)
    except staging.ImportInvalid as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash("已撤销本次导入：新增的商品已删除，更新的商品已恢复原值。"
              + (f"跳过了 {len(skipped)} 个导入后又被修改过的商品，见下方说明。" if skipped else ""), "success")
    return redirect(url_for("admin.import_batch", batch_id=batch.id))


@bp.get("/imports/<int:batch_id>/errors")
def import_errors(batch_id):
    """The admin's own rows that failed, plus 错误原因, in their file's format."""
    batch = _batch_or_404(batch_id)
    fd, path = tempfile.mkstemp()
    os.close(fd)
    try:
        kind = automation.write_report(db.session, batch, path)
        with open(path, "rb") as f:
            data = f.read()
    finally:
        os.remove(path)
    name = f"{os.path.splitext(batch.filename)[0]}-错误行.{kind}"
    return send_file(io.BytesIO(data), as_attachment=True, download_name=name,
                     mimetype="text/csv" if kind == "csv" else "application/octet-stream")
