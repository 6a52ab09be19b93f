"""The built-in 易支付 demo gateway over real HTTP, and a merchant's notify
receiver, for payment tests on either side of the protocol.

``demo_gateway``: a second app (gateway on, its own generated key) on the
test's database, served on a free port; ``.base_url`` is what a payment
channel is configured with, ``.pay(url)`` does what a buyer does on the pay
page. ``notify_receiver``: a plain HTTP server that records every request
and answers from a script (``answers``; the last one repeats; ``None``
hangs until ``release`` is set, then drops the connection).
"""
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from kamen import create_app
from kamen.extensions import db


@dataclass
class DemoGateway:
    app: object
    base_url: str  # ends with "/demopay/"
    pid: str
    key: str

    def url(self, path):
        return self.base_url + path

    def open_pay_page(self, url, http=None):
        """Follow a submit.php URL (or a mapi.php payurl) to the pay page."""
        http = http or requests.Session()
        page = http.get(url, allow_redirects=True, timeout=10)
        return http, page

    def pay(self, url, action="confirm", http=None):
        """As a buyer: open ``url``, press 确认支付 (or 取消). Returns the
        gateway's answer to the button, redirects not followed."""
        http, page = self.open_pay_page(url, http)
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = re.search(rf'action="([^"]*/{action})"', page.text).group(1)
        return http.post(urljoin(page.url, form), data={"csrf_token": token}, allow_redirects=False, timeout=30)


@pytest.fixture
def demo_gateway(app, db_url, tmp_path):
    gateway = create_app({
        "SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_PATH": str(tmp_path / "gateway-instance"),
        "SECRET_KEY": "gateway-secret", "TESTING": True, "JOBS_SYNC": True, "REDIS_URL": None,
        "DEMO_GATEWAY": True, "DEMO_GATEWAY_PID": "1001", "DEMO_GATEWAY_KEY": None,
    })
    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield DemoGateway(gateway, f"http://127.0.0.1:{server.server_port}/demopay/",
                      gateway.config["DEMO_GATEWAY_PID"], gateway.config["DEMO_GATEWAY_KEY"])
    server.shutdown()
    thread.join(timeout=5)
    with gateway.app_context():
        db.engine.dispose()


@dataclass
class NotifyReceiver:
    url: str
    answers: list = field(default_factory=lambda: ["success"])
    requests: list = field(default_factory=list)  # (path, [(key, value), …]) in arrival order
    posts: list = field(default_factory=list)  # (path with query, {header: value}, body bytes) of POSTs
    release: threading.Event = field(default_factory=threading.Event)

    def fields(self, n=-1):
        """The query of request ``n`` as a dict."""
        return dict(self.requests[n][1])


@pytest.fixture
def notify_receiver():
    receiver = NotifyReceiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            with lock:
                receiver.requests.append((parts.path, parse_qsl(parts.query, keep_blank_values=True)))
            self._answer()

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                receiver.posts.append((self.path, dict(self.headers.items()), body))
            self._answer()

        def _answer(self):
            with lock:
                n = len(receiver.requests) + len(receiver.posts)
                answer = receiver.answers[min(n, len(receiver.answers)) - 1]
            if answer is None:
                receiver.release.wait(timeout=60)
                return
            body = answer.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
