"""店铺设置, product pictures, 推荐位 and 置顶 of the top-margin goods."""
from flask import flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.extensions import db
from kamen.models import Product
from kamen.services import images, merchandising, storefront
from kamen.services.catalog import category_tree
from kamen.services.products import ProductInvalid


def _file(name):
    """The uploaded file's stream, or None when no file was chosen."""
    upload = request.files.get(name)
    return upload if upload is not None and upload.filename else None


@bp.route("/settings/shop", methods=["GET", "POST"])
def shop_settings():
    values = storefront.current(db.session)
    error = None
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in storefront.TEXT_FIELDS}
        logo = _file("logo")
        try:
            storefront.save(db.session, form, logo=logo.stream if logo else None,
                            remove_logo=request.form.get("remove_logo") == "1")
        except storefront.ShopSettingsInvalid as exc:
            error = exc
            values = {**values, **form}
        else:
            flash("店铺设置已保存，商城页面已更新。", "success")
            return redirect(url_for("admin.shop_settings"))
    return render_template("admin/shop_settings.html", values=values, error=error,
                           fields=storefront.TEXT_FIELDS, max_mb=images.MAX_BYTES >> 20), 400 if error else 200


@bp.post("/products/<int:product_id>/image")
def product_image(product_id):
    product = db.get_or_404(Product, product_id)
    back = url_for("admin.product_form", product_id=product_id)
    if request.form.get("remove") == "1":
        storefront.remove_product_image(db.session, product)
        flash("已删除上传的图片，商城将显示货源图片或分类默认图。", "success")
        return redirect(back)
    picture = _file("image")
    try:
        if picture is None:
            raise images.ImageInvalid("请选择要上传的图片")
        storefront.set_product_image(db.session, product, picture.stream, picture.filename)
    except images.ImageInvalid as exc:
        flash(f"图片未保存：{exc}", "error")
    else:
        flash("商品图片已更新。", "success")
    return redirect(back)


@bp.get("/featured")
def featured():
    return render_template("admin/featured.html", products=merchandising.featured(db.session),
                           max_count=merchandising.FEATURED_MAX, tree=category_tree(db.session, visible_only=False))


@bp.post("/featured/<int:product_id>/move")
def featured_move(product_id):
    try:
        merchandising.move_featured(db.session, product_id, -1 if request.form.get("direction") == "up" else 1)
    except ProductInvalid as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.featured"))


@bp.post("/featured/<int:product_id>/remove")
def featured_remove(product_id):
    try:
        merchandising.remove_featured(db.session, [product_id])
    except ProductInvalid as exc:
        flash(str(exc), "error")
    else:
        flash("已从推荐位移除。", "success")
    return redirect(url_for("admin.featured"))


@bp.post("/products/pin-top-margin")
def pin_top_margin():
    raw = request.form.get("count", "").strip()
    category_id = request.form.get("category_id", type=int)
    try:
        if not raw.isdigit():
            raise ProductInvalid("请填写要置顶的商品数量（1 到 200 的整数）")
        ids = None
        if category_id:
            node = category_tree(db.session, visible_only=False).node(category_id)
            if node is None:
                raise ProductInvalid("所选分类不存在，请刷新后重试")
            ids = node.ids
        top = merchandising.pin_top_margin(db.session, int(raw), ids)
    except ProductInvalid as exc:
        flash(str(exc), "error")
    else:
        flash(f"已置顶毛利最高的 {len(top)} 个在售商品。" if top else "没有可置顶的在售商品。", "success")
    return redirect(url_for("admin.products", sort="margin"))
