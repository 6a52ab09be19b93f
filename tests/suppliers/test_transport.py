"""Every API adapter maps a misbehaving supplier to the same errors."""
import socket

import pytest

from kamen.suppliers.base import AuthFailed, RateLimited, SupplierError, Transient


@pytest.mark.parametrize("status, error, words", [
    (500, Transient, "HTTP 500"),
    (502, Transient, "HTTP 502"),
    (401, AuthFailed, "HTTP 401"),
    (403, AuthFailed, "HTTP 403"),
    (429, RateLimited, "频率"),
    (404, SupplierError, "HTTP 404"),
    (302, SupplierError, "跳转"),
])
def test_http_status(any_adapter, simulator, status, error, words):
    simulator.http_status = status
    with pytest.raises(error, match=words) as caught:
        any_adapter.test_connection()
    if error is SupplierError:
        assert type(caught.value) is SupplierError  # not something to retry


def test_html_error_page(any_adapter, simulator):
    simulator.html = True
    with pytest.raises(Transient, match="网页"):
        any_adapter.list_products()


def test_malformed_json(any_adapter, simulator):
    simulator.malformed = True
    with pytest.raises(Transient, match="无法解析"):
        any_adapter.list_products()


def test_timeout(any_adapter, simulator):
    any_adapter.http.timeout = 0.2
    simulator.latency = 1
    with pytest.raises(Transient, match="超时"):
        any_adapter.test_connection()


def test_latency_below_the_timeout_is_fine(any_adapter, simulator):
    simulator.latency = 0.1
    assert any_adapter.test_connection().balance is not None


def test_nothing_listening(any_adapter):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    any_adapter.http.base_url = f"http://127.0.0.1:{port}"
    with pytest.raises(Transient, match="无法连接"):
        any_adapter.balance()


def test_missing_balance_is_transient(any_adapter, simulator):
    simulator.balance = None
    with pytest.raises(Transient, match="balance"):
        any_adapter.balance()
