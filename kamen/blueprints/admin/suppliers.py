"""Suppliers: settings, 测试连接, 同步商品库 with progress, history, review of new goods."""
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import SupplierForm
from kamen.blueprints.common import is_htmx
from kamen.extensions import db
from kamen.models import Product, Supplier, SupplierKind, SyncRun
from kamen.money import format_plain
from kamen.secretbox import SecretUnreadable, mask
from kamen.services import forwarding, price_holds, scorecards, supplier_kinds, syncing
from kamen.services import suppliers as supplier_service
from kamen.services.background import PAUSED_MESSAGE
from kamen.services.categories import category_choices
from kamen.services.sync_dispatch import start_sync
from kamen.suppliers.base import SupplierError


def _supplier_or_404(supplier_id):
    return db.session.get(Supplier, supplier_id) or abort(404)


def _category_choices():
    return [(0, "（未分类）")] + category_choices(db.session)


@bp.get("/suppliers")
def suppliers():
    rows = db.session.scalars(sa.select(Supplier).order_by(Supplier.id)).all()
    last_runs = {}
    for run in db.session.scalars(
        sa.select(SyncRun).where(SyncRun.id.in_(sa.select(sa.func.max(SyncRun.id)).group_by(SyncRun.supplier_id)))
    ):
        last_runs[run.supplier_id] = run
    pending = dict(
        db.session.execute(
            sa.select(Product.supplier_id, sa.func.count())
            .where(sa.or_(Product.pending_review.is_(True), Product.pending_cost.is_not(None)))
            .group_by(Product.supplier_id)
        ).all()
    )
    return render_template("admin/suppliers.html", rows=rows, last_runs=last_runs, pending=pending)


@bp.route("/suppliers/new", methods=["GET", "POST"])
@bp.route("/suppliers/<int:supplier_id>/edit", methods=["GET", "POST"])
def supplier_form(supplier_id=None):
    supplier = _supplier_or_404(supplier_id) if supplier_id else None
    form = SupplierForm(obj=supplier)
    form.default_category_id.set_choices(_category_choices())
    if not form.is_submitted():
        if supplier is not None:
            form.kind.data = supplier.kind.value
            form.markup_step.data = format_plain(supplier.markup_step) if supplier.markup_step else "0.01"
            form.default_category_id.data = supplier.default_category_id or 0
            form.sync_interval_minutes.data = supplier.sync_interval_minutes or 0
        else:
            form.default_category_id.data = 0
            form.sync_interval_minutes.data = 30
    if form.validate_on_submit():
        values = {name: getattr(form, name).data for name in supplier_service.SETTINGS_FIELDS}
        values["code"] = values["code"].strip()
        values["name"] = values["name"].strip()
        values["base_url"] = (values["base_url"] or "").strip()
        values["app_id"] = (values["app_id"] or "").strip()
        values["markup_step"] = Decimal(values["markup_step"])
        values["default_category_id"] = values["default_category_id"] or None
        values["sync_interval_minutes"] = values["sync_interval_minutes"] or None
        values["nightly_sync_at"] = values["nightly_sync_at"] or None
        try:
            supplier = supplier_service.save_supplier(db.session, supplier, values, secret=form.secret.data)
        except supplier_service.SupplierInvalid as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            flash(f"货源“{supplier.name}”已保存。", "success")
            for warning in supplier_service.connection_warnings(supplier):
                flash(warning, "warning")
            return redirect(url_for("admin.supplier_detail", supplier_id=supplier.id))
    status = 400 if form.errors or form.form_errors else 200
    secret_state = mask(bool(supplier and supplier.secret_encrypted))
    kind = next((k for k in SupplierKind if k.value == form.kind.data), SupplierKind.KAMEN)
    texts = supplier_kinds.TEXTS[kind]
    for name in ("base_url", "app_id", "secret"):
        getattr(form, name).label.text = getattr(texts, name)[0]
    return render_template("admin/supplier_form.html", form=form, supplier=supplier, secret_state=secret_state,
                           texts=texts, kind_texts=supplier_kinds.texts_by_field()), status


@bp.get("/suppliers/<int:supplier_id>")
def supplier_detail(supplier_id):
    supplier = _supplier_or_404(supplier_id)
    runs = db.session.scalars(
        sa.select(SyncRun).where(SyncRun.supplier_id == supplier.id).order_by(SyncRun.id.desc()).limit(20)
    ).all()
    pending_count = supplier_service.pending_count(db.session, supplier)
    pending_count += price_holds.held_count(db.session, supplier)
    days = scorecards.period_days(request.args.get("days"))
    return render_template("admin/supplier_detail.html", supplier=supplier, runs=runs, pending_count=pending_count,
                           warnings=supplier_service.connection_warnings(supplier),
                           forwarded=forwarding.supplier_summary(db.session, supplier.id),
                           card=scorecards.scorecard(db.session, supplier.id, days), periods=scorecards.PERIODS)


