import hashlib
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from kamen.suppliers.acgfaka import form_pairs, sign
from kamen.suppliers.base import AuthFailed, Delivery, Level, OutOfStock, ProductUnavailable
from tests.suppliers.simulator import MISSING, SimError

KEY = "0123456789ABCDEF"
PARAMS = {
    "shared_code": "A1B2",
    "num": 0,  # "0" is signed, only exactly "" is dropped
    "race": "",
    "app_id": "1001",
    "app_key": KEY,
    "sku": {"颜色": "红+蓝", "size": "L"},
}


def test_sign_matches_the_rule_computed_by_hand():
    plain = f"app_id=1001&app_key={KEY}&num=0&shared_code=A1B2&sku[颜色]=红+蓝&sku[size]=L&key={KEY}"
    assert sign(PARAMS, KEY) == hashlib.md5(plain.encode("utf-8")).hexdigest()


def test_sign_fixed_vector():
    assert sign({**PARAMS, "sign": "ignored"}, KEY) == "1a97997b6e5710fd1a4ea266bfed20e1"


def test_nested_fields_are_posted_as_php_arrays():
    assert form_pairs({"sku": {"a": 1}, "flag": True, "skip": None}) == [
        ("sku[a]", "1"), ("flag", "1")]


def test_posts_are_form_encoded_and_signed(acg, simulator):
    acg.test_connection()
    method, path, content_type, body = simulator.requests[-1]
    form = dict(parse_qsl(body.decode()))
    assert (method, path, content_type) == (
        "POST", "/shared/authentication/connect", "application/x-www-form-urlencoded")
    assert form["app_id"] == "1001" and form["app_key"] == KEY
    assert form["sign"] == form["sign"].lower() and len(form["sign"]) == 32


def test_connect(acg):
    info = acg.test_connection()
    assert (info.name, info.balance) == ("模拟主站", Decimal("1234.56"))
    assert acg.balance() == Decimal("1234.56")


def test_items_tree_is_flattened(acg, simulator):
    simulator.overrides = {"1003": {"stock": "7"}}
    page = acg.list_products()
    by_code = {p.code: p for p in page.items}
    assert page.rejected == [] and page.next_cursor is None
    assert by_code["1001"].category_path == ("游戏点卡",)
    assert by_code["1002"].category_path == ("话费充值",)
    card = by_code["1001"]
    assert card.cost_price == Decimal("9.50") and card.market_price == Decimal("10.00")
    assert (card.delivery, card.stock.level, card.stock.qty) == (Delivery.CARD, Level.IN, 100)
    assert by_code["1003"].stock.qty == 7  # stock sent as a string
    manual = by_code["1002"]
    assert manual.delivery == Delivery.TOPUP and manual.stock.level == Level.IN
    assert [f["name"] for f in manual.field_template] == ["game_account", "server"]  # sent back in trade
    assert manual.buyer_fields == [
        {"key": "game_account", "label": "游戏账号", "pattern": "^[A-Za-z0-9_]{4,20}$", "hint": "请输入游戏账号"},
        {"key": "server", "label": "区服", "pattern": "", "hint": "如 微信1区"},
    ]
    assert card.buyer_fields == []


@pytest.mark.parametrize("widget, reason", [("[{", "不是合法的 JSON"), ('[{"cn": "账号"}]', "name")])
def test_an_unreadable_widget_rejects_the_item(acg, simulator, widget, reason):
    simulator.overrides = {"1002": {"widget": widget}}
    page = acg.list_products()
    assert [r.code for r in page.rejected] == ["1002"] and reason in page.rejected[0].reason


def test_cost_is_what_the_main_station_charges_us_not_its_own_cost(acg, simulator):
    """docs/acg-faka.md "Which price is our cost": user_price; items.factory_price is the 主站's cost."""
    simulator.overrides = {"1001": {"price": Decimal("52.00"), "user_price": Decimal("48.50"),
                                    "factory_price": Decimal("40.00")}}
    product = {p.code: p for p in acg.list_products().items}["1001"]
    assert product.cost_price == Decimal("48.50")
    assert product.market_price == Decimal("52.00")


def test_prices_with_more_decimals_are_rounded_half_up(acg, simulator):
    simulator.overrides = {"1001": {"user_price": Decimal("9.505")}, "1003": {"user_price": "11.50499"}}
    by_code = {p.code: p for p in acg.list_products().items}
    assert (by_code["1001"].cost_price, by_code["1003"].cost_price) == (Decimal("9.51"), Decimal("11.50"))


def test_delisted_goods_are_not_listed(acg, simulator):
    simulator.products["1001"].on_sale = False
    assert "1001" not in {p.code for p in acg.list_products().items}


def test_bad_products_are_rejected(acg, simulator):
    simulator.overrides = {
        "1001": {"config": "[category]\n月卡=10\n周卡=5\n"},
        "1002": {"code": MISSING},
        "1003": {"stock": "很多"},
        "1004": {"user_price": Decimal("-3")},
    }
    page = acg.list_products()
    assert [p.code for p in page.items] == ["1003"]
    assert page.items[0].stock.level == Level.UNKNOWN
    reasons = sorted(r.reason for r in page.rejected)
    assert any("负数" in r for r in reasons)
    assert any("code" in r for r in reasons)
    assert any("多规格" in r for r in reasons)


@pytest.mark.parametrize("bad", [Decimal("-0.01"), Decimal("1000001"), "abc", None])
def test_an_absurd_price_rejects_that_item_only(acg, simulator, bad):
    simulator.overrides = {"1003": {"user_price": bad}}
    page = acg.list_products()
    assert sorted(p.code for p in page.items) == ["1001", "1002", "1004"]
    assert [r.code for r in page.rejected] == ["1003"] and "user_price" in page.rejected[0].reason


def test_inventory(acg, simulator):
    simulator.products["1001"].stock = 0
    simulator.products["1003"].on_sale = False
    levels = acg.get_stock(["1001", "1002", "1003", "nope"])
    assert levels["1001"].level == Level.OUT and levels["1001"].qty == 0
    assert levels["1002"].level == Level.IN  # fulfilled by hand: nothing to count
    assert levels["1003"].level == Level.OUT
    assert levels["nope"].level == Level.OUT


@pytest.mark.parametrize("message, error", [
    ("库存不足", OutOfStock),
    ("当前商品已停售", ProductUnavailable),
    ("商户ID不存在", AuthFailed),
])
def test_errors_are_classified(acg, simulator, message, error):
    simulator.error = SimError(message)
    with pytest.raises(error, match=message):
        acg.list_products()


def test_wrong_key_is_auth_failed(acg):
    acg.app_key = "FFFFFFFFFFFFFFFF"
    with pytest.raises(AuthFailed, match="密钥错误"):
        acg.test_connection()


def test_documented_signature_examples():
    """docs/acg-faka.md "Worked example", as fixed vectors."""
    assert sign({"app_id": "1001", "app_key": KEY, "sharedCode": "A1B2C3", "race": ""}, KEY) == (
        "cb4d41df694d22db1f0b8429ee087d3d")
    trade = {"app_id": "1001", "app_key": KEY, "shared_code": "A1B2C3", "num": 1, "contact": "buyer@example.com",
             "game_account": "player_01", "sku": {"颜色": "红"}}
    assert sign(trade, KEY) == "5033480e28e7bce909632ac64418cf8a"
