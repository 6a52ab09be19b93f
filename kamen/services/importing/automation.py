"""Imports without a person: the CLI and the HTTP endpoint run the same pipeline.

The file's columns are mapped by the named template, else a saved template
matching its headers, else auto-mapping; a mapping that still needs an admin
(missing required columns, fuzzy guesses) stops with a clear error.
"""
from dataclasses import dataclass

import sqlalchemy as sa

from kamen.models import ImportRow
from kamen.services.importing import committing, staging
from kamen.services.importing.mapping import auto_map


@dataclass
class AutoOptions:
    mode: str = "upsert"
    template: str = ""
    commit: bool = False
    confirm_warnings: bool = False
    category_id: int | None = None
    # Categories the shop lacks: create them (a near-duplicate is the existing one), or refuse their rows.
    create_categories: bool = False
    price_basis: str | None = None  # PriceBasis value; None: the supplier's


def run_import(session, stream, filename, supplier, options):
    """Save the file, then analyze, stage and (optionally) commit; returns the batch."""
    batch = staging.create_batch(session, stream, filename, supplier=supplier, category_id=options.category_id,
                                 mode=options.mode)
    return process(session, batch.id, options)


def process(session, batch_id, options, beat=staging.no_beat):
    """Everything after the upload, without a person (also run as a job, which
    passes ``beat`` to renew its lease on the batch)."""
    batch = staging.analyze(session, batch_id, beat)
    if batch.status == "failed":
        return batch
    if options.template:
        template = staging.template_by_name(session, batch.supplier_id, options.template)
        if template is None:
            return staging.fail(session, batch, f"找不到名为“{options.template}”的映射模板", beat)
        staging.store_mapping(batch, auto_map(batch.headers, template.columns))
    guesses = [m for m in batch.match_info if m["how"] == "fuzzy"]
    if guesses:
        named = "、".join(f"“{m['header']}”" for m in guesses)
        return staging.fail(session, batch, f"列 {named} 只是近似匹配，请在后台确认列对应并保存为模板后再自动导入", beat)
    choices = {m["column"]: m["key"] for m in batch.match_info}
    try:
        staging.apply_mapping(session, batch, staging.StageOptions(
            choices=choices, mode=options.mode, category_id=options.category_id, markup=staging.batch_markup(batch),
            max_price_change=batch.max_price_change, price_basis=options.price_basis,
        ))
    except staging.ImportInvalid as exc:
        return staging.fail(session, batch, str(exc), beat)
    batch = staging.stage(session, batch.id, beat)
    if batch.status == "ready" and staging.waiting_categories(batch):
        if options.create_categories:
            staging.place_categories(session, batch, staging.default_choices(batch))
        else:
            staging.refuse_waiting(session, batch)
    if batch.status == "ready" and options.commit:
        try:
            committing.request_commit(session, batch, confirm_warnings=options.confirm_warnings)
        except staging.ImportInvalid as exc:
            batch.message = str(exc)
            session.commit()
            return batch
        batch = committing.commit_batch(session, batch.id, beat)
    return batch


def summary(session, batch, max_errors=100):
    """The JSON the CLI prints and the endpoint answers."""
    errors = session.execute(
        sa.select(ImportRow.line, ImportRow.errors)
        .where(ImportRow.batch_id == batch.id, ImportRow.action == "error")
        .order_by(ImportRow.line)
        .limit(max_errors)
    ).all()
    return {
        "batch": batch.id,
        "status": batch.status,
        "message": batch.message,
        "totals": {
            "rows": batch.rows_in, "created": batch.created, "updated": batch.updated,
            "unchanged": batch.unchanged, "skipped": batch.skipped, "failed": batch.failed,
        },
        "warnings": staging.warning_count(session, batch),
        "price_basis": batch.price_basis,
        "new_categories": {path: info["choice"] for path, info in (batch.new_categories or {}).items()},
        "errors": [{"line": line, "field": e["field"], "kind": e["kind"], "message": e["message"]}
                   for line, issues in errors for e in issues],
    }


def write_report(session, batch, path):
    """The error rows in the admin's own format, plus 错误原因."""
    from kamen.services.importing.error_report import write_error_report

    kind = "csv" if batch.file_kind == "csv" else "xlsx"
    rows = session.execute(
        sa.select(ImportRow.cells, ImportRow.line, ImportRow.errors)
        .where(ImportRow.batch_id == batch.id, ImportRow.action == "error")
        .order_by(ImportRow.sheet, ImportRow.line)
    )
    report = [(cells, line, "；".join(e["message"] for e in errors)) for cells, line, errors in rows]
    encoding = batch.csv_encoding or "utf-8-sig"
    if encoding.startswith("utf"):
        encoding = "utf-8-sig"
    write_error_report(path, kind, batch.headers, report, delimiter=batch.csv_delimiter or ",", encoding=encoding)
    return kind
