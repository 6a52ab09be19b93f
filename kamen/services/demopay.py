"""The built-in 易支付 V1 demo gateway: the gateway's side of the protocol.

It checks requests as a real gateway does, keeps its own trades, and sends
the signed notify until the merchant answers ``success`` — so the shop's
merchant code is exercised exactly as against a real gateway (docs/epay.md).
"""
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from kamen import queue
from kamen.models import DemoPayTrade, DemoTradeStatus
from kamen.money import MoneyError, parse_money
from kamen.payments import epay
from kamen.services.transitions import transition
from kamen.timeutil import to_local, utcnow

PAY_TYPES = {"alipay": "支付宝", "wxpay": "微信支付", "qqpay": "QQ钱包", "bank": "网银支付", "jdpay": "京东支付"}
DEVICES = ("pc", "mobile", "qq", "wechat", "alipay", "jump")
OUT_TRADE_NO = re.compile(r"[a-zA-Z0-9._\-|]+")
MONEY_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
MAX_MONEY_TEXT = 13  # NUMERIC(12,2) plus the dot
MAX_NAME_BYTES = 127
MAX_URL = 500
MAX_PARAM = 1000

# Seconds to wait after failed attempt 1, 2, … before the next; after the
# last one the gateway gives up (about 10 hours in all).
NOTIFY_BACKOFF_SECONDS = (15, 60, 180, 600, 1800, 3600, 7200, 21600)
NOTIFY_TIMEOUT = 10
NOTIFY_READ_BYTES = 4096
DUE_BATCH = 200


class PaymentRefused(Exception):
    """A request the gateway refuses; ``str()`` is the Chinese reason shown or returned."""

    def __init__(self, message, code=-1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Merchant:
    pid: str
    key: str


@dataclass(frozen=True)
class PaymentRequest:
    type: str
    out_trade_no: str
    notify_url: str
    return_url: str
    name: str
    money: object  # Decimal
    param: str
    client_ip: str
    device: str


def configured_merchant():
    """The one merchant the demo gateway knows, from the app's settings."""
    config = current_app.config
    return Merchant(str(config["DEMO_GATEWAY_PID"]), config["DEMO_GATEWAY_KEY"])


def parse_payment(params, merchant, *, api=False):
    """Check a submit.php (or, with ``api``, mapi.php) request as a gateway
    does; returns a :class:`PaymentRequest` or raises :class:`PaymentRefused`."""
    params = {k: (v if isinstance(v, str) else str(v)) for k, v in params.items()}
    if params.get("pid", "") != merchant.pid:
        raise PaymentRefused("商户不存在（pid 错误）")
    if not params.get("sign"):
        raise PaymentRefused("缺少签名（sign）")
    if (params.get("sign_type") or "MD5").upper() != "MD5":
        raise PaymentRefused("不支持的签名方式（sign_type 只能为 MD5）")
    if not epay.verify(params, merchant.key):
        raise PaymentRefused("签名校验失败，请检查商户密钥")
    required = {"type": "支付方式 type", "out_trade_no": "商户订单号 out_trade_no",
                "notify_url": "异步通知地址 notify_url", "name": "商品名称 name", "money": "金额 money"}
    if api:
        required["clientip"] = "用户IP clientip"
    else:
        required["return_url"] = "跳转地址 return_url"
    for field, label in required.items():
        if not params.get(field, "").strip():
            raise PaymentRefused(f"缺少参数：{label}")
    pay_type = params["type"]
    if pay_type not in PAY_TYPES:
        raise PaymentRefused(f"不支持的支付方式：{pay_type}")
    out_trade_no = params["out_trade_no"]
    if not OUT_TRADE_NO.fullmatch(out_trade_no):
        raise PaymentRefused("商户订单号只能包含字母、数字和 . _ - |")
    if len(out_trade_no) > 64:
        raise PaymentRefused("商户订单号不能超过 64 个字符")
    name = params["name"]
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise PaymentRefused(f"商品名称过长（不能超过 {MAX_NAME_BYTES} 字节）")
    money = _parse_amount(params["money"])
    notify_url = _check_url(params["notify_url"], "异步通知地址 notify_url")
    return_url = params.get("return_url", "")
    if return_url:
        return_url = _check_url(return_url, "跳转地址 return_url")
    param = params.get("param", "")
    if len(param) > MAX_PARAM:
        raise PaymentRefused(f"附加参数 param 过长（不能超过 {MAX_PARAM} 个字符）")
    device = params.get("device", "") or "pc"
    if api and device not in DEVICES:
        raise PaymentRefused(f"不支持的设备类型：{device}")
    return PaymentRequest(pay_type, out_trade_no, notify_url, return_url, name, money,
                          param, params.get("clientip", "")[:45], device)


def _parse_amount(text):
    if len(text) > MAX_MONEY_TEXT or not MONEY_TEXT.fullmatch(text):
        raise PaymentRefused("金额格式错误：只能是数字和小数点，例如 10.00")
    try:
        money = parse_money(text, field="金额")
    except MoneyError as exc:
        raise PaymentRefused(str(exc)) from exc
    if money <= 0:
        raise PaymentRefused("金额必须大于 0")
    return money


def _check_url(url, label):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL:
        raise PaymentRefused(f"{label} 必须是 http:// 或 https:// 开头的完整地址（不超过 {MAX_URL} 个字符）")
    return url


def open_trade(session, merchant, req):
    """The trade for ``req``: a new one, or the merchant's earlier one for the
    same ``out_trade_no`` (same amount; a cancelled one is reopened)."""
    for _ in range(3):
        existing = find_trade(session, merchant.pid, req.out_trade_no)
        if existing is not None:
            return _reuse(session, existing, req)
        trade = DemoPayTrade(trade_no=_new_trade_no(), pid=merchant.pid, out_trade_no=req.out_trade_no,
                             **_request_values(req))
        session.add(trade)
        try:
            session.commit()
            return trade
        except IntegrityError:  # the same out_trade_no at the same moment, or a trade_no clash
            session.rollback()
    raise PaymentRefused("创建支付订单失败，请重试")


def _request_values(req):
    return {"type": req.type, "name": req.name, "money": req.money, "param": req.param,
            "notify_url": req.notify_url, "return_url": req.return_url, "client_ip": req.client_ip}


def _reuse(session, trade, req):
    if trade.money != req.money:
        raise PaymentRefused("该商户订单号已存在，且金额不一致")
    if trade.status != DemoTradeStatus.PAID:
        transition(session, DemoPayTrade, trade.id, [DemoTradeStatus.PENDING, DemoTradeStatus.CANCELLED],
                   DemoTradeStatus.PENDING, **_request_values(req))
        session.commit()
        session.refresh(trade)
    return trade


def _new_trade_no():
    """Shop-local date and time plus 10 random digits: unique in practice, not guessable."""
    return to_local(utcnow()).strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**10):010d}"


