"""Merchandising (issue 14): 推荐位, 置顶 by margin, and the dashboard's sales analysis."""
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Order, Product, StockMode
from kamen.services import merchandising
from kamen.timeutil import utcnow
from tests.helpers import make_category, make_product
from tests.order_helpers import buy_form, make_card_product, make_channel, notify_params


def bulk(client, action, products):
    return client.post("/admin/products/bulk", data={"action": action, "ids": [str(p.id) for p in products]})


def test_featured_list_is_picked_ordered_and_shown_on_the_home_page(auth, client):
    auth.login()
    a, b, c = (make_product(name=n) for n in ("爱奇艺月卡", "腾讯Q币", "网易一卡通"))
    bulk(client, "feature", [b, a])
    bulk(client, "feature", [c, a])  # a is already on the list: it keeps its place
    page = client.get("/admin/featured").get_data(as_text=True)
    assert page.index("爱奇艺月卡") < page.index("腾讯Q币") < page.index("网易一卡通")
    client.post(f"/admin/featured/{c.id}/move", data={"direction": "up"})
    client.post(f"/admin/featured/{a.id}/remove")
    home = client.get("/").get_data(as_text=True)
    recommended = home.split("站长推荐")[1].split("热销商品")[0]
    assert recommended.index("网易一卡通") < recommended.index("腾讯Q币") and "爱奇艺月卡" not in recommended
    assert [p.featured_rank for p in merchandising.featured(db.session)] == [1, 2]


def test_featured_list_has_a_limit(auth, client):
    auth.login()
    products = [make_product() for _ in range(merchandising.FEATURED_MAX + 1)]
    response = bulk(client, "feature", products)
    assert "推荐位最多 24 个商品" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert merchandising.featured(db.session) == []


def test_pin_and_sort_by_margin_sales_views_and_stock(auth, client):
    auth.login()
    thin = make_product(name="薄利商品", sale_price=Decimal("10.10"), cost_price=Decimal("10.00"), sales_count=90,
                        view_count=5, stock=3)
    fat = make_product(name="厚利商品", sale_price=Decimal("30.00"), cost_price=Decimal("20.00"), sales_count=1,
                       view_count=500, stock=80)
    gone = make_product(name="缺货高利", sale_price=Decimal("99.00"), cost_price=Decimal("10.00"), stock=0)
    unlimited = make_product(name="直充中利", sale_price=Decimal("15.00"), cost_price=Decimal("10.00"),
                             stock_mode=StockMode.UNLIMITED, stock=0)
    listing = client.get("/admin/products", query_string={"sort": "margin"}).get_data(as_text=True)
    assert listing.index("缺货高利") < listing.index("厚利商品") < listing.index("直充中利") < listing.index("薄利商品")
    assert "¥10.00" in listing and "¥0.10" in listing  # the margin column
    for sort, first, last in (("sales", "薄利商品", "缺货高利"), ("views", "厚利商品", "缺货高利"), ("stock", "缺货高利", "厚利商品")):
        listing = client.get("/admin/products", query_string={"sort": sort}).get_data(as_text=True)
        assert listing.index(first) < listing.index(last), sort

    response = client.post("/admin/products/pin-top-margin", data={"count": "2"})
    assert "已置顶毛利最高的 2 个在售商品" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert {p.name for p in db.session.scalars(sa.select(Product).where(Product.is_pinned))} == {"厚利商品", "直充中利"}
    assert not db.session.get(Product, gone.id).is_pinned  # sold out: pinning it would send buyers to a dead end

    bulk(client, "unpin", [fat])
    bulk(client, "pin", [thin])
    db.session.expire_all()
    assert [db.session.get(Product, p.id).is_pinned for p in (thin, fat, unlimited)] == [True, False, True]
    response = client.post("/admin/products/pin-top-margin", data={"count": "abc"})
    assert "请填写要置顶的商品数量" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_pinned_goods_come_first_in_their_category(client):
    games = make_category("游戏点卡")
    make_product(games, name="普通商品", sales_count=100)
    make_product(games, name="置顶商品", is_pinned=True)
    page = client.get(f"/c/{games.id}").get_data(as_text=True)
    assert page.index("置顶商品") < page.index("普通商品")


def _sell(client, product, days_ago=0):
    channel = make_channel()
    assert client.post(f"/p/{product.id}/buy", data=buy_form()).status_code == 302
    order = db.session.scalars(sa.select(Order).order_by(Order.id.desc())).first()
    client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, str(order.amount)))
    if days_ago:
        db.session.execute(sa.update(Order).where(Order.id == order.id)
                           .values(paid_at=utcnow() - timedelta(days=days_ago)))
        db.session.commit()
    return order


def test_dashboard_shows_margin_by_category_slow_sellers_and_sold_out_losses(auth, client):
    long_ago = utcnow() - timedelta(days=120)
    games = make_category("游戏点卡")
    tencent = make_category("腾讯", parent=games)
    phone = make_category("话费充值")
    qb = make_card_product(codes=5, category_id=tencent.id, name="腾讯Q币 10元", sale_price=Decimal("10.50"),
                           cost_price=Decimal("9.60"), created_at=long_ago)
    yd = make_card_product(codes=5, category_id=phone.id, name="移动话费 50元", sale_price=Decimal("49.50"),
                           cost_price=Decimal("49.00"), created_at=long_ago)
    old = make_card_product(codes=5, category_id=phone.id, name="联通话费 30元", created_at=long_ago)
    never = make_product(phone, name="电信话费 100元", created_at=long_ago)
    make_product(phone, name="新上架的商品")  # listed this week: not slow, just new
    _sell(client, qb)
    _sell(client, qb)
    _sell(client, yd)
    _sell(client, old, days_ago=45)
    sold_out = make_product(games, name="和平精英 60点券", stock=0)
    for _ in range(3):
        client.get(f"/p/{sold_out.id}")

    report = merchandising.report(db.session, days=30)
    assert [(c.name, c.orders, c.margin) for c in report.by_category] == [
        ("游戏点卡", 2, Decimal("1.80")), ("话费充值", 1, Decimal("0.50"))]
    slow = [(p.name, last is not None) for p, last in report.slow]
    assert slow == [("电信话费 100元", False), ("联通话费 30元", True)]
    assert [(p.name, p.out_of_stock_views) for p in report.sold_out_losses] == [("和平精英 60点券", 3)]

    auth.login()
    page = client.get("/admin/").get_data(as_text=True)
    section = page.split('id="merch"')[1].split("</section>")[0]
    assert "¥1.80" in section and "从未卖出" in section and "电信话费 100元" in section and "和平精英 60点券" in section
    assert never.name in section and "新上架的商品" not in section
    # Over 90 days the 45-day-old sale counts: 联通 is no longer slow.
    page = client.get("/admin/", query_string={"days": "90"}).get_data(as_text=True)
    slow_section = page.split('id="merch"')[1].split("滞销商品")[1].split("缺货损失")[0]
    assert "联通话费 30元" not in slow_section and "电信话费 100元" in slow_section


def test_the_admin_list_finds_goods_by_pinyin_too(auth, client):
    auth.login()
    make_product(name="爱奇艺黄金会员 月卡")
    make_product(name="腾讯视频 月卡")
    listing = client.get("/admin/products", query_string={"q": "aqy yk"}).get_data(as_text=True)
    assert "爱奇艺黄金会员 月卡" in listing and "腾讯视频" not in listing
