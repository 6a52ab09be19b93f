"""Customer pages: home, category, search, product."""
from flask import Response, abort, current_app, render_template, request

from kamen.blueprints.shop import bp
from kamen.extensions import db
from kamen.models.catalog import StockState
from kamen.services import catalog, images
from kamen.services.settings import threshold_or_default


FRAME_KEY = "kamen.shop_frame"


def _page_arg():
    return request.args.get("page", 1, type=int) or 1


def _frame():
    """Categories and 店铺设置 for this request (loaded once, from the worker's cache).
    Kept in the request's environ: ``g`` outlives a request where an app context was already pushed."""
    frame = request.environ.get(FRAME_KEY)
    if frame is None:
        frame = request.environ[FRAME_KEY] = catalog.shop_frame(
            db.session, max_age=current_app.config["SHOP_CACHE_SECONDS"], default_name=current_app.config["SHOP_NAME"]
        )
    return frame


def _tree():
    return _frame().tree


def _low_stock():
    """The 库存紧张 threshold of goods without their own (告警设置, from the frame: no query)."""
    return threshold_or_default(_frame().low_stock_threshold)


@bp.context_processor
def _shop_look():
    look = _frame().look
    return {"shop": look, "shop_name": look.name}


@bp.get("/")
def home():
    featured, hot = catalog.home_products(db.session, limit=30, default_threshold=_low_stock())
    return render_template("shop/home.html", tree=_tree(), featured=featured, hot=hot)


@bp.get("/c/<int:category_id>")
def category(category_id):
    tree = _tree()
    node = tree.node(category_id)
    if node is None:
        abort(404)
    sort = request.args.get("sort", "default")
    page = catalog.listed_products(
        db.session,
        default_threshold=_low_stock(),
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
            default_threshold=_low_stock(),
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
    item = catalog.shop_item(found, _low_stock())
    html = render_template(
        "shop/product.html",
        tree=tree,
        product=found,
        item=item,
        category=tree.node(found.category_id),
        buy_error=buy_error,
        form=form or {},
    )
    if status == 200 and not request.environ.get(catalog.UNCOUNTED_VIEW):
        catalog.record_view(db.session, product_id, write_every=current_app.config["SHOP_VIEW_WRITE_SECONDS"],
                            sold_out=item.stock_state is StockState.OUT)
    return html, status


@bp.get("/img/<int:upload_id>")
def image(upload_id):
    """A product picture or the logo. A new picture is a new upload, so the
    address never changes meaning and browsers may keep it for a year."""
    data = images.read(db.session, upload_id)
    if data is None:
        abort(404)
    response = Response(data, mimetype=images.MIMETYPE)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