@bp.post("/suppliers/<int:supplier_id>/test")
def supplier_test(supplier_id):
    supplier = _supplier_or_404(supplier_id)
    try:
        info = syncing.adapter_for_supplier(supplier).test_connection()
        ok, message = True, info.message
    except (SupplierError, SecretUnreadable) as exc:
        ok, message = False, f"连接失败：{exc}"
        hint = supplier_kinds.likely_mistake(supplier.kind, exc)
        if hint:
            message += f"。可能原因：{hint}"
    return render_template("admin/_connection_result.html", ok=ok, message=message)


@bp.post("/suppliers/<int:supplier_id>/sync")
def supplier_sync(supplier_id):
    supplier = _supplier_or_404(supplier_id)
    mode = "incremental" if request.form.get("mode") == "incremental" else "full"
    try:
        run, handle = start_sync(db.session, supplier, mode)
    except syncing.SyncBusy as busy:
        flash("该货源已有同步在进行，显示的是正在进行的那一次。", "warning")
        return redirect(url_for("admin.sync_run", supplier_id=supplier.id, run_id=busy.args[0]))
    except SupplierError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.supplier_detail", supplier_id=supplier.id))
    if handle.paused:
        flash(PAUSED_MESSAGE, "warning")
    return redirect(url_for("admin.sync_run", supplier_id=supplier.id, run_id=run.id))


@bp.get("/suppliers/<int:supplier_id>/runs/<int:run_id>")
def sync_run(supplier_id, run_id):
    run = db.session.get(SyncRun, run_id)
    if run is None or run.supplier_id != supplier_id:
        abort(404)
    template = "admin/_sync_run.html" if is_htmx() else "admin/sync_run.html"
    return render_template(template, run=run, supplier=run.supplier,
                           held_count=price_holds.held_count(db.session, run.supplier))


@bp.post("/suppliers/<int:supplier_id>/checked")
def supplier_checked(supplier_id):
    supplier = _supplier_or_404(supplier_id)
    syncing.mark_checked(db.session, supplier)
    flash(f"已记录：{supplier.name} 的库存已核对。", "success")
    if request.form.get("back") == "dashboard":
        return redirect(url_for("admin.dashboard"))
    return redirect(url_for("admin.supplier_detail", supplier_id=supplier.id))


@bp.route("/suppliers/<int:supplier_id>/review", methods=["GET", "POST"])
def supplier_review(supplier_id):
    supplier = _supplier_or_404(supplier_id)
    if request.method == "POST":
        form = request.form
        try:
            if form.get("action") == "map":
                supplier_service.map_remote_category(
                    db.session, supplier, form.get("remote_category", ""), form.get("category_id", type=int) or 0
                )
                flash("分类对应已保存，该货源分类下的商品（含以后同步的）都会放到该分类。", "success")
            elif form.get("action") == "create_categories":
                n = supplier_service.create_remote_categories(db.session, supplier)
                flash(f"已按货源分类建好 {n} 个本站分类，并把对应商品放了进去。" if n else "所有货源分类都已有对应。",
                      "success")
            elif form.get("action") in ("accept_price", "reject_price", "accept_all_prices", "reject_all_prices"):
                action = form["action"]
                accept = action.startswith("accept")
                ids = None if "_all_" in action else [i for i in form.getlist("price_ids") if i.isdigit()]
                n = price_holds.resolve(db.session, supplier, ids, accept=accept)
                flash(f"已{'接受新价格' if accept else '拒绝新价格（保持原售价）'}：{n} 个商品。", "success")
            else:
                approve = form.get("action") == "approve"
                n = supplier_service.review_pending(
                    db.session, supplier, [i for i in form.getlist("ids") if i.isdigit()],
                    approve=approve, category_id=form.get("category_id", type=int) or None,
                )
                flash(f"已{'上架' if approve else '忽略'} {n} 个商品。", "success")
        except supplier_service.SupplierInvalid as exc:
            flash(str(exc), "error")
        return redirect(url_for("admin.supplier_review", supplier_id=supplier.id))
    products = supplier_service.pending_products(db.session, supplier)
    remote_categories = supplier_service.remote_categories(db.session, supplier)
    held = price_holds.held_products(db.session, supplier)
    return render_template(
        "admin/supplier_review.html", supplier=supplier, products=products, held=held,
        accepted_prices={p.id: syncing.sale_price_for(supplier, p.pending_cost) for p in held},
        remote_categories=remote_categories, categories=_category_choices()[1:],
    )
