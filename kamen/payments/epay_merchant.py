"""易支付 (epay) V1, the merchant side: submit.php, mapi.php, notify, api.php query.

Wire facts: docs/epay.md (and ../shared/PROTOCOLS.md). The merchant key
signs requests (md5 over sorted ``k=v``) and is never put in a URL the buyer
sees; only the server-side query API takes it as a parameter, as V1 demands.
"""
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

import requests

from kamen.payments import epay
from kamen.payments.gateway import GatewayError, Notice, NoticeRejected, PaymentStart, QueryResult

NAME_MAX_BYTES = 127
TIMEOUT = 10
# Characters some gateways mangle in the signed name (the jump is URL-encoded,
# but several PHP gateways sign the decoded value after their own filtering).
_NAME_UNSAFE = re.compile(r"[&=+%#?<>\"'\\\x00-\x1f\x7f]")


def safe_name(text, limit=NAME_MAX_BYTES):
    """The product name as the gateway can take it: no unsafe characters, ≤ ``limit`` UTF-8 bytes,
    never cut inside a character."""
    cleaned = _NAME_UNSAFE.sub(" ", text or "").strip() or "商品"
    data = cleaned.encode("utf-8")
    if len(data) <= limit:
        return cleaned
    return data[:limit].decode("utf-8", errors="ignore").rstrip()


def money_text(amount):
    return f"{Decimal(amount):.2f}"


class EpayV1:
    def __init__(self, base_url, pid, key, session=None):
        self.base_url = base_url.rstrip("/")
        self.pid = str(pid)
        self.key = key
        self.http = session or requests

    def _order_params(self, out_trade_no, amount, name, pay_type, notify_url, return_url):
        return {
            "pid": self.pid,
            "type": pay_type,
            "out_trade_no": out_trade_no,
            "notify_url": notify_url,
            "return_url": return_url,
            "name": safe_name(name),
            "money": money_text(amount),
        }

    def submit_url(self, out_trade_no, amount, name, pay_type, notify_url, return_url):
        """The page jump: a signed GET to submit.php."""
        params = epay.signed(self._order_params(out_trade_no, amount, name, pay_type, notify_url, return_url), self.key)
        return f"{self.base_url}/submit.php?{urlencode(params)}"

    def create_payment(self, out_trade_no, amount, name, pay_type, notify_url, return_url, client_ip=None,
                       device=None):
        """mapi.php when a client address is given (QR code or pay URL), else the submit.php jump."""
        if client_ip is None:
            return PaymentStart(redirect_url=self.submit_url(out_trade_no, amount, name, pay_type, notify_url,
                                                             return_url))
        params = self._order_params(out_trade_no, amount, name, pay_type, notify_url, return_url)
        params.update(clientip=client_ip, device=device or "pc")
        reply = self._call("post", "mapi.php", data=epay.signed(params, self.key))
        if str(reply.get("code")) != "1":
            raise GatewayError(f"支付网关拒绝了下单：{str(reply.get('msg') or '未说明原因')[:100]}")
        return PaymentStart(
            redirect_url=reply.get("payurl") or reply.get("urlscheme"),
            qrcode=reply.get("qrcode"),
            trade_no=reply.get("trade_no"),
        )

    def parse_notify(self, params):
        """A verified Notice, or NoticeRejected with the reason."""
        params = {k: (v if isinstance(v, str) else str(v)) for k, v in params.items()}
        if not epay.verify(params, self.key):
            raise NoticeRejected("签名错误")
        if params.get("pid") != self.pid:
            raise NoticeRejected(f"商户号不符（收到 {params.get('pid', '')[:20]}）")
        out_trade_no = params.get("out_trade_no", "")
        if not out_trade_no:
            raise NoticeRejected("缺少商户订单号")
        return Notice(
            out_trade_no=out_trade_no,
            trade_no=params.get("trade_no", "")[:64],
            money=parse_amount(params.get("money")),
            pay_type=params.get("type", "")[:16],
            paid=params.get("trade_status") == "TRADE_SUCCESS",
        )

    def query(self, out_trade_no):
        """api.php?act=order: has the gateway seen this order paid?"""
        reply = self._call(
            "get", "api.php", params={"act": "order", "pid": self.pid, "key": self.key, "out_trade_no": out_trade_no}
        )
        if str(reply.get("code")) != "1":
            return QueryResult(found=False, paid=False, raw=reply)
        money = reply.get("money")
        return QueryResult(
            found=True,
            paid=str(reply.get("status")) == "1",
            money=parse_amount(money) if money not in (None, "") else None,
            trade_no=str(reply.get("trade_no") or "")[:64] or None,
            raw=reply,
        )

    def check_merchant(self):
        """api.php?act=query (merchant info): (True, "") when the gateway accepts this pid and key,
        else (False, the gateway's reason)."""
        reply = self._call("get", "api.php", params={"act": "query", "pid": self.pid, "key": self.key})
        if str(reply.get("code")) == "1":
            return True, ""
        return False, str(reply.get("msg") or "")[:100]

    def _call(self, method, path, **kwargs):
        url = f"{self.base_url}/{path}"
        try:
            resp = getattr(self.http, method)(url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise GatewayError(f"连接支付网关失败：{type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise GatewayError(f"支付网关返回 HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise GatewayError("支付网关的回复不是 JSON，请检查网关地址") from exc
        if not isinstance(data, dict):
            raise GatewayError("支付网关的回复格式不对，请检查网关地址")
        return data


def parse_amount(text):
    """Money from the wire as Decimal ("1" equals "1.00"); NoticeRejected when it is not a positive number."""
    if text is None or not re.fullmatch(r"\d{1,10}(\.\d{1,2})?", str(text).strip()):
        raise NoticeRejected(f"金额格式错误（{str(text)[:20]}）")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:  # pragma: no cover - the pattern guards this
        raise NoticeRejected("金额格式错误") from exc
    if value <= 0:
        raise NoticeRejected("金额必须大于 0")
    return value
