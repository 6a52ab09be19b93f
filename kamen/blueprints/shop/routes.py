"""Customer pages: home, category, search, product."""
from flask import abort, current_app, render_template, request

from kamen.blueprints.shop import bp
from kamen.config import low_stock_threshold
from kamen.extensions import db
from kamen.services import catalog


def _page_arg():
    return request.args.get("page", 1, type=int) or 1


def _tree():
    return catalog.shop_tree(db.session, max_age=current_app.config["SHOP_CACHE_SECONDS"])


@bp.get("/")
def home():
    pinned, hot = catalog.home_products(db.session, limit=30, default_threshold=low_stock_threshold())
    return render_template("shop/home.html", tree=_tree(), pinned=pinned, hot=hot)


@bp.get("/c/<int:category_id>")
def category(category_id):
    tree = _tree()
    node = tree.node(category_id)
    if node is None:
        abort(404)
    sort = request.args.get("sort", "default")
    page = catalog.listed_products(
        db.session,
        default_threshold=low_stock_threshold(),
        category_ids=node.ids,
        sort=sort,
        page=_page_arg(),
        per_page=current_app.config["SHOP_PAGE_SIZE"],
    )
    return render_template("shop/category.html", tree=tree, node=node, page=page, sort=sort, sorts=catalog.SHOP_SORTS)


@bp.get("/search")
def search():
    q = request.args.get("q", "").strip()[:60]
    sort = request.args.get("sort", "default")
    page = None
    if q:
        page = catalog.listed_products(
            db.session,
            default_threshold=low_stock_threshold(),
            search=q,
            sort=sort,
            page=_page_arg(),
            per_page=current_app.config["SHOP_PAGE_SIZE"],
        )
    return render_template("shop/search.html", tree=_tree(), q=q, page=page, sort=sort, sorts=catalog.SHOP_SORTS)


@bp.get("/p/<int:product_id>")
def product(product_id):
    return render_product(product_id)


def render_product(product_id, buy_error=None, form=None, status=200):
    """The product page; the buy form shows ``buy_error`` and keeps what was typed."""
    tree = _tree()
    found = catalog.shop_product(db.session, product_id)
    if found is None:
        abort(404)
    html = render_template(
        "shop/product.html",
        tree=tree,
        product=found,
        item=catalog.shop_item(found, low_stock_threshold()),
        category=tree.node(found.category_id),
        buy_error=buy_error,
        form=form or {},
    )
    if status == 200:
        catalog.record_view(db.session, product_id, write_every=current_app.config["SHOP_VIEW_WRITE_SECONDS"])
    return html, status