def find_trade(session, pid, out_trade_no=None, trade_no=None):
    query = sa.select(DemoPayTrade).where(DemoPayTrade.pid == pid)
    if trade_no:
        query = query.where(DemoPayTrade.trade_no == trade_no)
    elif out_trade_no:
        query = query.where(DemoPayTrade.out_trade_no == out_trade_no)
    else:
        return None
    return session.scalar(query)


def get_trade(session, trade_no):
    return session.scalar(sa.select(DemoPayTrade).where(DemoPayTrade.trade_no == trade_no))


def confirm(session, trade, now=None):
    """The buyer pressed 确认支付: mark the trade paid once and start the notify."""
    now = now or utcnow()
    if transition(session, DemoPayTrade, trade.id, DemoTradeStatus.PENDING, DemoTradeStatus.PAID,
                  paid_at=now, notify_next_at=now):
        session.commit()
        _enqueue_attempt(trade.id, 1)
    session.refresh(trade)
    if trade.status == DemoTradeStatus.CANCELLED:
        raise PaymentRefused("该支付已取消，请返回商户重新发起支付")
    return trade


def cancel(session, trade):
    if transition(session, DemoPayTrade, trade.id, DemoTradeStatus.PENDING, DemoTradeStatus.CANCELLED):
        session.commit()
    session.refresh(trade)
    if trade.status == DemoTradeStatus.PAID:
        raise PaymentRefused("该订单已支付，不能取消")
    return trade


def result_params(trade, merchant):
    """The signed fields sent to notify_url and, the same, to return_url."""
    fields = epay.signed({
        "pid": trade.pid, "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
        "type": trade.type, "name": trade.name, "money": f"{trade.money:.2f}",
        "trade_status": "TRADE_SUCCESS", "param": trade.param,
    }, merchant.key)
    fields.setdefault("param", "")  # sent even when empty, as real gateways do (not signed)
    return fields


def with_query(url, params):
    """``url`` with ``params`` appended (after its own query string, if any)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def return_location(trade, merchant):
    return with_query(trade.return_url, result_params(trade, merchant))


def merchant_home(trade):
    """Where 取消 sends the buyer: the merchant site's front page."""
    parts = urlsplit(trade.return_url or trade.notify_url)
    return f"{parts.scheme}://{parts.netloc}/"


def _enqueue_attempt(trade_id, attempt):
    queue.enqueue("jobs.demopay.deliver_notify", trade_id, attempt, job_id=f"demopay-notify-{trade_id}-{attempt}")


