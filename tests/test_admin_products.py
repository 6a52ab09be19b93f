from decimal import Decimal
import io

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Product, StockMode
from kamen.services import card_codes
from kamen.services.suppliers import default_supplier
from tests.helpers import form_values, make_category, make_product, make_products


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _reload(product):
    db.session.expire_all()
    return db.session.get(Product, product.id)


def test_list_filters_by_category_status_low_stock_and_search(admin):
    games = make_category("游戏点卡")
    phone = make_category("话费")
    make_product(games, name="王者荣耀点券", code="WZ60", stock=3)
    make_product(games, name="网易一卡通", is_listed=False)
    make_product(phone, name="移动话费 50元", code="YD50", stock=0)
    make_product(phone, name="电信话费 100元", stock=0, stock_mode=StockMode.UNLIMITED)

    def names(query):
        page = admin.get(f"/admin/products?{query}").get_data(as_text=True)
        return {n for n in ("王者荣耀点券", "网易一卡通", "移动话费 50元", "电信话费 100元") if n in page}

    assert names(f"category_id={games.id}") == {"王者荣耀点券", "网易一卡通"}
    assert names("listed=0") == {"网易一卡通"}
    assert names("low_stock=1") == {"王者荣耀点券", "移动话费 50元"}
    assert names("q=YD5") == {"移动话费 50元"}
    assert names("q=话费&sort=name") == {"移动话费 50元", "电信话费 100元"}


def test_list_paginates(admin, app):
    app.config["ADMIN_PAGE_SIZE"] = 10
    make_products(25, name="批量商品")
    page3 = admin.get("/admin/products?page=3").get_data(as_text=True)
    assert "第 3 / 3 页" in page3
    assert page3.count('name="ids"') == 5


def test_inline_edit_saves_a_valid_price(admin):
    product = make_product(cost_price=Decimal("9.00"), sale_price=Decimal("10.00"))
    editor = admin.hx_get(f"/admin/products/{product.id}/cell/sale_price?edit=1")
    assert 'name="value"' in editor.get_data(as_text=True)
    response = admin.post(f"/admin/products/{product.id}/cell/sale_price", data={"value": "¥12.5"}, htmx=True)
    assert response.status_code == 200
    assert "¥12.50" in response.get_data(as_text=True)
    assert _reload(product).sale_price == Decimal("12.50")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sale_price", "abc", "售价格式错误"),
        ("sale_price", "-1", "售价不能为负数"),
        ("sale_price", "10.123", "售价最多两位小数"),
        ("sale_price", "8.00", "低于供货价"),
        ("promo_price", "11.00", "折扣价 ¥11.00 不能高于售价 ¥10.00"),
        ("stock", "-3", "库存不能为负数"),
        ("stock", "2.5", "库存必须是整数"),
        ("low_stock_threshold", "x", "预警阈值必须是整数"),
    ],
)
def test_inline_edit_rejects_bad_input_and_saves_nothing(admin, field, value, message):
    product = make_product(cost_price=Decimal("9.00"), sale_price=Decimal("10.00"), stock=7)
    before = {f: getattr(product, f) for f in ("sale_price", "promo_price", "stock", "low_stock_threshold")}
    response = admin.post(f"/admin/products/{product.id}/cell/{field}", data={"value": value}, htmx=True)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body
    assert f'value="{value}"' in body  # the admin's input is kept for correction
    fresh = _reload(product)
    assert {f: getattr(fresh, f) for f in before} == before


def test_inline_edit_clears_promo_and_threshold_with_empty_input(admin):
    product = make_product(promo_price=Decimal("9.50"), low_stock_threshold=3)
    assert admin.post(f"/admin/products/{product.id}/cell/promo_price", data={"value": ""}, htmx=True).status_code == 200
    response = admin.post(f"/admin/products/{product.id}/cell/low_stock_threshold", data={"value": ""}, htmx=True)
    assert "默认" in response.get_data(as_text=True)
    fresh = _reload(product)
    assert fresh.promo_price is None and fresh.low_stock_threshold is None


