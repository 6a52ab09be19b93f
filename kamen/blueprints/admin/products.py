"""Products: filtered list, HTMX inline edits, bulk actions, create/edit form."""
import json
from datetime import datetime

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import ProductForm
from kamen.blueprints.common import is_htmx
from kamen.services.settings import low_stock_threshold
from kamen.extensions import db
from kamen.models import DeliveryType, Product, StockMode, Supplier
from kamen.services import delivery, launch_test, merchandising, pricing
from kamen.services import products as product_service
from kamen.services.catalog import category_tree
from kamen.services.categories import category_choices
from kamen.services.suppliers import default_supplier
from kamen.timeutil import from_local, to_local


def _filters():
    args = request.args
    return product_service.AdminFilters(
        q=args.get("q", "").strip()[:60],
        category_id=args.get("category_id", type=int),
        listed=args.get("listed", ""),
        low_stock=args.get("low_stock") == "1",
        sort=args.get("sort", "updated"),
        batch_id=args.get("batch", type=int),
    )


@bp.get("/products")
def products():
    filters = _filters()
    per_page = current_app.config["ADMIN_PAGE_SIZE"]
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = product_service.admin_products(
        db.session,
        filters,
        default_threshold=low_stock_threshold(db.session),
        page=page,
        per_page=per_page,
    )
    return render_template(
        "admin/products.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // per_page)),
        filters=filters,
        tree=category_tree(db.session, visible_only=False),
        sorts=product_service.ADMIN_SORTS,
    )


def _field_or_404(field):
    if field not in product_service.INLINE_FIELDS:
        abort(404)
    return product_service.INLINE_FIELDS[field]


@bp.get("/products/<int:product_id>/cell/<field>")
def product_cell(product_id, field):
    spec = _field_or_404(field)
    product = db.get_or_404(Product, product_id)
    if not is_htmx():
        return redirect(url_for("admin.product_form", product_id=product_id))
    editing = request.args.get("edit") == "1"
    raw = getattr(product, field)
    return render_template(
        "admin/_cell.html", p=product, spec=spec, editing=editing, raw="" if raw is None else raw
    )


@bp.post("/products/<int:product_id>/cell/<field>")
def product_cell_save(product_id, field):
    spec = _field_or_404(field)
    product = db.get_or_404(Product, product_id)
    raw = request.form.get("value", "")
    try:
        product_service.update_inline(db.session, product, field, raw)
    except product_service.ProductInvalid as exc:
        if not is_htmx():
            flash(f"{product.code}：{exc}", "error")
            return redirect(url_for("admin.products"))
        product = db.get_or_404(Product, product_id)
        html = render_template("admin/_cell.html", p=product, spec=spec, editing=True, raw=raw, error=str(exc))
        return html, 422
    if not is_htmx():
        flash("已保存。", "success")
        return redirect(url_for("admin.products"))
    return render_template("admin/_cell.html", p=product, spec=spec, editing=False, saved=True)


@bp.post("/products/<int:product_id>/listed")
def product_listed(product_id):
    product = db.get_or_404(Product, product_id)
    product_service.set_listed(db.session, product, request.form.get("listed") == "1")
    if is_htmx():
        return render_template("admin/_listed_cell.html", p=product)
    return redirect(url_for("admin.products"))


@bp.post("/products/bulk")
def products_bulk():
    form = request.form
    ids = form.getlist("ids")
    action = form.get("action", "")
    back = url_for("admin.products") + _safe_query(form.get("back", ""))
    try:
        if not all(i.isdigit() for i in ids):
            raise product_service.ProductInvalid("选择的商品无效")
        if action in ("list", "delist"):
            n = product_service.bulk_set_listed(db.session, ids, action == "list")
            flash(f"已{'上架' if action == 'list' else '下架'} {n} 个商品。", "success")
        elif action == "move":
            n = product_service.bulk_move(db.session, ids, form.get("category_id", type=int) or 0)
            flash(f"已移动 {n} 个商品。", "success")
        elif action in ("pin", "unpin"):
            n = merchandising.bulk_set_pinned(db.session, ids, action == "pin")
            flash(f"已{'置顶' if action == 'pin' else '取消置顶'} {n} 个商品。", "success")
        elif action == "launch_test":
            if not ids:
                raise product_service.ProductInvalid("请先勾选商品")
            try:
                run = launch_test.start(db.session, f"手动选择 {len(ids)} 个商品", None, ids)
            except launch_test.LaunchInvalid as exc:
                raise product_service.ProductInvalid(str(exc)) from exc
            return redirect(url_for("admin.launch_test_report", test_id=run.id))
        elif action == "feature":
            n = merchandising.add_featured(db.session, ids)
            flash(f"已把 {n} 个商品加入首页推荐位。", "success")
        elif action == "markup":
            n = product_service.bulk_markup(db.session, ids, pricing.parse_markup(form))
            flash(f"已按加价规则重新定价 {n} 个商品。", "success")
        else:
            raise product_service.ProductInvalid("请选择批量操作")
    except (product_service.ProductInvalid, pricing.PriceRuleError) as exc:
        flash(str(exc), "error")
    return redirect(back)


