"""A product's sources (货源) in the back office, the shop stock as their sum, and the sync
keeping each source's count."""
from decimal import Decimal

import pytest

from kamen.extensions import db
from kamen.models import Product, ProductSource, SupplierKind
from kamen.services import forwarding
from tests.forwarding_helpers import CARD_CODE, add_source, fulu_supplier, supplier_product  # noqa: F401
from tests.helpers import make_product
from tests.sync_fixtures import make_supplier, serving_simulator
from tests.test_syncing import sync

SECOND_CODE = "1003"


@pytest.fixture
def other():
    with serving_simulator() as sim:
        yield sim


@pytest.fixture
def pair(app, simulator, other, fulu_supplier):
    """Our product from the Fulu supplier, and a product of the same 面值 at another 主站 (acg-faka)."""
    acg = make_supplier(other, SupplierKind.ACGFAKA, code="other-acg", name="第二货源")
    product = supplier_product(fulu_supplier, simulator, face_value=Decimal("10.00"), stock=7)
    backup = supplier_product(acg, other, SECOND_CODE, face_value=Decimal("10.00"), stock=4, is_listed=False,
                              cost_price=Decimal("9.20"))
    return product, backup


def _product(product_id):
    db.session.expire_all()
    return db.session.get(Product, product_id)


def _codes(product):
    return [s.code for s in forwarding.sources_for(db.session, _product(product.id))]


def test_admin_adds_orders_and_removes_backup_sources(app, client, auth, pair):
    product, backup = pair
    odd = make_product(supplier_id=backup.supplier_id, code="9999", face_value=Decimal("50.00"))
    auth.login()
    page = client.get(f"/admin/products/{product.id}/sources")
    assert page.status_code == 200 and "第二货源" in page.text and f'value="{odd.id}"' not in page.text
    refused = client.post(f"/admin/products/{product.id}/sources", data={"source_id": str(odd.id)},
                          follow_redirects=True)
    assert "面值不同" in refused.text and _product(product.id).stock == 7
    client.post(f"/admin/products/{product.id}/sources", data={"source_id": str(backup.id)})
    assert _product(product.id).stock == 11 and _product(product.id).own_stock == 7  # 7 + 4
    assert _codes(product) == [CARD_CODE, SECOND_CODE]

    client.post(f"/admin/products/{product.id}/sources/order", data={"order": "cheapest"})
    assert _codes(product) == [SECOND_CODE, CARD_CODE]  # ¥9.20 before ¥9.50
    client.post(f"/admin/products/{product.id}/sources/order", data={"order": "priority"})
    row = db.session.query(ProductSource).filter_by(product_id=product.id).one()
    client.post(f"/admin/products/{product.id}/sources/{row.id}/remove")
    product = _product(product.id)
    assert (product.stock, product.own_stock) == (7, None) and _codes(product) == [CARD_CODE]
    missing = client.post(f"/admin/products/{product.id}/sources/{row.id}/remove", follow_redirects=True)
    assert "已不在列表中" in missing.text


def test_sources_known_to_be_out_are_tried_last(app, pair):
    product, backup = pair
    add_source(product, backup)
    db.session.get(Product, backup.id).stock = 0
    db.session.commit()
    assert _codes(product) == [CARD_CODE, SECOND_CODE]
    db.session.get(Product, backup.id).stock = 3
    db.session.get(Product, product.id).source_order = "cheapest"
    db.session.commit()
    assert _codes(product) == [SECOND_CODE, CARD_CODE]


def test_sync_keeps_each_sources_count_and_the_shop_stock_is_their_sum(app, client, auth, pair, simulator, other):
    product, backup = pair
    auth.login()
    client.post(f"/admin/products/{product.id}/sources", data={"source_id": str(backup.id)})
    other.products[SECOND_CODE].stock = 20
    assert sync(backup.supplier).status == "succeeded"
    assert _product(backup.id).stock == 20 and _product(product.id).stock == 7 + 20
    simulator.products[CARD_CODE].stock = 0  # Fulu gives a level: 断货
    assert sync(product.supplier).status == "succeeded"
    product = _product(product.id)
    assert (product.own_stock, product.stock, product.is_listed) == (0, 20, True)  # the backup still sells
    other.products[SECOND_CODE].stock = 0
    sync(backup.supplier)
    assert _product(product.id).stock == 0

