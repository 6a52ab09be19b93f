import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Category, Product, StockMode
from kamen.services import card_codes


def test_seed_demo_is_idempotent_and_realistic(runner, client):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0 and "30" in result.output
    runner.invoke(args=["seed-demo"])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 30
    roots = db.session.scalars(sa.select(Category.name).where(Category.parent_id.is_(None))).all()
    assert {"游戏点卡", "话费充值", "视频会员"} <= set(roots)
    products = db.session.scalars(sa.select(Product)).all()
    assert all(p.sale_price >= p.cost_price for p in products)
    assert any(p.promo_active() for p in products)
    # Card-code goods come with as many (demo) codes as their stock, after both runs.
    cards = [p for p in products if p.stock_mode is StockMode.CARDS]
    assert cards and sum(p.stock for p in cards) > 0
    for product in cards:
        assert product.stock == card_codes.status_counts(db.session, product.id)[card_codes.AVAILABLE]
    page = client.get("/").get_data(as_text=True)
    assert "站长推荐" in page and "腾讯Q币" in page


def test_seed_demo_if_empty_skips_a_shop_with_goods(runner):
    runner.invoke(args=["seed-demo"])
    db.session.execute(sa.update(Product).values(name="改过的名字"))
    db.session.commit()
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert "跳过" in result.output
    assert db.session.scalar(sa.select(Product.name).limit(1)) == "改过的名字"


def test_dashboard_counts_and_schedule_notice(runner, auth):
    runner.invoke(args=["seed-demo"])
    auth.login()
    page = auth.client.get("/admin/").get_data(as_text=True)
    listed = db.session.scalar(sa.select(sa.func.count()).select_from(Product).where(Product.is_listed.is_(True)))
    assert f"<strong>{listed}</strong>已上架" in page
    assert "定时任务未开启" in page


def test_demo_card_goods_have_codes_to_sell(runner):
    from kamen.models import CardCode, StockMode

    runner.invoke(args=["seed-demo"])
    runner.invoke(args=["seed-demo"])  # twice: no extra codes
    cards = db.session.scalars(sa.select(Product).where(Product.stock_mode == StockMode.CARDS)).all()
    assert len(cards) == 8
    for product in cards:
        available = db.session.scalar(sa.select(sa.func.count()).select_from(CardCode).where(
            CardCode.product_id == product.id, CardCode.status == "available"))
        assert product.stock == available
    assert {p.code: p.stock for p in cards}["WY50"] == 120
