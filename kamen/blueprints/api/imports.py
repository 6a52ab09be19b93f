"""Upload price lists from scripts ("zero manual"): POST a file with an API token.

    curl -H "Authorization: Bearer kmt_…" -F file=@price.xlsx -F supplier=self -F commit=1 \\
         https://shop.example.com/api/import/v1/products

Optional fields: create_categories=1 creates the categories the file names that the
shop lacks (a near-duplicate of an existing name is that one; without it their rows
fail), price_basis=file|markup|cap_face|cap_market (default: the supplier's).

Answers 202 with the batch and a status URL; GET that URL until status is
committed / ready / failed. The summary is the same JSON the CLI prints.
"""
import sqlalchemy as sa
from flask import g, jsonify, request, url_for

from kamen.blueprints.api import bp
from kamen.extensions import db
from kamen.models import ImportBatch, Supplier
from kamen.services.api_tokens import check_token
from kamen.services.background import PAUSED_MESSAGE
from kamen.services.importing import automation, batches
from kamen.services.importing.errors import ImportFileError
from kamen.services.pricing import PRICE_BASES
from kamen.services.suppliers import default_supplier

PREFIX = "/api/import/v1"


def _error(status, message):
    return jsonify({"error": message}), status


def _authenticate():
    header = request.headers.get("Authorization", "")
    secret = header[7:].strip() if header.startswith("Bearer ") else ""
    g.api_token = check_token(db.session, secret)
    return g.api_token is not None


@bp.post(f"{PREFIX}/products")
def import_products():
    if not _authenticate():
        return _error(401, "API 令牌无效或缺失（请求头 Authorization: Bearer <令牌>）")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _error(400, "请用 multipart 表单字段 file 上传文件")
    code = request.form.get("supplier", "").strip()
    supplier = db.session.scalar(sa.select(Supplier).filter_by(code=code)) if code else default_supplier(db.session)
    if supplier is None:
        return _error(400, f"没有代号为 {code} 的货源")
    mode = request.form.get("mode", "upsert")
    if mode not in ("upsert", "create", "update"):
        return _error(400, "mode 只能是 upsert、create 或 update")
    price_basis = request.form.get("price_basis") or None
    if price_basis is not None and price_basis not in PRICE_BASES:
        return _error(400, f"price_basis 只能是 {'、'.join(PRICE_BASES)}")
    options = automation.AutoOptions(
        mode=mode, template=request.form.get("template", "").strip(), commit=request.form.get("commit") == "1",
        confirm_warnings=request.form.get("confirm_warnings") == "1",
        create_categories=request.form.get("create_categories") == "1", price_basis=price_basis,
    )
    try:
        batch, handle = batches.upload(db.session, upload.stream, upload.filename, supplier=supplier, mode=mode,
                                       auto=options)
    except ImportFileError as exc:
        return _error(400, str(exc))
    status_url = url_for("api.import_status", batch_id=batch.id, _external=True)
    body = {"batch": batch.id, "status_url": status_url}
    if handle.paused:
        body["message"] = PAUSED_MESSAGE
    response = jsonify(body)
    response.status_code, response.headers["Location"] = 202, status_url
    return response


@bp.get(f"{PREFIX}/batches/<int:batch_id>")
def import_status(batch_id):
    if not _authenticate():
        return _error(401, "API 令牌无效或缺失（请求头 Authorization: Bearer <令牌>）")
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        return _error(404, "没有这个导入批次")
    return jsonify(automation.summary(db.session, batch))
