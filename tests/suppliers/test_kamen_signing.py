import hashlib
import hmac

import pytest
from flask import Flask

from kamen.suppliers.kamen_signing import (
    VerificationError,
    request_target,
    sign_headers,
    signature,
    string_to_sign,
    verify,
)

SECRET = "kamen-station-secret"
TS = 1714564800
NONCE = "abcdef0123456789"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_string_to_sign_layout():
    assert string_to_sign("get", "/api/upstream/v1/balance", TS, NONCE) == (
        f"GET\n/api/upstream/v1/balance\n{TS}\n{NONCE}\n{EMPTY_SHA256}")


def test_signature_matches_hmac_computed_by_hand():
    body = '{"codes": ["1001"]}'.encode()
    message = "\n".join(["POST", "/api/upstream/v1/stock", str(TS), NONCE, hashlib.sha256(body).hexdigest()])
    expected = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert signature(SECRET, "POST", "/api/upstream/v1/stock", TS, NONCE, body) == expected


def test_fixed_vectors():
    assert signature(SECRET, "GET", "/api/upstream/v1/products?cursor=1002&limit=2", TS, NONCE) == (
        "f106b16a1c40f92c9bcfc7621f15ea1b363124db0bafd6c4eec42ad7521280b7")
    assert signature(SECRET, "POST", "/api/upstream/v1/stock", TS, NONCE,
                     b'{"codes": ["1001", "1002"]}') == (
        "146022290005fead979dc604dfb359a59bc61ab726ca8d8c1ebcbfbf8b478ecc")


class Station:
    """The server side's two callbacks, with the nonces it has accepted."""

    def __init__(self):
        self.secrets = {"station-1": SECRET}
        self.nonces = set()

    def nonce_seen(self, app_id, nonce):
        seen = (app_id, nonce) in self.nonces
        self.nonces.add((app_id, nonce))
        return seen

    def verify(self, headers, method="POST", path="/api/upstream/v1/stock", body=b"{}", now=TS):
        return verify(headers, method, path, body, self.secrets.get, self.nonce_seen, now=now)


def signed(method="POST", path="/api/upstream/v1/stock", body=b"{}", **kwargs):
    kwargs.setdefault("timestamp", TS)
    kwargs.setdefault("nonce", NONCE)
    return sign_headers("station-1", SECRET, method, path, body, **kwargs)


def refused(station, headers, **kwargs):
    with pytest.raises(VerificationError) as caught:
        station.verify(headers, **kwargs)
    return caught.value.code


def test_verify_accepts_a_signed_request_with_any_header_case():
    headers = {k.lower(): v for k, v in signed().items()}
    assert Station().verify(headers) == "station-1"


@pytest.mark.parametrize("skew, ok", [(-300, True), (300, True), (-301, False), (301, False)])
def test_timestamp_window(skew, ok):
    station = Station()
    if ok:
        assert station.verify(signed(), now=TS + skew) == "station-1"
    else:
        assert refused(station, signed(), now=TS + skew) == "expired"


def test_reused_nonce_is_refused():
    station = Station()
    station.verify(signed())
    assert refused(station, signed()) == "nonce_reused"
    assert station.verify(signed(nonce="another-nonce-1")) == "station-1"


def test_forged_requests_do_not_use_up_nonces():
    station = Station()
    assert refused(station, signed(), body=b'{"codes": []}') == "bad_signature"
    assert station.nonces == set()
    assert station.verify(signed()) == "station-1"


@pytest.mark.parametrize("change", [
    {"method": "GET"},
    {"path": "/api/upstream/v1/stock?x=1"},
    {"body": b'{"codes": ["1"]}'},
])
def test_any_change_breaks_the_signature(change):
    assert refused(Station(), signed(), **change) == "bad_signature"


def test_malformed_headers():
    station = Station()
    headers = signed()
    assert refused(station, {k: v for k, v in headers.items() if k != "X-Kamen-Nonce"}) == "missing_header"
    assert refused(station, {**headers, "X-Kamen-Timestamp": "soon"}) == "bad_timestamp"
    assert refused(station, {**headers, "X-Kamen-Nonce": "short"}) == "bad_nonce"
    assert refused(station, {**headers, "X-Kamen-App-Id": "nobody"}) == "unknown_app"
    assert refused(station, {**headers, "X-Kamen-Signature": "签名"}) == "bad_signature"


def test_refusals_carry_chinese_messages():
    with pytest.raises(VerificationError, match="5 分钟"):
        Station().verify(signed(), now=TS + 3600)


def test_request_target_is_the_path_as_sent():
    app = Flask(__name__)
    with app.test_request_context("/api/upstream/v1/products?cursor=a%20b&limit=2"):
        from flask import request
        assert request_target(request) == "/api/upstream/v1/products?cursor=a%20b&limit=2"
    with app.test_request_context("/api/upstream/v1/balance"):
        from flask import request
        assert request_target(request) == "/api/upstream/v1/balance"
