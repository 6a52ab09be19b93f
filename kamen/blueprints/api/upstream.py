"""kamen's upstream API (/api/upstream/v1): other kamens (分站) sync from this shop.

Protocol, signing and error codes: kamen/suppliers/kamen_upstream.py and
kamen_signing.py; docs/upstream-api.md has a worked example.
"""
from flask import g, jsonify, request

from kamen.blueprints.api import bp
from kamen.services.settings import low_stock_threshold
from kamen.extensions import db
from kamen.services import station_orders, stations
from kamen.services.station_orders import StationOrderRefused, StationOrderRequest
from kamen.suppliers.kamen_signing import VerificationError, request_target, verify
from kamen.suppliers.kamen_upstream import MAX_PAGE_SIZE, MAX_STOCK_CODES, error_body
from kamen.suppliers.parsing import BadValue, utc_datetime

PREFIX = "/api/upstream/v1"


def _error(status, code, message):
    return jsonify(error_body(code, message)), status


@bp.before_request
def _authenticate():
    if not request.path.startswith(PREFIX):
        return None
    found = {}

    def secret_for(app_id):
        found["station"] = stations.station_by_app_id(db.session, app_id)
        return stations.secret_of(found["station"])

    try:
        verify(
            request.headers,
            request.method,
            request_target(request),
            request.get_data(),
            secret_for,
            lambda app_id, nonce: stations.nonce_seen(db.session, app_id, nonce),
        )
    except VerificationError as exc:
        return _error(401, exc.code, exc.message)
    station = found["station"]
    if not station.is_active:
        return _error(403, "station_disabled", "分站已停用，请联系主站")
    stations.touch(db.session, station)
    g.station = station
    return None


@bp.get(f"{PREFIX}/products")
def products():
    args = request.args
    try:
        limit = int(args.get("limit") or 200)
        cursor = int(args["cursor"]) if args.get("cursor") else None
        updated_after = utc_datetime(args["updated_after"]) if args.get("updated_after") else None
    except (ValueError, BadValue):
        return _error(400, "bad_request", "参数错误：limit/cursor 应为整数，updated_after 应为 ISO 8601 时间")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        return _error(400, "bad_request", f"limit 应在 1-{MAX_PAGE_SIZE} 之间")
    items, next_cursor = stations.catalog_page(
        db.session, g.station, cursor=cursor, limit=limit, updated_after=updated_after,
        default_threshold=low_stock_threshold(db.session),
    )
    return jsonify({"items": items, "next_cursor": next_cursor})


@bp.post(f"{PREFIX}/stock")
def stock():
    body = request.get_json(silent=True)
    codes = body.get("codes") if isinstance(body, dict) else None
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        return _error(400, "bad_request", "请求体应为 {\"codes\": [商品编码…]}")
    if len(codes) > MAX_STOCK_CODES:
        return _error(400, "bad_request", f"一次最多查询 {MAX_STOCK_CODES} 个商品")
    return jsonify({"levels": stations.stock_levels(db.session, codes, low_stock_threshold(db.session))})


@bp.get(f"{PREFIX}/balance")
def balance():
    return jsonify({"balance": str(g.station.balance), "station": g.station.name})


@bp.post(f"{PREFIX}/orders")
def create_order():
    """Idempotent on the station's order number: 201 for a new order, 200 with the first one for a repeat."""
    try:
        req = StationOrderRequest.from_json(request.get_json(silent=True))
        placed = station_orders.place(db.session, g.station, req, request.remote_addr)
    except StationOrderRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return jsonify(station_orders.order_json(db.session, placed.order)), 201 if placed.created else 200


@bp.get(f"{PREFIX}/orders/<order_no>")
def order(order_no):
    found = station_orders.find(db.session, g.station.id, order_no[:64])
    if found is None:
        return _error(404, "not_found", f"没有分站订单号为 {order_no[:64]} 的订单")
    return jsonify(station_orders.order_json(db.session, found))
