"""The upstream API as a 分站 sees it: signed requests, refusals, pages."""
import json
import time

import pytest

from kamen.extensions import db
from kamen.models import Product
from kamen.services import stations
from kamen.suppliers.kamen_signing import sign_headers, signature
from tests.upstream_helpers import make_station


def test_documented_signature_example():
    """docs/upstream-api.md's worked example, as a fixed vector."""
    assert signature(
        "s3cret-from-the-main-station", "GET",
        "/api/upstream/v1/products?limit=2&updated_after=2026-11-25T02%3A00%3A00Z",
        "1764036000", "n0nce-4f2a9c1b", b"",
    ) == "aafecdc6d219419b3e2a3977c52ef9c9f91e34d99066c92e2fe40f69e271b591"
    assert signature(
        "s3cret-from-the-main-station", "POST", "/api/upstream/v1/stock", "1764036000", "n0nce-77aa01",
        b'{"codes":["self.QB10"]}',
    ) == "cc9ab0fc4318151a55130ae5e7a93c2e2fb6e98c7a9a3941b147ac01c817e0bb"


@pytest.fixture
def station(app):
    return make_station()


def _get(client, station, target, **kwargs):
    headers = sign_headers(station["app_id"], station["secret"], "GET", target, **kwargs)
    return client.get(target, headers=headers)


def test_products_are_paged_and_priced_for_the_station(client, station):
    first = _get(client, station, "/api/upstream/v1/products?limit=20")
    assert first.status_code == 200
    body = first.get_json()
    assert len(body["items"]) == 20 and body["next_cursor"]
    second = _get(client, station, f"/api/upstream/v1/products?limit=20&cursor={body['next_cursor']}").get_json()
    assert len(second["items"]) == 10 and second["next_cursor"] is None
    qb10 = next(i for i in body["items"] + second["items"] if i["code"] == "self.QB10")
    # cost 9.60 × 1.05 + 0.10 = 10.18
    assert qb10["price"] == "10.18" and qb10["stock"] == {"level": "IN", "qty": None}
    assert qb10["category"] == ["游戏点卡", "腾讯游戏"]
    assert qb10["fields"] == [{"name": "account", "label": "QQ号", "required": True,
                               "pattern": r"^[1-9]\d{4,11}$", "hint": "5-12 位数字"}]


def test_incremental_page_includes_delistings(client, station):
    since = max(p.updated_at for p in db.session.query(Product)).isoformat() + "Z"
    product = db.session.query(Product).filter_by(code="WY50").one()
    product.is_listed = False
    db.session.commit()
    body = _get(client, station, f"/api/upstream/v1/products?updated_after={since}").get_json()
    assert [(i["code"], i["available"]) for i in body["items"]] == [("self.WY50", False)]


def test_stock_and_balance(client, station):
    body = json.dumps({"codes": ["self.WY100", "self.STEAM-100", "nope"]}).encode()
    headers = sign_headers(station["app_id"], station["secret"], "POST", "/api/upstream/v1/stock", body)
    levels = client.post("/api/upstream/v1/stock", data=body, headers=headers, csrf=False,
                         content_type="application/json").get_json()["levels"]
    assert levels == {"self.WY100": {"level": "LOW", "qty": 3}, "self.STEAM-100": {"level": "OUT", "qty": 0},
                      "nope": {"level": "OUT", "qty": 0}}
    assert _get(client, station, "/api/upstream/v1/balance").get_json() == {"balance": "0.00", "station": "分站"}


def test_refusals(client, station, app):
    target = "/api/upstream/v1/balance"
    assert client.get(target).get_json()["error"]["code"] == "missing_header"
    bad = sign_headers(station["app_id"], "wrong", "GET", target)
    response = client.get(target, headers=bad)
    assert response.status_code == 401 and response.get_json()["error"]["message"] == "签名错误，请检查 AppID 和密钥"
    old = _get(client, station, target, timestamp=int(time.time()) - 301)
    assert old.get_json()["error"]["code"] == "expired"
    headers = sign_headers(station["app_id"], station["secret"], "GET", target, nonce="same-nonce-1")
    assert client.get(target, headers=headers).status_code == 200
    replay = client.get(target, headers=headers)
    assert replay.status_code == 401 and replay.get_json()["error"]["code"] == "nonce_reused"
    row = stations.station_by_app_id(db.session, station["app_id"])
    row.is_active = False
    db.session.commit()
    disabled = _get(client, station, target)
    assert disabled.status_code == 403 and disabled.get_json()["error"]["code"] == "station_disabled"
    assert _get(client, station, "/api/upstream/v1/products?limit=0").status_code == 403
    unknown = sign_headers("ks-nobody", "x", "GET", target)
    assert client.get(target, headers=unknown).get_json()["error"]["code"] == "unknown_app"


@pytest.mark.parametrize("timestamp", ["²", "１７６４０３６０００", "1e9", "-5", "9" * 40, " 1764036000"])
def test_a_malformed_timestamp_is_refused_with_401(client, station, timestamp):
    target = "/api/upstream/v1/balance"
    headers = {**sign_headers(station["app_id"], station["secret"], "GET", target), "X-Kamen-Timestamp": timestamp}
    response = client.get(target, headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "bad_timestamp"
