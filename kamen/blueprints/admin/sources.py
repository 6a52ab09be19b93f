"""货源 of a product: its own supplier product first, then backups of the same 面值 (一键代发 failover)."""
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.models import Product
from kamen.services import forwarding, sources


def _product_or_404(product_id):
    return db.session.get(Product, product_id) or abort(404)


@bp.get("/products/<int:product_id>/sources")
def product_sources(product_id):
    product = _product_or_404(product_id)
    return render_template(
        "admin/product_sources.html", product=product, rows=sources.source_rows(db.session, product.id),
        chain=forwarding.sources_for(db.session, product), candidates=sources.candidates(db.session, product),
        orders=sources.ORDERS, own_forwardable=forwarding.takes_orders(product.supplier),
        by_score=forwarding.forwarding_settings(db.session)["score_sources"],
    )


def _act(product_id, action, done):
    product = _product_or_404(product_id)
    try:
        action(product)
    except sources.SourceInvalid as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(done, "success")
    return redirect(url_for("admin.product_sources", product_id=product_id))


@bp.post("/products/<int:product_id>/sources")
def product_source_add(product_id):
    source_id = request.form.get("source_id", type=int)
    return _act(product_id, lambda p: sources.add(db.session, p, source_id or 0), "已添加备用货源。")


@bp.post("/products/<int:product_id>/sources/<int:source_row_id>/remove")
def product_source_remove(product_id, source_row_id):
    return _act(product_id, lambda p: sources.remove(db.session, p, source_row_id), "已移除该备用货源。")


@bp.post("/products/<int:product_id>/sources/<int:source_row_id>/move")
def product_source_move(product_id, source_row_id):
    step = 1 if request.form.get("direction") == "down" else -1
    return _act(product_id, lambda p: sources.move(db.session, p, source_row_id, step), "顺序已调整。")


@bp.post("/products/<int:product_id>/sources/order")
def product_source_order(product_id):
    return _act(product_id, lambda p: sources.set_order(db.session, p, request.form.get("order", "")),
                "货源顺序规则已保存。")