def test_inline_edit_refuses_stock_for_unlimited_products(admin):
    product = make_product(stock_mode=StockMode.UNLIMITED, stock=0)
    response = admin.post(f"/admin/products/{product.id}/cell/stock", data={"value": "5"}, htmx=True)
    assert response.status_code == 422 and "不限库存" in response.get_data(as_text=True)
    assert _reload(product).stock == 0


def test_inline_edit_without_htmx_falls_back_to_pages(admin):
    product = make_product()
    assert admin.get(f"/admin/products/{product.id}/cell/stock").status_code == 302
    response = admin.post(f"/admin/products/{product.id}/cell/stock", data={"value": "bad"}, follow_redirects=True)
    assert "库存必须是整数" in response.get_data(as_text=True)
    assert admin.get(f"/admin/products/{product.id}/cell/nope").status_code == 404


def test_toggle_listed(admin):
    product = make_product()
    response = admin.post(f"/admin/products/{product.id}/listed", data={"listed": "0"}, htmx=True)
    assert "已下架" in response.get_data(as_text=True)
    assert _reload(product).is_listed is False
    assert admin.get(f"/p/{product.id}").status_code == 404


def test_bulk_delist_list_and_move(admin):
    games = make_category("游戏点卡")
    products = make_products(3)
    ids = [str(p.id) for p in products[:2]]
    response = admin.post("/admin/products/bulk", data={"ids": ids, "action": "delist"}, follow_redirects=True)
    assert "已下架 2 个商品" in response.get_data(as_text=True)
    assert [_reload(p).is_listed for p in products] == [False, False, True]
    admin.post("/admin/products/bulk", data={"ids": ids, "action": "list"})
    assert all(_reload(p).is_listed for p in products)
    admin.post("/admin/products/bulk", data={"ids": ids, "action": "move", "category_id": str(games.id)})
    assert [_reload(p).category_id for p in products] == [games.id, games.id, None]


def test_bulk_markup_reprices_from_cost(admin):
    a = make_product(cost_price=Decimal("9.60"), sale_price=Decimal("20.00"))
    b = make_product(cost_price=Decimal("48.50"), sale_price=Decimal("60.00"))
    response = admin.post(
        "/admin/products/bulk",
        data={"ids": [str(a.id), str(b.id)], "action": "markup", "markup_percent": "3", "markup_fixed": "0.1"},
        follow_redirects=True,
    )
    assert "重新定价 2 个商品" in response.get_data(as_text=True)
    assert _reload(a).sale_price == Decimal("9.99")
    assert _reload(b).sale_price == Decimal("50.06")


def test_bulk_markup_is_all_or_nothing(admin):
    ok = make_product(cost_price=Decimal("10.00"), sale_price=Decimal("15.00"))
    clash = make_product(code="CLASH", cost_price=Decimal("10.00"), sale_price=Decimal("15.00"), promo_price=Decimal("14.00"))
    response = admin.post(
        "/admin/products/bulk",
        data={"ids": [str(ok.id), str(clash.id)], "action": "markup", "markup_percent": "10"},
        follow_redirects=True,
    )
    body = response.get_data(as_text=True)
    assert "未修改任何商品" in body and "CLASH" in body and "不能高于售价" in body
    assert _reload(ok).sale_price == Decimal("15.00")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"action": "delist"}, "请先勾选商品"),
        ({"ids": ["1"], "action": ""}, "请选择批量操作"),
        ({"ids": ["1"], "action": "markup", "markup_percent": "abc"}, "加价百分比格式错误"),
        ({"ids": ["1"], "action": "move", "category_id": "9999"}, "目标分类不存在"),
        ({"ids": ["x"], "action": "delist"}, "选择的商品无效"),
        ({"ids": ["1", "9999"], "action": "delist"}, "部分商品已不存在"),
    ],
)
def test_bulk_bad_input_is_explained(admin, data, message):
    make_product()
    response = admin.post("/admin/products/bulk", data=data, follow_redirects=True)
    assert message in response.get_data(as_text=True)


