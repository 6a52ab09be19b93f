from datetime import timedelta
from decimal import Decimal

from kamen.extensions import db
from kamen.models import Product, StockMode
from kamen.services import catalog, categories
from kamen.timeutil import utcnow
from tests.helpers import make_category, make_product


def test_home_shows_categories_featured_and_hot_products(client):
    games = make_category("游戏点卡")
    make_product(games, name="王者荣耀点券", featured_rank=2)
    make_product(games, name="和平精英点券", featured_rank=1, stock=0)  # picked by hand: shown even when sold out
    make_product(games, name="网易一卡通", sales_count=50)
    make_product(games, name="卖光了的爆款", sales_count=900, stock=0)
    make_product(games, name="直充不限库存", sales_count=10, stock_mode=StockMode.UNLIMITED, stock=0)
    make_product(games, name="下架的商品", is_listed=False, featured_rank=3)
    page = client.get("/").get_data(as_text=True)
    assert "游戏点卡" in page
    assert (page.index("站长推荐") < page.index("和平精英点券") < page.index("王者荣耀点券") < page.index("热销商品")
            < page.index("网易一卡通") < page.index("直充不限库存"))
    assert "下架的商品" not in page
    assert "卖光了的爆款" not in page  # 热销 skips goods a customer cannot buy now


def test_category_page_includes_subcategories_and_sorts(client):
    root = make_category("视频会员")
    child = make_category("爱奇艺", parent=root)
    make_product(child, name="爱奇艺月卡", sale_price=Decimal("19.90"), cost_price=Decimal("17.00"))
    make_product(root, name="通用会员", sale_price=Decimal("9.90"), cost_price=Decimal("9.00"))
    page = client.get(f"/c/{root.id}?sort=price_asc").get_data(as_text=True)
    assert page.index("通用会员") < page.index("爱奇艺月卡")
    page = client.get(f"/c/{root.id}?sort=price_desc").get_data(as_text=True)
    assert page.index("爱奇艺月卡") < page.index("通用会员")
    assert "爱奇艺月卡" not in client.get(f"/c/{make_category('话费').id}").get_data(as_text=True)


def test_search_by_name_or_exact_code(client):
    make_product(name="腾讯Q币 10元", code="QB10")
    make_product(name="中国移动 50元", code="YD50")
    page = client.get("/search?q=Q币").get_data(as_text=True)
    assert "腾讯Q币 10元" in page and "中国移动" not in page
    page = client.get("/search?q=YD50").get_data(as_text=True)
    assert "中国移动 50元" in page
    page = client.get("/search?q=100%25_").get_data(as_text=True)
    assert "没有找到相关商品" in page


def test_product_page_shows_price_stock_delivery_and_counts_views(client):
    product = make_product(
        name="爱奇艺黄金会员 月卡",
        sale_price=Decimal("19.90"),
        cost_price=Decimal("17.00"),
        promo_price=Decimal("18.80"),
        promo_start=utcnow() - timedelta(hours=1),
        promo_end=utcnow() + timedelta(days=1),
        stock=5,
        delivery_minutes=5,
        buyer_fields=[{"key": "account", "label": "充值账号", "pattern": "", "hint": "手机号"}],
    )
    updated_at = product.updated_at
    page = client.get(f"/p/{product.id}").get_data(as_text=True)
    assert "¥18.80" in page and "<del" in page and "¥19.90" in page
    assert "库存紧张" in page
    assert "5 分钟内" in page and "充值账号" in page
    client.get(f"/p/{product.id}")
    db.session.expire_all()
    fresh = db.session.get(Product, product.id)
    assert fresh.view_count == 2
    assert fresh.updated_at == updated_at


def test_the_shop_says_low_stock_by_the_threshold_set_in_the_back_office(client):
    """告警设置's 库存预警默认阈值 is what the shop's 库存紧张 follows, not the deployment default."""
    from kamen.services import settings

    product = make_product(stock=30)
    assert "库存紧张" not in client.get(f"/p/{product.id}").get_data(as_text=True)  # default 10
    settings.put(db.session, "alerts", {**settings.get(db.session, "alerts"), "low_stock_threshold": 50})
    db.session.commit()
    assert "库存紧张" in client.get(f"/p/{product.id}").get_data(as_text=True)
    assert "库存紧张" in client.get("/").get_data(as_text=True)


