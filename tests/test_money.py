from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from kamen import create_app
from kamen.extensions import db
from kamen.models import DownstreamStation, Product, Supplier
from kamen.money import MoneyError, format_money, parse_money
from kamen.services import stations
from kamen.services.pricing import Markup
from kamen.services.suppliers import default_supplier
from tests.helpers import make_product, make_products


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10", "10.00"),
        ("¥1,234.5", "1234.50"),
        ("１２.３元", "12.30"),
        (" 0.99 ", "0.99"),
        ("￥.5", "0.50"),
    ],
)
def test_parse_money_accepts_what_admins_type(text, expected):
    assert parse_money(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "售价格式错误"),
        ("1.234", "售价最多两位小数"),
        ("-1", "售价不能为负数"),
        ("", "售价不能为空"),
        ("1e5", "售价格式错误"),
        ("NaN", "售价格式错误"),
    ],
)
def test_parse_money_rejects_with_chinese_reason(text, message):
    with pytest.raises(MoneyError, match=message):
        parse_money(text, field="售价")


def test_format_money():
    assert format_money(Decimal("1234.5")) == "1,234.50"
    assert format_money(None) == ""


def test_markup_rounds_and_never_goes_below_cost():
    assert Markup(percent=Decimal("3")).apply(Decimal("9.60")) == Decimal("9.89")
    assert Markup(percent=Decimal("3"), step=Decimal("0.1")).apply(Decimal("9.60")) == Decimal("9.9")
    assert Markup(fixed=Decimal("0.5")).apply(Decimal("10.00")) == Decimal("10.50")
    # Rounding 9.97 to a 0.1 step would give 10.0 (fine) but 9.94 would round to 9.9: below cost.
    assert Markup(step=Decimal("0.1")).apply(Decimal("9.94")) == Decimal("10.0")


# -- exact money in the database (both backends) ------------------------------


def test_station_balance_topped_up_0_70_then_0_10_pays_a_0_80_debit(app, auth):
    station, _secret = stations.create_station(db.session, "分站甲", Decimal("0"), Decimal("0"))
    auth.login()
    url = f"/admin/stations/{station.id}/top-up"
    auth.client.post(url, data={"amount": "0.70"})
    auth.client.post(url, data={"amount": "0.10"})
    page = auth.client.get(f"/admin/stations/{station.id}").get_data(as_text=True)
    assert "0.7999" not in page
    response = auth.client.post(url, data={"amount": "-0.80"}, follow_redirects=True)
    assert "当前余额 ¥0.00" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DownstreamStation, station.id).balance == Decimal("0.00")
    # One cent more is refused, in SQL (the WHERE balance + amount >= 0).
    with pytest.raises(stations.StationInvalid, match="余额不能为负数"):
        stations.top_up(db.session, db.session.get(DownstreamStation, station.id), "-0.01")


def test_sql_sums_and_compares_cents_exactly(app):
    make_products(1000, cost_price=Decimal("0.01"), sale_price=Decimal("0.10"))
    make_product(cost_price=Decimal("0.70"), sale_price=Decimal("0.80"))
    total = db.session.scalar(sa.select(sa.func.sum(Product.sale_price)))
    assert total == Decimal("100.80") and str(total) == "100.80"
    assert db.session.scalar(sa.select(sa.func.sum(Product.cost_price * Product.stock))) == Decimal("1070.00")
    # 0.70 + 0.10 compared with 0.80 in SQL, and equality with a literal.
    assert db.session.scalar(
        sa.select(sa.func.count()).where(Product.cost_price + Decimal("0.10") == Product.sale_price)
    ) == 1
    assert db.session.scalar(sa.select(sa.func.count()).where(Product.sale_price == Decimal("0.1"))) == 1000
    assert db.session.scalar(sa.select(sa.func.count()).where(Product.sale_price >= Decimal("0.80"))) == 1
    margins = db.session.scalars(sa.select(Product.sale_price - Product.cost_price).distinct()).all()
    assert sorted(margins) == [Decimal("0.09"), Decimal("0.10")]


def test_percent_and_step_columns_round_trip_exactly(app):
    supplier = default_supplier(db.session)
    supplier.markup_percent, supplier.markup_step = Decimal("12.35"), Decimal("0.10")
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalar(sa.select(Supplier.markup_percent).where(Supplier.id == supplier.id)) == Decimal("12.35")
    assert db.session.scalar(
        sa.select(sa.func.count()).where(Supplier.markup_step == Decimal("0.1"), Supplier.id == supplier.id)
    ) == 1


@pytest.mark.backends("sqlite")
def test_sqlite_stores_money_as_integer_cents(app):
    product = make_product(sale_price=Decimal("0.80"))
    stored = db.session.execute(sa.text("SELECT sale_price, typeof(sale_price) FROM products WHERE id = :id"),
                                {"id": product.id}).one()
    assert tuple(stored) == (80, "integer")


def test_migration_converts_float_money_already_on_sqlite(tmp_path):
    """A SQLite file written before money was exact: floats become the nearest cent."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}", "SECRET_KEY": "x",
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade(revision="0004")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO suppliers (id, code, name, kind, is_active, base_url, app_id, "
                                 "secret_encrypted, markup_percent, markup_fixed, markup_step, min_margin, auto_list, "
                                 "category_map, auto_delist_at_zero, recheck_hours, failure_streak, created_at) "
                                 "VALUES (1, 's', 's', 'manual', 1, '', '', '', 5.5, 0.3, 0.1, 0, 0, '{}', 1, 8, 0, "
                                 "'2026-01-01')"))
            conn.execute(sa.text("INSERT INTO downstream_stations (id, name, app_id, secret_encrypted, markup_percent,"
                                 " markup_fixed, balance, is_active, created_at) VALUES (1, 'a', 'a', '', 2, 0, "
                                 "0.7 + 0.1, 1, '2026-01-01')"))
        upgrade()
        station = db.session.get(DownstreamStation, 1)
        assert station.balance == Decimal("0.80")
        supplier = db.session.get(Supplier, 1)
        assert (supplier.markup_percent, supplier.markup_fixed, supplier.markup_step) == (
            Decimal("5.50"), Decimal("0.30"), Decimal("0.10"))
        assert stations.top_up(db.session, station, "-0.80") == Decimal("0.00")
        # Migrations run with foreign keys off; the connection goes back to the app with them on.
        assert db.session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        db.engine.dispose()


def test_sql_multiplies_money_by_plain_numbers(app):
    product = make_product(cost_price=Decimal("9.50"), sale_price=Decimal("10.01"), stock=3)
    row = db.session.execute(
        sa.select(Product.sale_price * 3, Product.sale_price * Product.stock).where(Product.id == product.id)
    ).one()
    assert tuple(row) == (Decimal("30.03"), Decimal("30.03"))
    # What SQLite could not do exactly fails loudly on both backends.
    for inexact in (lambda: Product.cost_price * Decimal("1.5"), lambda: Product.cost_price / 2):
        with pytest.raises(TypeError, match="whole numbers"):
            inexact()
