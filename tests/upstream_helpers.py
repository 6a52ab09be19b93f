"""A 分站 of this shop in tests: its key, its balance, and signed calls to /api/upstream/v1."""
import json
from dataclasses import dataclass
from decimal import Decimal

from kamen.extensions import db
from kamen.services import stations
from kamen.services.demo import seed_demo
from kamen.suppliers.kamen_signing import sign_headers


@dataclass
class StationKey:
    id: int
    app_id: str
    secret: str

    def __getitem__(self, name):  # station["app_id"], as the older tests read it
        return getattr(self, name)


def make_station(balance="0", markup_percent="5", markup_fixed="0.10", name="分站", seed=True):
    """The demo catalogue (when ``seed``) and one station: 分站价 = cost × (1 + 5%) + 0.10 by default."""
    if seed:
        seed_demo(db.session)
    row, secret = stations.create_station(db.session, name, Decimal(markup_percent), Decimal(markup_fixed))
    if Decimal(balance):
        stations.top_up(db.session, row, balance)
    return StationKey(row.id, row.app_id, secret)


def signed_call(client, station, method, target, payload=None, **sign_kwargs):
    """A request signed as the station signs it (``payload``: a JSON body)."""
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = sign_headers(station.app_id, station.secret, method, target, body, **sign_kwargs)
    if method == "GET":
        return client.get(target, headers=headers)
    return client.open(target, method=method, data=body, headers=headers, content_type="application/json")


def station_balance(station_id):
    from kamen.models import DownstreamStation

    db.session.expire_all()
    return db.session.get(DownstreamStation, station_id).balance
