"""The buyer's side of a checkout over HTTP, shared by the order benches: a keep-alive
browser, buy → the gateway's signed notify, and threads that share the checkouts."""
import http.client
import statistics
import threading
import time
from urllib.parse import urlencode

PID, KEY = "1001", "bench-merchant-key"  # the demo 易支付 merchant the benches configure


class Buyer:
    """One browser: keep-alive connection and the session cookie (the order page needs it)."""

    def __init__(self, port, n):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.ip = f"10.{n // 250}.{n % 250}.9"

    def request(self, method, path, body=None):
        headers = {"X-Forwarded-For": self.ip}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return resp.status, resp.getheader("Location") or "", data

    def buy_and_pay(self, product_id, channel_id, price, i, errors):
        """Order one of ``product_id`` and send the gateway's signed notify; the order
        number, or None with the reason appended to ``errors``."""
        from kamen.payments import epay

        status, location, _ = self.request("POST", f"/p/{product_id}/buy", urlencode(
            {"quantity": "1", "contact": f"139{i:08d}"}))
        if status != 302:
            errors.append(f"buy {status}")
            return None
        order_no = location.rsplit("/", 1)[1]
        notify = epay.signed({"pid": PID, "trade_no": f"T{order_no}", "out_trade_no": order_no, "type": "alipay",
                              "name": "商品", "money": price, "trade_status": "TRADE_SUCCESS"}, KEY)
        status, _, text = self.request("GET", f"/pay/notify/{channel_id}?{urlencode(notify)}")
        if text != "success":
            errors.append(f"notify {status} {text[:40]}")
            return None
        return order_no


class Tickets:
    """Checkout numbers first…first+n-1 shared by the threads: each is handed out once."""

    def __init__(self, n, first=0):
        self._numbers = iter(range(first, first + n))
        self._lock = threading.Lock()

    def __iter__(self):
        while True:
            with self._lock:
                i = next(self._numbers, None)
            if i is None:
                return
            yield i


def timed(work, threads, latencies, errors, delivered):
    """Run ``work(n)`` on ``threads`` threads: checkouts/s, p50/p95 of ``latencies`` (ms), errors."""
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) if latencies else 0,
        "p95": latencies[int(len(latencies) * 0.95) - 1] if latencies else 0,
        "errors": len(errors),
        "error_sample": errors[:3],
        "delivered": len(delivered),
        "seconds": elapsed,
    }
