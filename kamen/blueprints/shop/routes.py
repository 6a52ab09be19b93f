"""Customer pages: home, category, search, product."""
from flask import abort, current_app, render_template, request

from kamen.blueprints.shop import bp
from kamen.extensions import db
from kamen.services import catalog


def _page_arg():
    return request.args.get("page", 1, type=int) or 1


@bp.get("/")
def home():
    tree = catalog.category_tree(db.session)
    pinned, hot = catalog.home_products(db.session, limit=30)
    return render_template("shop/home.html", tree=tree, pinned=pinned, hot=hot)


@bp.get("/c/<int:category_id>")
def category(category_id):
    tree = catalog.category_tree(db.session)
    node = tree.node(category_id)
    if node is None:
        abort(404)
    sort = request.args.get("sort", "default")
    page = catalog.listed_products(
        db.session,
        category_ids=node.ids,
        sort=sort,
        page=_page_arg(),
        per_page=current_app.config["SHOP_PAGE_SIZE"],
    )
    return render_template("shop/category.html", tree=tree, node=node, page=page, sort=sort, sorts=catalog.SHOP_SORTS)


@bp.get("/search")
def search():
    tree = catalog.category_tree(db.session)
    q = request.args.get("q", "").strip()[:60]
    sort = request.args.get("sort", "default")
    page = None
    if q:
        page = catalog.listed_products(
            db.session, search=q, sort=sort, page=_page_arg(), per_page=current_app.config["SHOP_PAGE_SIZE"]
        )
    return render_template("shop/search.html", tree=tree, q=q, page=page, sort=sort, sorts=catalog.SHOP_SORTS)


@bp.get("/p/<int:product_id>")
def product(product_id):
    tree = catalog.category_tree(db.session)
    item = catalog.shop_product(db.session, product_id)
    if item is None:
        abort(404)
    html = render_template("shop/product.html", tree=tree, product=item)
    catalog.record_view(db.session, product_id)
    return html