def test_expired_promo_is_not_shown(client):
    product = make_product(
        sale_price=Decimal("19.90"),
        cost_price=Decimal("10.00"),
        promo_price=Decimal("15.00"),
        promo_end=utcnow() - timedelta(minutes=1),
    )
    page = client.get(f"/p/{product.id}").get_data(as_text=True)
    assert "¥19.90" in page and "¥15.00" not in page


def test_stock_states(client):
    out = make_product(stock=0)
    unlimited = make_product(stock=0, stock_mode=StockMode.UNLIMITED)
    plenty = make_product(stock=500)
    assert "缺货" in client.get(f"/p/{out.id}").get_data(as_text=True)
    assert "有货" in client.get(f"/p/{unlimited.id}").get_data(as_text=True)
    assert "有货" in client.get(f"/p/{plenty.id}").get_data(as_text=True)


def test_unlisted_and_missing_pages_are_chinese_404s(client):
    hidden = make_product(is_listed=False)
    for url in (f"/p/{hidden.id}", "/p/999999", "/c/999999", "/no-such-page"):
        response = client.get(url)
        assert response.status_code == 404
        assert "页面不存在" in response.get_data(as_text=True)


def test_server_error_page_is_chinese(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = client.get("/boom")
    assert response.status_code == 500
    assert "服务器开小差了" in response.get_data(as_text=True)


def test_shop_pages_use_only_vendored_assets(client):
    make_product()
    page = client.get("/").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assert client.get("/static/css/shop.css").status_code == 200
    assert client.get("/static/js/htmx.min.js").status_code == 200


def test_shop_pages_set_no_session_cookie(client):
    product = make_product()
    for url in ("/", f"/p/{product.id}", "/search?q=x"):
        assert "Set-Cookie" not in client.get(url).headers


def test_cards_follow_the_product_price_and_stock_rules(app, client):
    now = utcnow()
    products = [
        make_product(stock=0),
        make_product(stock=3),
        make_product(stock=3, low_stock_threshold=2),
        make_product(stock=0, stock_mode=StockMode.UNLIMITED),
        make_product(market_price=Decimal("12.00")),
        make_product(promo_price=Decimal("8.00"), promo_start=now - timedelta(hours=1)),
        make_product(promo_price=Decimal("8.00"), promo_start=now + timedelta(hours=1)),
        make_product(promo_price=Decimal("8.00"), promo_end=now - timedelta(hours=1)),
    ]
    threshold = app.config["LOW_STOCK_THRESHOLD"]
    listed = catalog.listed_products(db.session, default_threshold=threshold, sort="sales").items
    cards = {item.id: item for item in listed}
    for p in products:
        expected_was = p.sale_price if p.promo_active() else (p.market_price if p.market_price and p.market_price > p.sale_price else None)
        assert (cards[p.id].price, cards[p.id].was_price) == (p.current_price(), expected_was)
        assert cards[p.id].stock_state is p.stock_state(threshold)
        assert catalog.shop_item(p, threshold) == cards[p.id]


def test_sort_and_page_links_keep_the_search(app, client):
    app.config["SHOP_PAGE_SIZE"] = 1
    make_product(name="Q币 10元", sales_count=5)
    make_product(name="Q币 30元", sales_count=1)
    page = client.get("/search?q=Q币&sort=sales").get_data(as_text=True)
    assert "（2）" in page and "第 1 / 2 页" in page
    assert 'href="?q=Q%E5%B8%81&amp;sort=sales&amp;page=2"' in page
    assert 'href="?q=Q%E5%B8%81&amp;sort=price_asc"' in page
    assert page.index("Q币 10元") > 0 and "Q币 30元" not in page


def test_category_tree_is_reused_until_the_admin_changes_a_category(client, shop_caching):
    make_category("游戏点卡")
    assert "游戏点卡" in client.get("/").get_data(as_text=True)
    make_category("话费充值")  # behind the cache's back: shown once the tree expires
    assert "话费充值" not in client.get("/").get_data(as_text=True)
    categories.save(db.session, None, name="视频会员", parent_id=None, sort_order=0, is_visible=True)
    page = client.get("/").get_data(as_text=True)
    assert "话费充值" in page and "视频会员" in page


def test_views_are_counted_in_memory_and_written_together(client, shop_caching):
    first, second = make_product(), make_product()
    updated_at = first.updated_at
    for product in (first, first, second):
        assert client.get(f"/p/{product.id}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Product, first.id).view_count == 0
    catalog.write_views(db.session)
    db.session.expire_all()
    assert db.session.get(Product, first.id).view_count == 2
    assert db.session.get(Product, second.id).view_count == 1
    assert db.session.get(Product, first.id).updated_at == updated_at