def deliver_notify(session, trade_id, attempt, merchant, now=None):
    """Notify attempt number ``attempt`` for a paid trade. Claimed by one
    conditional UPDATE (a retried or duplicated job sends nothing), committed
    before sending, so a crash mid-way still leaves the next attempt planned.
    Returns True when the merchant answered ``success``, None when this
    attempt was not ours to make."""
    now = now or utcnow()
    delay = NOTIFY_BACKOFF_SECONDS[attempt - 1] if attempt <= len(NOTIFY_BACKOFF_SECONDS) else None
    claimed = session.execute(
        sa.update(DemoPayTrade)
        .where(DemoPayTrade.id == trade_id, DemoPayTrade.status == DemoTradeStatus.PAID,
               DemoPayTrade.notified_at.is_(None), DemoPayTrade.notify_attempts == attempt - 1)
        .values(notify_attempts=attempt, notify_last_at=now,
                notify_next_at=None if delay is None else now + timedelta(seconds=delay))
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.commit()
    if not claimed:
        return None
    trade = session.get(DemoPayTrade, trade_id)
    session.refresh(trade)
    ok, answer = _send(with_query(trade.notify_url, result_params(trade, merchant)))
    done = {"notified_at": now, "notify_next_at": None} if ok else {}
    session.execute(
        sa.update(DemoPayTrade).where(DemoPayTrade.id == trade_id)
        .values(notify_last_answer=answer[:255], **done)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return ok


def _send(url):
    """GET the notify; (merchant said success, what it said)."""
    try:
        with requests.get(url, timeout=NOTIFY_TIMEOUT, allow_redirects=False, stream=True) as resp:
            body = resp.raw.read(NOTIFY_READ_BYTES, decode_content=True).decode("utf-8", "replace")
    except requests.RequestException as exc:
        return False, f"请求失败：{type(exc).__name__}"
    ok = 200 <= resp.status_code < 300 and "success" in body
    return ok, f"HTTP {resp.status_code}：{body.strip()[:200]}"


def retry_due_notifies(session, now=None):
    """Start the next notify attempt of every paid trade whose retry is due
    (the per-minute schedule; also lazily on gateway requests in embedded mode).
    Returns how many were started."""
    now = now or utcnow()
    due = session.execute(
        sa.select(DemoPayTrade.id, DemoPayTrade.notify_attempts)
        .where(DemoPayTrade.notify_next_at <= now, DemoPayTrade.notified_at.is_(None),
               DemoPayTrade.status == DemoTradeStatus.PAID)
        .order_by(DemoPayTrade.notify_next_at).limit(DUE_BATCH)
    ).all()
    for trade_id, attempts in due:
        _enqueue_attempt(trade_id, attempts + 1)
    return len(due)


def merchant_from_query(params, merchant):
    """api.php: the pid and key must be the merchant's (constant-time)."""
    if params.get("pid", "") != merchant.pid:
        raise PaymentRefused("商户不存在（pid 错误）")
    if not hmac.compare_digest(params.get("key", "").encode(), merchant.key.encode()):
        raise PaymentRefused("商户密钥错误")
    return merchant


def order_answer(session, merchant, params):
    """api.php?act=order: one trade, by out_trade_no or trade_no."""
    trade = find_trade(session, merchant.pid, params.get("out_trade_no"), params.get("trade_no"))
    if trade is None:
        raise PaymentRefused("订单号不存在")
    return {
        "code": 1, "msg": "查询订单号成功！", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
        "api_trade_no": trade.trade_no, "type": trade.type, "pid": trade.pid,
        "addtime": _shop_time(trade.created_at), "endtime": _shop_time(trade.paid_at),
        "name": trade.name, "money": f"{trade.money:.2f}", "param": trade.param, "buyer": "",
        "status": 1 if trade.status == DemoTradeStatus.PAID else 0,
    }


def merchant_answer(session, merchant):
    """api.php?act=query: the merchant's account (a 测试 button's check)."""
    paid = session.scalar(
        sa.select(sa.func.count()).select_from(DemoPayTrade)
        .where(DemoPayTrade.pid == merchant.pid, DemoPayTrade.status == DemoTradeStatus.PAID)
    )
    return {"code": 1, "msg": "查询商户信息成功！", "pid": merchant.pid, "active": 1, "money": "0.00",
            "orders": paid}


def _shop_time(dt):
    local = to_local(dt)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else None


def mapi_answer(trade, device, pay_url):
    """mapi.php's answer: a QR code for a WeChat/QQ scan from a PC, else a page to open."""
    kind = "qrcode" if trade.type in ("wxpay", "qqpay") and device == "pc" else "payurl"
    return {"code": 1, "msg": "", "trade_no": trade.trade_no, kind: pay_url}