FORM = {
    "code": "NEW-1",
    "name": "新商品 腾讯视频月卡",
    "category_id": "0",
    "face_value": "30",
    "tier_label": "月卡",
    "cost_price": "18.00",
    "market_price": "30",
    "sale_price": "20.50",
    "promo_price": "",
    "promo_start": "",
    "promo_end": "",
    "stock_mode": "synced",
    "stock": "50",
    "low_stock_threshold": "",
    "delivery_type": "topup",
    "delivery_minutes": "5",
    "buyer_fields": "account|充值账号|^1\\d{10}$|11 位手机号",
    "description": "正规渠道",
    "is_listed": "y",
    "sort_weight": "0",
}


def _form(admin, **changes):
    data = {**FORM, "supplier_id": str(default_supplier(db.session).id), **changes}
    return admin.post("/admin/products/new", data=data)


def test_create_product_with_the_form(admin, client):
    response = _form(admin, promo_price="19.80", promo_start="2026-01-01T00:00", promo_end="2099-12-31T23:59")
    assert response.status_code == 302
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW-1"))
    assert product.sale_price == Decimal("20.50") and product.promo_price == Decimal("19.80")
    assert product.buyer_fields == [{"key": "account", "label": "充值账号", "pattern": "^1\\d{10}$", "hint": "11 位手机号"}]
    # Times are typed in shop time (UTC+8) and stored in UTC.
    assert product.promo_start.isoformat() == "2025-12-31T16:00:00"
    page = client.get(f"/p/{product.id}").get_data(as_text=True)
    assert "¥19.80" in page and "充值账号" in page
    edit = admin.get(f"/admin/products/{product.id}/edit").get_data(as_text=True)
    assert 'value="2026-01-01T00:00"' in edit


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sale_price": "1,0.1.1"}, "售价格式错误"),
        ({"cost_price": ""}, "请输入供货价"),
        ({"stock": "-1"}, "库存不能为负数"),
        ({"promo_price": "25"}, "不能高于售价"),
        ({"promo_start": "2026-02-01T00:00", "promo_end": "2026-01-01T00:00", "promo_price": "19"}, "活动结束时间必须晚于开始时间"),
        ({"code": "有 空格"}, "商品编码只能包含"),
        ({"buyer_fields": "account|账号|[unclosed"}, "正则表达式无效"),
        ({"category_id": "424242"}, "分类选择无效"),
        ({"promo_end": "明天"}, "活动结束格式错误"),
    ],
)
def test_product_form_rejects_bad_input_and_saves_nothing(admin, changes, message):
    response = _form(admin, **changes)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 0


def test_product_form_refuses_duplicate_code(admin):
    assert _form(admin).status_code == 302
    response = _form(admin, name="另一个")
    assert response.status_code == 400
    assert "已有相同商品编码" in response.get_data(as_text=True)


def test_edit_product(admin):
    assert _form(admin).status_code == 302
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW-1"))
    data = {**FORM, "supplier_id": str(product.supplier_id), "name": "改名后", "stock": "7"}
    assert admin.post(f"/admin/products/{product.id}/edit", data=data).status_code == 302
    fresh = _reload(product)
    assert (fresh.name, fresh.stock) == ("改名后", 7)


def test_card_code_stock_is_not_typed_in(admin):
    product = make_product(stock_mode=StockMode.CARDS, stock=3)
    response = admin.post(f"/admin/products/{product.id}/cell/stock", data={"value": "50"}, htmx=True)
    assert response.status_code == 422 and "管理卡密" in response.get_data(as_text=True)
    assert _reload(product).stock == 3


