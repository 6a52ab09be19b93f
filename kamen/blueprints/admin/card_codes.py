"""Card codes (卡密) of one product: upload (file or paste) with a report, masked list, delete."""
import os
import tempfile

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.models import Product
from kamen.services import card_codes as card_service


def _is_htmx():
    return request.headers.get("HX-Request") == "true"


def _product_or_404(product_id):
    return db.session.get(Product, product_id) or abort(404)


def _list_state(source):
    status = source.get("status", "")
    page = max(source.get("page", 1, type=int) or 1, 1)
    return (status if status in card_service.STATUS_LABELS else ""), page


def _render(product, *, status="", page=1, report=None, error=None, message=None, code=200):
    per_page = current_app.config["ADMIN_PAGE_SIZE"]

    def fetch(page):
        return card_service.code_page(db.session, product.id, status=status or None, page=page, per_page=per_page)

    rows, total = fetch(page)
    pages = max(1, -(-total // per_page))
    if page > pages:  # the last page emptied by a delete
        page = pages
        rows, total = fetch(page)
    template = "admin/card_codes_panel.html" if _is_htmx() else "admin/card_codes.html"
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
        limits=_limits(),
    )
    return html, code


@bp.get("/products/<int:product_id>/card-codes")
def card_codes(product_id):
    status, page = _list_state(request.args)
    return _render(_product_or_404(product_id), status=status, page=page)


@bp.post("/products/<int:product_id>/card-codes")
def card_codes_upload(product_id):
    product = _product_or_404(product_id)
    upload = request.files.get("file")
    pasted = request.form.get("codes", "")
    try:
        if upload and upload.filename:
            report = _upload_file(product, upload)
        elif pasted.strip():
            report = card_service.upload_text(db.session, product, pasted, _limits())
        else:
            raise card_service.CardCodeError("请选择要上传的文件，或在文本框里粘贴卡密")
    except card_service.CardCodeError as exc:
        return _render(product, error=f"未上传任何卡密：{exc}", code=422 if _is_htmx() else 400)
    return _render(product, report=report)


def _upload_file(product, upload):
    # The file holds secrets: it lives only in a private temp dir for this request.
    with tempfile.TemporaryDirectory(prefix="kamen-cards-") as tmp:
        path = os.path.join(tmp, "upload")
        upload.save(path)
        return card_service.upload_file(db.session, product, path, _limits())


def _limits():
    return card_service.Limits(max_bytes=current_app.config["IMPORT_MAX_BYTES"])


@bp.post("/products/<int:product_id>/card-codes/delete")
def card_codes_delete(product_id):
    product = _product_or_404(product_id)
    status, page = _list_state(request.form)
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    try:
        deleted = card_service.delete_available(db.session, product, ids)
    except card_service.CardCodeError as exc:
        error, message = str(exc), None
    else:
        error, message = None, f"已删除 {deleted} 条未售卡密。" + ("（选中的卡密中有已售出的，未删除）" if deleted < len(ids) else "")
    if _is_htmx():
        return _render(product, status=status, page=page, error=error, message=message)
    flash(error or message, "error" if error else "success")
    return redirect(url_for("admin.card_codes", product_id=product.id, status=status or None, page=page))
