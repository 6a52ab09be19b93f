"""HTTP shared by the API adapters: one session, timeouts, and every transport
failure turned into a ``SupplierError`` with a Chinese reason."""
import json
import logging
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from kamen.outbound import AddressRefused, check_host
from kamen.suppliers.base import Ambiguous, AuthFailed, RateLimited, SupplierError, Transient

log = logging.getLogger("kamen.suppliers")

DEFAULT_TIMEOUT = 10.0


def loads(text):
    """JSON with every non-integer number as a Decimal parsed from its text."""
    return json.loads(text, parse_float=Decimal)


class HttpClient:
    """Sends bytes the adapter built (and maybe signed) and returns decoded JSON.

    ``error_from_reply(resp, data)`` lets a protocol turn its own error body
    (on a non-2xx reply) into the right exception before the generic mapping.
    """

    def __init__(self, base_url, timeout=None, *, error_from_reply=None, session=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        self.error_from_reply = error_from_reply
        self.session = session or requests.Session()
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.hostname = urlsplit(self.base_url).hostname

    def request(self, method, path, *, body=None, content_type=None, headers=None, once=False):
        """``once``: the request must not take effect twice (an order). Trouble
        after it may have reached the supplier (read timeout, dropped
        connection, 5xx, garbled reply) is then ``Ambiguous``, not Transient."""
        if not once:
            return self._request(method, path, body, content_type, headers)
        try:
            return self._request(method, path, body, content_type, headers)
        except Transient as exc:
            if getattr(exc, "never_sent", False):
                raise
            raise Ambiguous(f"{exc.message}；请求已发出，结果未知，需查询确认，切勿重复下单") from exc

    def _request(self, method, path, body, content_type, headers):
        headers = dict(headers or {})
        if content_type:
            headers["Content-Type"] = content_type
        headers.setdefault("Accept", "application/json")
        try:
            check_host(self.hostname, "货源地址")  # again per request: the name may resolve elsewhere now
        except AddressRefused as exc:
            raise SupplierError(str(exc)) from None
        try:
            # Bodies may carry keys (acg-faka posts its app_key): never follow a redirect.
            resp = self.session.request(
                method, self.base_url + path, data=body, headers=headers,
                timeout=self.timeout, allow_redirects=False,
            )
        except requests.Timeout as exc:
            error = Transient(f"货源响应超时（超过 {self.timeout:g} 秒）：{self.host}")
            error.never_sent = isinstance(exc, requests.ConnectTimeout)
            raise error from exc
        except requests.ConnectionError as exc:
            error = Transient(f"无法连接货源 {self.host}：网络不通、地址错误或对方服务未启动")
            error.never_sent = _never_connected(exc)
            raise error from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise SupplierError(f"货源地址无效：{self.base_url}") from exc
        except requests.RequestException as exc:
            raise Transient(f"请求货源失败：{type(exc).__name__}") from exc
        return self._decode(resp)

    def _decode(self, resp):
        status = resp.status_code
        data, problem = _parse_json(resp)
        if status >= 400 and problem is None and self.error_from_reply:
            error = self.error_from_reply(resp, data)
            if error is not None:
                raise error
        if status in (401, 403):
            raise AuthFailed(f"货源拒绝了我们的凭据（HTTP {status}），请检查 AppKey/密钥")
        if status == 429:
            raise RateLimited("货源限制了请求频率（HTTP 429），稍后再试",
                              retry_after=retry_after(resp))
        if status >= 500:
            raise Transient(f"货源服务器出错（HTTP {status}），稍后重试")
        if 300 <= status < 400:
            raise SupplierError(
                f"货源地址发生了跳转（HTTP {status} → {resp.headers.get('Location', '?')}），"
                "请填写跳转后的地址"
            )
        if status >= 400:
            raise SupplierError(f"货源拒绝了请求（HTTP {status}），请检查货源地址和接口类型")
        if problem is not None:
            raise Transient(problem)
        return data


def _never_connected(exc):
    """Whether a ConnectionError happened before a connection existed (so nothing was sent)."""
    reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _parse_json(resp):
    """(data, None) or (None, Chinese reason why the body is not usable JSON)."""
    body = resp.content
    content_type = resp.headers.get("Content-Type", "")
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return None, f"货源返回了网页而不是接口数据（HTTP {resp.status_code}），可能是地址填错或对方网站故障"
    if not body.strip():
        return None, f"货源返回了空内容（HTTP {resp.status_code}）"
    try:
        return loads(body), None
    except ValueError:
        return None, f"货源返回的数据无法解析（不是合法的 JSON，HTTP {resp.status_code}）"


def retry_after(resp):
    value = resp.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None