def test_oversized_upload_gets_a_chinese_page(admin, app):
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    response = admin.post("/admin/imports/new", data={"file": (io.BytesIO(b"x" * (2 * 1024 * 1024)), "big.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 413 and "上传的内容太大" in response.get_data(as_text=True)


def test_quantity_limits_per_order_are_set_in_the_form(admin, client):
    refused = _form(admin, min_per_order="5", max_per_order="2")
    assert refused.status_code == 400 and "每单最少购买数不能大于每单最多购买数" in refused.get_data(as_text=True)
    assert _form(admin, min_per_order="2", max_per_order="3").status_code == 302
    product = db.session.scalar(sa.select(Product).filter_by(code="NEW-1"))
    assert (product.min_per_order, product.max_per_order) == (2, 3)
    assert 'min="2" max="3"' in client.get(f"/p/{product.id}").get_data(as_text=True)


def _edit_page(admin, product):
    response = admin.get(f"/admin/products/{product.id}/edit")
    assert response.status_code == 200
    return form_values(response.get_data(as_text=True))


def test_form_writes_only_what_the_admin_changed(admin):
    product = make_product(name="旧名字", stock=100, cost_price=Decimal("9.00"), sale_price=Decimal("10.00"))
    shown = _edit_page(admin, product)
    assert shown["stock"] == "100" and shown["name"] == "旧名字"
    # A sync writes stock and cost while the form is open.
    db.session.execute(sa.update(Product).where(Product.id == product.id)
                       .values(stock=37, cost_price=Decimal("9.50")))
    db.session.commit()
    response = admin.post(f"/admin/products/{product.id}/edit", data={**shown, "name": "新名字"})
    assert response.status_code == 302
    fresh = _reload(product)
    assert (fresh.name, fresh.stock, fresh.cost_price) == ("新名字", 37, Decimal("9.50"))
    # A field the admin did change wins.
    shown = _edit_page(admin, product)
    db.session.execute(sa.update(Product).where(Product.id == product.id).values(stock=5))
    db.session.commit()
    assert admin.post(f"/admin/products/{product.id}/edit", data={**shown, "stock": "60"}).status_code == 302
    assert _reload(product).stock == 60


def test_form_checks_prices_against_what_the_database_holds_now(admin):
    product = make_product(cost_price=Decimal("9.00"), sale_price=Decimal("10.00"))
    shown = _edit_page(admin, product)
    db.session.execute(sa.update(Product).where(Product.id == product.id).values(cost_price=Decimal("9.90")))
    db.session.commit()
    response = admin.post(f"/admin/products/{product.id}/edit", data={**shown, "promo_price": "9.50"})
    assert response.status_code == 400 and "折扣价 ¥9.50 低于供货价 ¥9.90" in response.get_data(as_text=True)
    assert _reload(product).promo_price is None


def test_card_code_stock_is_never_typed_in_the_form(admin):
    product = make_product(stock_mode=StockMode.CARDS, stock=0)
    card_codes.upload_text(db.session, product, "AAAA-1111\nBBBB-2222\n")
    shown = _edit_page(admin, product)
    assert shown["stock"] == "2"
    assert 'name="stock" readonly' in admin.get(f"/admin/products/{product.id}/edit").get_data(as_text=True)
    response = admin.post(f"/admin/products/{product.id}/edit", data={**shown, "stock": "50"})
    assert response.status_code == 400 and "管理卡密" in response.get_data(as_text=True)
    assert _reload(product).stock == 2
    # New card-code products start at their (zero) codes; typing stock is refused.
    response = _form(admin, stock_mode="cards", delivery_type="card", buyer_fields="")
    assert response.status_code == 400 and "管理卡密" in response.get_data(as_text=True)
    assert _form(admin, stock_mode="cards", delivery_type="card", buyer_fields="", stock="0").status_code == 302
    assert db.session.scalar(sa.select(Product.stock).filter_by(code="NEW-1")) == 0


def test_switching_to_card_codes_recounts_stock(admin):
    product = make_product(stock_mode=StockMode.CARDS, stock=0)
    card_codes.upload_text(db.session, product, "C-1\nC-2\nC-3\n")
    # Back to synced stock for a while: a sync sets 80.
    shown = _edit_page(admin, product)
    assert admin.post(f"/admin/products/{product.id}/edit", data={**shown, "stock_mode": "synced"}).status_code == 302
    db.session.execute(sa.update(Product).where(Product.id == product.id).values(stock=80))
    db.session.commit()
    shown = _edit_page(admin, product)
    assert admin.post(f"/admin/products/{product.id}/edit", data={**shown, "stock_mode": "cards"}).status_code == 302
    assert _reload(product).stock == 3


def test_form_enforces_the_suppliers_minimum_margin(admin):
    supplier = default_supplier(db.session)
    supplier.min_margin = Decimal("1.00")
    db.session.commit()
    response = _form(admin, cost_price="18.00", sale_price="18.50")
    assert response.status_code == 400
    assert "售价 ¥18.50 低于供货价 ¥18.00 加最低利润 ¥1.00" in response.get_data(as_text=True)
    response = _form(admin, cost_price="18.00", sale_price="20", promo_price="18.99")
    assert response.status_code == 400 and "折扣价 ¥18.99 低于" in response.get_data(as_text=True)
    assert _form(admin, cost_price="18.00", sale_price="20", promo_price="19").status_code == 302


def test_inline_and_bulk_enforce_the_minimum_margin(admin):
    supplier = default_supplier(db.session)
    supplier.min_margin = Decimal("0.50")
    db.session.commit()
    product = make_product(cost_price=Decimal("9.00"), sale_price=Decimal("10.00"))
    response = admin.post(f"/admin/products/{product.id}/cell/promo_price", data={"value": "9.40"}, htmx=True)
    assert response.status_code == 422 and "加最低利润 ¥0.50" in response.get_data(as_text=True)
    assert _reload(product).promo_price is None
    # A 1 % markup on 9.00 (9.09) is lifted to cost + margin.
    admin.post("/admin/products/bulk", data={"ids": [str(product.id)], "action": "markup", "markup_percent": "1"})
    assert _reload(product).sale_price == Decimal("9.50")


@pytest.mark.parametrize(
    "url_kind, data, message",
    [
        ("bulk", {"markup_percent": "1001"}, "加价百分比不能超过 1000%"),
        ("bulk", {"markup_percent": "5", "markup_fixed": "10001"}, "固定加价不能超过 10000 元"),
        ("supplier", {"markup_percent": "1001"}, "加价百分比不能超过 1000%"),
        ("station", {"markup_percent": "1001"}, "加价百分比不能超过 1000%"),
    ],
)
def test_markup_limits_are_the_same_everywhere(admin, url_kind, data, message):
    product = make_product()
    if url_kind == "bulk":
        response = admin.post("/admin/products/bulk", data={"ids": [str(product.id)], "action": "markup", **data},
                              follow_redirects=True)
    elif url_kind == "supplier":
        supplier = default_supplier(db.session)
        shown = form_values(admin.get(f"/admin/suppliers/{supplier.id}/edit").get_data(as_text=True))
        response = admin.post(f"/admin/suppliers/{supplier.id}/edit", data={**shown, **data})
    else:
        response = admin.post("/admin/stations", data={"name": "分站", "markup_fixed": "0", **data})
    assert message in response.get_data(as_text=True)
    assert _reload(product).sale_price == Decimal("10.00")


def test_list_links_card_code_stock_to_its_codes_instead_of_an_editor(admin):
    product = make_product(stock_mode=StockMode.CARDS, stock=0, name="卡密商品")
    page = admin.get("/admin/products").get_data(as_text=True)
    cell = page[page.index(f'id="cell-{product.id}-stock"'):]
    cell = cell[:cell.index("</td>")]
    assert f"/admin/products/{product.id}/card-codes" in cell and "hx-get" not in cell
