"""Card codes (卡密) of one product: upload (file or paste) with a report, masked list, delete."""
import io

from flask import current_app, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.common import is_htmx
from kamen.extensions import db
from kamen.models import Product
from kamen.services import card_codes as card_service


def _list_state(source):
    status = source.get("status", "")
    page = max(source.get("page", 1, type=int) or 1, 1)
    return (status if status in card_service.STATUS_LABELS else ""), page


def _render(product, *, status="", page=1, report=None, error=None, message=None, code=200, upload_job=None):
    per_page = current_app.config["ADMIN_PAGE_SIZE"]

    def fetch(page):
        return card_service.code_page(db.session, product.id, status=status or None, page=page, per_page=per_page)

    rows, total = fetch(page)
    pages = max(1, -(-total // per_page))
    if page > pages:  # the last page emptied by a delete
        page = pages
        rows, total = fetch(page)
    if upload_job is not None and upload_job.status == "done":
        report = card_service.report_of(upload_job)
    elif upload_job is not None and upload_job.status == "failed":
        error = f"未上传任何卡密：{upload_job.message}"
    template = "admin/card_codes_panel.html" if is_htmx() else "admin/card_codes.html"
    html = render_template(
        template,
        product=product,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        status=status,
        counts=card_service.status_counts(db.session, product.id),
        status_labels=card_service.STATUS_LABELS,
        report=report,
        error=error,
        message=message,
        limits=card_service.configured_limits(),
        upload_job=upload_job,
    )
    return html, code


@bp.get("/products/<int:product_id>/card-codes")
def card_codes(product_id):
    status, page = _list_state(request.args)
    product = db.get_or_404(Product, product_id)
    upload_job = card_service.job_for_page(db.session, product, request.args.get("upload", type=int))
    return _render(product, status=status, page=page, upload_job=upload_job)


@bp.post("/products/<int:product_id>/card-codes")
def card_codes_upload(product_id):
    product = db.get_or_404(Product, product_id)
    upload = request.files.get("file")
    pasted = request.form.get("codes", "")
    try:
        if upload and upload.filename:
            job = card_service.queue_file(db.session, product, upload.stream, upload.filename)
        elif len(pasted.encode("utf-8")) > card_service.PASTE_INLINE_BYTES:
            job = card_service.queue_file(db.session, product, io.BytesIO(pasted.encode("utf-8")), "粘贴的卡密.txt")
        elif pasted.strip():
            report = card_service.upload_text(db.session, product, pasted, card_service.configured_limits())
            return _render(product, report=report)
        else:
            raise card_service.CardCodeError("请选择要上传的文件，或在文本框里粘贴卡密")
    except card_service.CardCodeError as exc:
        return _render(product, error=f"未上传任何卡密：{exc}", code=_refused())
    # Jobs run at once without a queue: a refused file is answered as before.
    return _render(product, upload_job=job, code=_refused() if job.status == "failed" else 200)


def _refused():
    return 422 if is_htmx() else 400


@bp.post("/products/<int:product_id>/card-codes/delete")
def card_codes_delete(product_id):
    product = db.get_or_404(Product, product_id)
    status, page = _list_state(request.form)
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    try:
        deleted = card_service.delete_available(db.session, product, ids)
    except card_service.CardCodeError as exc:
        error, message = str(exc), None
    else:
        error, message = None, f"已删除 {deleted} 条未售卡密。" + ("（选中的卡密中有已售出的，未删除）" if deleted < len(ids) else "")
    if is_htmx():
        return _render(product, status=status, page=page, error=error, message=message)
    flash(error or message, "error" if error else "success")
    return redirect(url_for("admin.card_codes", product_id=product.id, status=status or None, page=page))
