"""Every API adapter maps a misbehaving supplier to the same errors."""
import socket

import pytest

from kamen.suppliers.base import Ambiguous, AuthFailed, RateLimited, SupplierError, Transient


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


# --- requests that must not take effect twice (orders) ------------------------

def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_once_nothing_listening_is_transient_not_ambiguous():
    from kamen.suppliers.http import HttpClient
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Transient) as caught:
        HttpClient(f"http://127.0.0.1:{port}", 1).request("POST", "/order", body=b"x", once=True)
    assert not isinstance(caught.value, Ambiguous)


def test_once_connection_dropped_after_sending_is_ambiguous():
    import threading

    from kamen.suppliers.http import HttpClient
    server = _listener()
    received = []

    def drop():
        conn, _ = server.accept()
        received.append(conn.recv(65536))
        conn.close()  # read the order, answer nothing

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        with pytest.raises(Ambiguous, match="结果未知"):
            HttpClient(f"http://127.0.0.1:{server.getsockname()[1]}", 2).request(
                "POST", "/order", body=b"x", once=True)
    finally:
        thread.join(3)
        server.close()
    assert received and received[0].startswith(b"POST /order")


@pytest.mark.parametrize("switch", [("http_status", 502), ("html", True), ("malformed", True), ("latency", 3)])
def test_once_bad_answer_is_ambiguous_else_transient(simulator, switch):
    from kamen.suppliers.http import HttpClient
    setattr(simulator, *switch)
    client = HttpClient(simulator.url, 1)
    with pytest.raises(Ambiguous):
        client.request("POST", "/api/getway", body=b"{}", content_type="application/json", once=True)
    with pytest.raises(Transient) as caught:
        client.request("POST", "/api/getway", body=b"{}", content_type="application/json")
    assert not isinstance(caught.value, Ambiguous)
