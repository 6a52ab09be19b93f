"""Category CRUD (two levels)."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.forms import CategoryForm
from kamen.extensions import db
from kamen.models import Category, CategoryRule
from kamen.services import categories as category_service
from kamen.services.catalog import category_tree


def _parent_choices(exclude_id=None):
    roots = db.session.scalars(
        sa.select(Category).where(Category.parent_id.is_(None)).order_by(Category.sort_order, Category.id)
    ).all()
    return [(0, "（无，作为一级分类）")] + [(c.id, c.name) for c in roots if c.id != exclude_id]


@bp.get("/categories")
def categories():
    tree = category_tree(db.session, visible_only=False)
    counts = category_service.product_counts(db.session)
    return render_template("admin/categories.html", tree=tree, counts=counts, rules=category_service.rules(db.session),
                           category_options=category_service.category_choices(db.session))


@bp.post("/categories/rules")
def category_rule_add():
    try:
        rule = category_service.add_rule(db.session, request.form.get("keyword", ""),
                                         request.form.get("category_id", type=int))
    except category_service.RuleInvalid as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(f"已添加规则：名称含“{rule.keyword}”的商品放入“{rule.category.full_name}”。", "success")
    return redirect(url_for("admin.categories", _anchor="category-rules"))


@bp.post("/categories/rules/<int:rule_id>/delete")
def category_rule_delete(rule_id):
    rule = db.session.get(CategoryRule, rule_id) or abort(404)
    category_service.delete_rule(db.session, rule)
    flash("规则已删除。", "success")
    return redirect(url_for("admin.categories", _anchor="category-rules"))


@bp.route("/categories/new", methods=["GET", "POST"])
@bp.route("/categories/<int:category_id>/edit", methods=["GET", "POST"])
def category_form(category_id=None):
    category = db.session.get(Category, category_id) if category_id else None
    if category_id and category is None:
        abort(404)
    form = CategoryForm(obj=category)
    form.parent_id.set_choices(_parent_choices(exclude_id=category_id))
    if category and not form.is_submitted():
        form.parent_id.data = category.parent_id or 0
    if form.validate_on_submit():
        try:
            category_service.save(
                db.session,
                category,
                name=form.name.data.strip(),
                parent_id=form.parent_id.data or None,
                sort_order=form.sort_order.data,
                is_visible=form.is_visible.data,
            )
        except category_service.CategoryInvalid as exc:
            form.name.errors.append(str(exc))
        else:
            flash("分类已保存。", "success")
            return redirect(url_for("admin.categories"))
    status = 400 if form.errors else 200
    return render_template("admin/category_form.html", form=form, category=category), status


@bp.post("/categories/<int:category_id>/delete")
def category_delete(category_id):
    category = db.session.get(Category, category_id) or abort(404)
    try:
        category_service.delete(db.session, category)
    except category_service.CategoryInvalid as exc:
        flash(str(exc), "error")
    else:
        flash("分类已删除。", "success")
    return redirect(url_for("admin.categories"))