def _safe_query(query):
    """Keep the list's filters after a bulk action, but only as a query string."""
    return "?" + query if query and not any(c in query for c in "/\\:") else ""


@bp.route("/products/new", methods=["GET", "POST"])
@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
def product_form(product_id=None):
    product = db.get_or_404(Product, product_id) if product_id else None
    form = ProductForm(obj=product)
    own_supplier = default_supplier(db.session)
    form.supplier_id.set_choices(
        (s.id, s.name) for s in db.session.scalars(sa.select(Supplier).order_by(Supplier.id))
    )
    form.category_id.set_choices([(0, "（未分类）")] + category_choices(db.session))
    if not form.is_submitted():
        _fill_form(form, product, own_supplier)
        form.original.data = json.dumps(_as_shown(form), ensure_ascii=False)
    if form.validate_on_submit():
        try:
            product = product_service.save_product(db.session, product, _values(form), _changed(form, product))
        except product_service.ProductInvalid as exc:
            db.session.rollback()
            target = getattr(form, exc.field, None) if exc.field else None
            (target.errors if target is not None else form.form_errors).append(str(exc))
        else:
            flash(f"商品“{product.name}”已保存。", "success")
            return redirect(url_for("admin.products"))
    status = 400 if form.errors or form.form_errors else 200
    return render_template("admin/product_form.html", form=form, product=product), status


def _fill_form(form, product, own_supplier):
    if product is None:
        form.supplier_id.data = own_supplier.id
        form.category_id.data = 0
        return
    form.category_id.data = product.category_id or 0
    form.stock_mode.data = product.stock_mode.value
    form.delivery_type.data = product.delivery_type.value
    form.buyer_presets.data, others = delivery.presets_of(product.buyer_fields)
    form.buyer_fields.data = product_service.format_buyer_fields(others)
    for name in ("promo_start", "promo_end"):
        local = to_local(getattr(product, name))
        getattr(form, name).data = local.replace(tzinfo=None) if local else None


def _as_shown(form):
    """Each field's value as the form shows it, to tell on submit what the admin changed."""
    shown = {name: _shown(form[name].data) for name in product_service.FORM_FIELDS}
    try:
        shown["buyer_fields"] = _buyer_fields_text(form)
    except product_service.ProductInvalid:
        pass  # refused when saved
    return shown


def _buyer_fields_text(form):
    """The picked presets, then the admin's own lines: one buyer_fields text."""
    try:
        fields = delivery.combine(form.buyer_presets.data or [])
    except ValueError as exc:
        raise product_service.ProductInvalid(str(exc), "buyer_presets") from exc
    own = (form.buyer_fields.data or "").strip()
    return "\n".join(filter(None, [product_service.format_buyer_fields(fields), own]))


def _shown(value):
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M") if isinstance(value, datetime) else str(value)


def _changed(form, product):
    """Fields whose submitted value differs from what the page showed; None: write them all."""
    if product is None:
        return None
    try:
        shown = json.loads(form.original.data or "")
    except ValueError:
        return None
    if not isinstance(shown, dict):
        return None
    now = _as_shown(form)
    return {name for name in product_service.FORM_FIELDS if shown.get(name) != now[name]}


def _values(form):
    data = {name: form[name].data for name in product_service.FORM_FIELDS}
    return {
        **data,
        "code": data["code"].strip(),
        "name": data["name"].strip(),
        "category_id": data["category_id"] or None,
        "tier_label": (data["tier_label"] or "").strip() or None,
        "promo_start": from_local(data["promo_start"]),
        "promo_end": from_local(data["promo_end"]),
        "stock_mode": StockMode(data["stock_mode"]),
        "delivery_type": DeliveryType(data["delivery_type"]),
        "description": data["description"] or "",
        "buyer_fields": _buyer_fields_text(form),
    }
