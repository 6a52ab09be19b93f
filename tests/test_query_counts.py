"""Shop pages run a fixed, small number of queries whatever the catalog size."""
from kamen.extensions import db
from kamen.models import Product
from kamen.services import catalog
from tests.helpers import make_category, make_products


def _counts(client, count_queries, urls):
    result = {}
    for name, url in urls.items():
        with count_queries() as statements:
            assert client.get(url).status_code == 200
        result[name] = len(statements)
    return result


def _catalog(n):
    root = make_category("游戏点卡")
    child = make_category("腾讯游戏", parent=root)

    def add(n):
        half = n // 2
        return make_products(half, child, name="王者荣耀点券") + make_products(
            n - half, root, is_pinned=True, name="网易一卡通点券"
        )

    first = add(n)
    urls = {
        "home": "/",
        "category": f"/c/{root.id}",
        "search": "/search?q=点券",
        "product": f"/p/{first[0].id}",
    }
    return urls, add


def test_query_counts_equal_for_30_and_300_products(app, client, count_queries):
    # The worst case: the tree loaded and the view written on every request
    # (the test settings), and full pages, whose total needs a count.
    app.config["SHOP_PAGE_SIZE"] = 20
    urls, add = _catalog(30)
    with_30 = _counts(client, count_queries, urls)
    add(270)
    with_300 = _counts(client, count_queries, urls)
    assert with_30 == with_300
    # home: categories + pinned and best sellers; category and search: categories
    # + one page of rows + count; product: categories + product + view counter.
    assert with_300 == {"home": 2, "category": 3, "search": 3, "product": 3}


def test_steady_state_pages_take_one_query(client, count_queries, shop_caching):
    # As in production: the category tree comes from the worker's cache, views
    # are written every few seconds, and a page that is not full needs no count.
    urls, _ = _catalog(30)
    _counts(client, count_queries, urls)  # warm the cache
    assert _counts(client, count_queries, urls) == {"home": 1, "category": 1, "search": 1, "product": 1}
    catalog.write_views(db.session)
    product_id = int(urls["product"].rsplit("/", 1)[1])
    assert db.session.get(Product, product_id).view_count == 2
