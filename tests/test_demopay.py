"""The built-in 易支付 demo gateway, over real HTTP, as a merchant sees it.

Requests are signed here by hand (``hand_sign``), not through
kamen.payments.epay, so the gateway is checked against an independent reading
of the wire rules.
"""
import hashlib
import os
import re
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
import requests
import sqlalchemy as sa

from kamen import create_app, queue
from kamen.extensions import db
from kamen.models import DemoPayTrade
from kamen.payments import epay
from kamen.services import demopay
from tests.helpers import ROOT, burst_worker, rq_command, worker_env

DOCS = Path(__file__).resolve().parent.parent / "docs" / "epay.md"
RETURN_URL = "http://merchant.invalid/pay/return/1"


def hand_sign(params, key):
    pairs = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type") and v != "")
    return hashlib.md5(("&".join(f"{k}={v}" for k, v in pairs) + key).encode("utf-8")).hexdigest()


def signed_request(gateway, receiver, **fields):
    params = {"pid": gateway.pid, "type": "alipay", "out_trade_no": "K20261201A1",
              "notify_url": f"{receiver.url}/pay/notify/1", "return_url": RETURN_URL,
              "name": "腾讯Q币 10元", "money": "10.00"}
    params.update(fields)
    params = {k: v for k, v in params.items() if v is not None}
    return {**params, "sign": hand_sign(params, gateway.key), "sign_type": "MD5"}


def submit_url(gateway, params):
    return gateway.url("submit.php") + "?" + urlencode(params)


def query(gateway, **params):
    answer = requests.get(gateway.url("api.php"), params={"act": "order", "pid": gateway.pid,
                                                          "key": gateway.key, **params}, timeout=10)
    assert answer.status_code == 200
    return answer.json()


def trades():
    return db.session.scalars(sa.select(DemoPayTrade).order_by(DemoPayTrade.id)).all()


def assert_signed_result(fields, key, out_trade_no="K20261201A1", money="10.00"):
    assert fields["sign"] == hand_sign(fields, key)
    assert fields["sign_type"] == "MD5"
    assert fields["trade_status"] == "TRADE_SUCCESS"
    assert fields["out_trade_no"] == out_trade_no
    assert fields["money"] == money
    assert set(fields) == {"pid", "trade_no", "out_trade_no", "type", "name", "money", "trade_status",
                           "param", "sign", "sign_type"}


# --- the signature example in docs/epay.md ---------------------------------

DOC_KEY = "9fK2xQ7LmR4tZ8wB"
DOC_SUBMIT = {"pid": "1001", "type": "alipay", "out_trade_no": "K20261201093000A7",
              "notify_url": "https://shop.example.com/pay/notify/1",
              "return_url": "https://shop.example.com/pay/return/1",
              "name": "腾讯Q币 10元", "money": "10.00", "param": ""}
DOC_SUBMIT_STRING = ("money=10.00&name=腾讯Q币 10元&notify_url=https://shop.example.com/pay/notify/1"
                     "&out_trade_no=K20261201093000A7&pid=1001&return_url=https://shop.example.com/pay/return/1"
                     "&type=alipay")
DOC_SUBMIT_SIGN = "bed0db3a16623b3ae92f8030c53b13d3"
DOC_NOTIFY = {"pid": "1001", "trade_no": "202612010130004821937265", "out_trade_no": "K20261201093000A7",
              "type": "alipay", "name": "腾讯Q币 10元", "money": "10.00", "trade_status": "TRADE_SUCCESS",
              "param": "", "sign_type": "MD5"}
DOC_NOTIFY_SIGN = "fafe467e82cf05c4ba38b2372797505d"


def test_worked_example_in_the_docs_is_right():
    text = DOCS.read_text(encoding="utf-8")
    assert DOC_SUBMIT_STRING in text and DOC_SUBMIT_SIGN in text and DOC_NOTIFY_SIGN in text
    assert hashlib.md5((DOC_SUBMIT_STRING + DOC_KEY).encode("utf-8")).hexdigest() == DOC_SUBMIT_SIGN
    assert epay.signing_string(DOC_SUBMIT) == DOC_SUBMIT_STRING
    assert epay.sign(DOC_SUBMIT, DOC_KEY) == DOC_SUBMIT_SIGN
    assert epay.sign(DOC_NOTIFY, DOC_KEY) == DOC_NOTIFY_SIGN
    # "1" and "1.00" are the same money but not the same signed text.
    assert epay.sign({**DOC_NOTIFY, "money": "10"}, DOC_KEY) != DOC_NOTIFY_SIGN


# --- configuration ---------------------------------------------------------

def test_gateway_is_off_unless_configured(client):
    assert client.get("/demopay/submit.php").status_code == 404
    assert client.get("/demopay/").status_code == 404


def test_key_is_generated_once_into_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KAMEN_DEMO_GATEWAY", "1")
    monkeypatch.delenv("KAMEN_DEMO_GATEWAY_KEY", raising=False)
    settings = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'g.db'}", "SECRET_KEY": "x",
                "INSTANCE_PATH": str(tmp_path)}
    first = create_app(dict(settings))
    with first.app_context():
        db.create_all()
    key = first.config["DEMO_GATEWAY_KEY"]
    assert len(key) == 32 and (tmp_path / "demo_gateway_key").read_text().strip() == key
    assert create_app(dict(settings)).config["DEMO_GATEWAY_KEY"] == key
    assert first.test_client().get("/demopay/").status_code == 200
    monkeypatch.setenv("KAMEN_DEMO_GATEWAY_KEY", "given-key")
    assert create_app(dict(settings)).config["DEMO_GATEWAY_KEY"] == "given-key"


# --- the whole payment over HTTP -------------------------------------------

def test_buyer_pays_merchant_is_notified_and_returned_with_signed_fields(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver, param="order=7")
    http, first_page = demo_gateway.open_pay_page(submit_url(demo_gateway, params))
    assert first_page.status_code == 200
    for text in ("演示支付，不会真实扣款", "腾讯Q币 10元", "10.00", "支付宝", "K20261201A1", "确认支付", "取消"):
        assert text in first_page.text
    assert query(demo_gateway, out_trade_no="K20261201A1")["status"] == 0
    assert notify_receiver.requests == []

    answer = demo_gateway.pay(submit_url(demo_gateway, params), http=http)

    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith(RETURN_URL + "?")
    returned = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    assert_signed_result(returned, demo_gateway.key)
    assert returned["param"] == "order=7" and returned["name"] == "腾讯Q币 10元" and returned["pid"] == "1001"

    assert len(notify_receiver.requests) == 1
    path, _ = notify_receiver.requests[0]
    assert path == "/pay/notify/1"
    assert notify_receiver.fields() == returned  # the same signed query to both

    answer = query(demo_gateway, out_trade_no="K20261201A1")
    assert answer["code"] == 1 and answer["status"] == 1 and answer["money"] == "10.00"
    assert answer["trade_no"] == returned["trade_no"] and answer["name"] == "腾讯Q币 10元"
    assert query(demo_gateway, trade_no=returned["trade_no"])["out_trade_no"] == "K20261201A1"

    (trade,) = trades()
    assert trade.notified_at is not None and trade.notify_attempts == 1 and trade.notify_next_at is None

    # Paying again (double click, back button) changes nothing and notifies nobody again.
    again = http.post(demo_gateway.url(f"pay/{trade.trade_no}/confirm"), allow_redirects=False, timeout=10,
                      data={"csrf_token": csrf_token(first_page.text)})
    assert again.status_code == 303 and again.headers["Location"] == location
    assert len(notify_receiver.requests) == 1
    page = http.get(demo_gateway.url(f"pay/{trade.trade_no}"), timeout=10)
    assert "支付成功" in page.text and "确认支付" not in page.text and "返回商户" in page.text


def csrf_token(page_text):
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def test_submit_by_post_and_money_without_decimals(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver, money="1", out_trade_no="A.b_c-d|1")
    page = requests.post(demo_gateway.url("submit.php"), data=params, timeout=10)
    assert page.status_code == 200 and "1.00" in page.text
    answer = demo_gateway.pay(page.url)
    fields = dict(parse_qsl(urlsplit(answer.headers["Location"]).query, keep_blank_values=True))
    assert_signed_result(fields, demo_gateway.key, out_trade_no="A.b_c-d|1", money="1.00")
    assert Decimal(notify_receiver.fields()["money"]) == Decimal("1")
    assert query(demo_gateway, out_trade_no="A.b_c-d|1")["money"] == "1.00"


def test_notify_url_with_its_own_query_gets_the_fields_appended(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver, notify_url=f"{notify_receiver.url}/n?channel=3")
    demo_gateway.pay(submit_url(demo_gateway, params))
    path, pairs = notify_receiver.requests[0]
    assert path == "/n" and pairs[0] == ("channel", "3")
    fields = dict(pairs[1:])
    assert_signed_result(fields, demo_gateway.key)


def test_return_url_keeps_its_query_and_fragment():
    assert demopay.with_query("https://m.example/r?o=1#top", {"a": "x y", "b": "&"}) == \
        "https://m.example/r?o=1&a=x+y&b=%26#top"
    assert demopay.with_query("https://m.example/r", {"a": "1"}) == "https://m.example/r?a=1"


def test_cancel_then_resubmit_reopens_the_same_trade(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver)
    answer = demo_gateway.pay(submit_url(demo_gateway, params), action="cancel")
    assert answer.status_code == 303
    page = requests.get(urljoin(demo_gateway.base_url, answer.headers["Location"]), timeout=10)
    assert "已取消支付" in page.text and "确认支付" not in page.text
    assert query(demo_gateway, out_trade_no="K20261201A1")["status"] == 0

    answer = demo_gateway.pay(submit_url(demo_gateway, params))
    assert answer.status_code == 303 and answer.headers["Location"].startswith(RETURN_URL)
    assert len(trades()) == 1 and len(notify_receiver.requests) == 1

    # Paid: the same out_trade_no shows the paid trade; another amount is refused.
    page = requests.get(submit_url(demo_gateway, params), timeout=10)
    assert "支付成功" in page.text
    other = requests.get(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver, money="9.99")),
                         timeout=10)
    assert other.status_code == 400 and "金额不一致" in other.text
    assert len(trades()) == 1


def test_cannot_cancel_a_paid_trade(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver)
    http, page = demo_gateway.open_pay_page(submit_url(demo_gateway, params))
    token = csrf_token(page.text)
    demo_gateway.pay(page.url, http=http)
    trade_no = trades()[0].trade_no
    answer = http.post(demo_gateway.url(f"pay/{trade_no}/cancel"), data={"csrf_token": token}, timeout=10)
    assert answer.status_code == 400 and "已支付" in answer.text
    assert query(demo_gateway, out_trade_no="K20261201A1")["status"] == 1


def test_pay_buttons_need_the_pay_pages_form(demo_gateway, notify_receiver):
    demo_gateway.open_pay_page(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    trade_no = trades()[0].trade_no
    forged = requests.post(demo_gateway.url(f"pay/{trade_no}/confirm"), timeout=10)
    assert forged.status_code == 400
    assert query(demo_gateway, out_trade_no="K20261201A1")["status"] == 0
    assert requests.get(demo_gateway.url("pay/123"), timeout=10).status_code == 404


# --- refusals ----------------------------------------------------------------

REFUSED = [
    ({"money": "abc"}, "金额格式错误"),
    ({"money": "1e3"}, "金额格式错误"),
    ({"money": "-1"}, "金额格式错误"),
    ({"money": "10."}, "金额格式错误"),
    ({"money": "0"}, "金额必须大于 0"),
    ({"money": "0.00"}, "金额必须大于 0"),
    ({"money": "10.001"}, "最多两位小数"),
    ({"out_trade_no": "A B"}, "商户订单号只能包含"),
    ({"out_trade_no": "订单1"}, "商户订单号只能包含"),
    ({"out_trade_no": "A" * 65}, "不能超过 64"),
    ({"name": "卡" * 42 + "ab"}, "商品名称过长"),  # 128 bytes
    ({"type": "paypal"}, "不支持的支付方式"),
    ({"type": None}, "缺少参数：支付方式"),
    ({"return_url": None}, "缺少参数：跳转地址"),
    ({"notify_url": "ftp://x/"}, "异步通知地址"),
    ({"money": None}, "缺少参数：金额"),
]


def test_refusals_are_chinese_pages_and_create_nothing(demo_gateway, notify_receiver):
    for fields, reason in REFUSED:
        params = signed_request(demo_gateway, notify_receiver, **fields)
        page = requests.get(submit_url(demo_gateway, params), timeout=10)
        assert page.status_code == 400, fields
        assert reason in page.text and "支付请求无效" in page.text, (fields, page.text)
    good = signed_request(demo_gateway, notify_receiver)
    for params, reason in [
        ({**good, "sign": hand_sign(good, "wrong-key")}, "签名校验失败"),
        ({**good, "money": "1.00"}, "签名校验失败"),  # tampered after signing
        ({k: v for k, v in good.items() if k != "sign"}, "缺少签名"),
        ({**signed_request(demo_gateway, notify_receiver, pid="9999")}, "商户不存在"),
        ({**good, "sign_type": "RSA"}, "sign_type"),
    ]:
        page = requests.get(submit_url(demo_gateway, params), timeout=10)
        assert page.status_code == 400 and reason in page.text, (params, page.text)
    assert trades() == []
    assert notify_receiver.requests == []


def test_name_of_exactly_127_bytes_is_accepted(demo_gateway, notify_receiver):
    name = "卡" * 42 + "a"
    assert len(name.encode()) == 127
    page = requests.get(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver, name=name)),
                        timeout=10)
    assert page.status_code == 200 and name in page.text


# --- mapi.php and api.php ------------------------------------------------------

def mapi(gateway, params):
    answer = requests.post(gateway.url("mapi.php"), data=params, timeout=10)
    assert answer.status_code == 200
    return answer.json()


def test_mapi_answers_a_pay_url_or_a_qr_code(demo_gateway, notify_receiver):
    answer = mapi(demo_gateway, signed_request(demo_gateway, notify_receiver, clientip="1.2.3.4",
                                               device="mobile", return_url=None))
    assert answer["code"] == 1 and answer["payurl"].startswith(demo_gateway.base_url) and "qrcode" not in answer
    paid = demo_gateway.pay(answer["payurl"])
    assert paid.status_code == 303 and urlsplit(paid.headers["Location"]).path.endswith(answer["trade_no"])
    assert len(notify_receiver.requests) == 1
    assert query(demo_gateway, trade_no=answer["trade_no"])["status"] == 1

    qr = mapi(demo_gateway, signed_request(demo_gateway, notify_receiver, clientip="1.2.3.4", type="wxpay",
                                           out_trade_no="K2"))
    assert qr["code"] == 1 and qr["qrcode"].startswith(demo_gateway.base_url) and "payurl" not in qr
    assert trades()[1].client_ip == "1.2.3.4"

    demo_gateway.app.config["DEMO_GATEWAY_URL"] = "https://pay.example.com/demopay"  # behind a proxy
    public = mapi(demo_gateway, signed_request(demo_gateway, notify_receiver, clientip="1.2.3.4",
                                               out_trade_no="K3"))
    assert public["payurl"] == f"https://pay.example.com/demopay/pay/{public['trade_no']}"


def test_mapi_refusals_are_negative_codes(demo_gateway, notify_receiver):
    no_ip = mapi(demo_gateway, signed_request(demo_gateway, notify_receiver))
    assert no_ip["code"] < 0 and "clientip" in no_ip["msg"]
    forged = signed_request(demo_gateway, notify_receiver, clientip="1.2.3.4")
    bad = mapi(demo_gateway, {**forged, "money": "0.01"})
    assert bad["code"] < 0 and "签名" in bad["msg"]
    device = mapi(demo_gateway, signed_request(demo_gateway, notify_receiver, clientip="1.2.3.4", device="tv"))
    assert device["code"] < 0 and "设备" in device["msg"]
    by_get = requests.get(demo_gateway.url("mapi.php"), params=forged, timeout=10).json()
    assert by_get["code"] < 0 and "POST" in by_get["msg"]
    assert trades() == []


def test_query_api_needs_the_merchant_key(demo_gateway, notify_receiver):
    demo_gateway.open_pay_page(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    assert query(demo_gateway, out_trade_no="K20261201A1", key="wrong") == {"code": -1, "msg": "商户密钥错误"}
    assert query(demo_gateway, out_trade_no="K20261201A1", pid="1")["msg"] == "商户不存在（pid 错误）"
    assert query(demo_gateway, out_trade_no="nope")["code"] == -1
    merchant = requests.get(demo_gateway.url("api.php"), timeout=10,
                            params={"act": "query", "pid": demo_gateway.pid, "key": demo_gateway.key}).json()
    assert merchant["code"] == 1 and merchant["pid"] == "1001" and demo_gateway.key not in str(merchant)


# --- notify retries (injected clock: the sweep is told what time it is) -------

def test_notify_is_retried_with_backoff_until_the_answer_contains_success(demo_gateway, notify_receiver):
    notify_receiver.answers = ["fail", "<html>error</html>", "SUCCESS", "ok: success"]
    demo_gateway.pay(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    gaps = []
    with demo_gateway.app.app_context():
        for sent in (1, 2, 3):
            trade = db.session.scalar(sa.select(DemoPayTrade))
            assert trade.notify_attempts == sent and trade.notified_at is None
            assert len(notify_receiver.requests) == sent
            gaps.append((trade.notify_next_at - trade.notify_last_at).total_seconds())
            # Not yet due: nothing is sent.
            assert demopay.retry_due_notifies(db.session, now=trade.notify_next_at - timedelta(seconds=1)) == 0
            assert len(notify_receiver.requests) == sent
            assert demopay.retry_due_notifies(db.session, now=trade.notify_next_at) == 1
        trade = db.session.scalar(sa.select(DemoPayTrade))
        db.session.refresh(trade)
        assert trade.notified_at is not None and trade.notify_next_at is None and trade.notify_attempts == 4
        assert "success" in trade.notify_last_answer
        assert demopay.retry_due_notifies(db.session, now=trade.notify_last_at + timedelta(days=1)) == 0
    assert gaps == [15, 60, 180]  # growing backoff
    assert len(notify_receiver.requests) == 4
    first = notify_receiver.fields(0)
    assert all(notify_receiver.fields(n) == first for n in range(4))
    assert_signed_result(first, demo_gateway.key)


def test_an_attempt_is_made_once_and_the_gateway_gives_up_after_the_last(demo_gateway, notify_receiver):
    notify_receiver.answers = ["fail"]
    demo_gateway.pay(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    with demo_gateway.app.app_context():
        trade = db.session.scalar(sa.select(DemoPayTrade))
        merchant = demopay.configured_merchant()
        # A duplicated or re-run job for an attempt already made sends nothing.
        assert demopay.deliver_notify(db.session, trade.id, 1, merchant) is None
        assert len(notify_receiver.requests) == 1
        for _ in range(20):
            db.session.refresh(trade)
            if trade.notify_next_at is None:
                break
            demopay.retry_due_notifies(db.session, now=trade.notify_next_at)
        db.session.refresh(trade)
    attempts = len(demopay.NOTIFY_BACKOFF_SECONDS) + 1
    assert trade.notify_attempts == attempts and trade.notified_at is None and trade.notify_next_at is None
    assert len(notify_receiver.requests) == attempts
    assert trade.notify_last_answer == "HTTP 200：fail"


def test_unreachable_merchant_is_an_attempt_with_a_reason(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver, notify_url="http://127.0.0.1:9/notify")
    answer = demo_gateway.pay(submit_url(demo_gateway, params))
    assert answer.status_code == 303  # the buyer still goes back to the merchant
    trade = trades()[0]
    assert trade.notify_attempts == 1 and trade.notify_next_at is not None
    assert trade.notify_last_answer.startswith("请求失败")


@pytest.mark.backends("sqlite")
def test_pay_page_fits_a_phone(demo_gateway, notify_receiver, chromium):
    context = chromium.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = context.new_page()
    return_url = f"{notify_receiver.url}/pay/return/1"
    try:
        name = "网易一卡通 100元 超长的商品名称用来检查换行" * 2
        page.goto(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver, name=name,
                                                          return_url=return_url)))
        assert page.get_by_text("演示支付，不会真实扣款").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        button = page.get_by_role("button", name="确认支付").bounding_box()
        assert button["width"] >= 300 and button["height"] >= 40
        page.get_by_role("button", name="确认支付").click()
        page.wait_for_url(return_url + "?*")
    finally:
        context.close()
    merchant_side = [(path, query) for path, query in notify_receiver.requests if path != "/favicon.ico"]
    assert [path for path, _ in merchant_side] == ["/pay/notify/1", "/pay/return/1"]
    assert dict(merchant_side[0][1]) == dict(merchant_side[1][1])


@pytest.mark.backends("postgresql")  # RQ workers run beside PostgreSQL in production
def test_notify_and_its_retry_run_on_a_real_rq_worker(demo_gateway, notify_receiver, redis_url, db_url):
    """Production path: 确认支付 only queues the notify; `rq worker` processes
    send it, and the schedule's sweep job starts the retry."""
    gateway, queue_name, gateway_env = _gateway_on_rq(demo_gateway, redis_url)
    notify_receiver.answers = ["fail", "success"]
    paid = demo_gateway.pay(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    assert paid.status_code == 303
    assert notify_receiver.requests == [] and trades()[0].notify_attempts == 0  # queued, not sent

    result = burst_worker(gateway, db_url, redis_url, queue_name, **gateway_env)
    assert result.returncode == 0, result.stderr
    assert len(notify_receiver.requests) == 1
    db.session.expire_all()
    (trade,) = trades()
    assert trade.notify_attempts == 1 and trade.notified_at is None

    with gateway.app_context():
        db.session.execute(sa.update(DemoPayTrade).values(notify_next_at=trade.notify_next_at - timedelta(seconds=15)))
        db.session.commit()
        queue.enqueue("jobs.demopay.retry_notifies")
    result = burst_worker(gateway, db_url, redis_url, queue_name, **gateway_env)
    assert result.returncode == 0, result.stderr
    assert len(notify_receiver.requests) == 2
    assert notify_receiver.fields(0) == notify_receiver.fields(1)
    assert_signed_result(notify_receiver.fields(1), demo_gateway.key)
    db.session.expire_all()
    (trade,) = trades()
    assert trade.notify_attempts == 2 and trade.notified_at is not None


def _gateway_on_rq(demo_gateway, redis_url):
    """The gateway's jobs go to a fresh RQ queue; the settings its workers need."""
    queue_name = f"kamen-test-{uuid.uuid4().hex[:8]}"
    demo_gateway.app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    env = {"KAMEN_DEMO_GATEWAY": "1", "KAMEN_DEMO_GATEWAY_PID": demo_gateway.pid,
           "KAMEN_DEMO_GATEWAY_KEY": demo_gateway.key}
    return demo_gateway.app, queue_name, env


@pytest.mark.backends("postgresql")  # RQ workers run beside PostgreSQL in production
def test_worker_killed_while_notifying_loses_no_retry(demo_gateway, notify_receiver, redis_url, db_url):
    """kill -9 of the worker in the middle of a notify: the attempt was
    committed before sending, so the next one is planned and the sweep sends it."""
    gateway, queue_name, gateway_env = _gateway_on_rq(demo_gateway, redis_url)
    notify_receiver.answers = [None, "success"]  # the first request hangs
    demo_gateway.pay(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    worker = subprocess.Popen(
        # SimpleWorker runs the job in the worker process itself, so SIGKILL stops the send.
        [rq_command(), "worker", "--burst", "-w", "rq.worker.SimpleWorker", "--url", redis_url, queue_name],
        cwd=ROOT, env=worker_env(gateway, db_url, redis_url, queue_name, **gateway_env),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not notify_receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(notify_receiver.requests) == 1  # the worker is waiting for the answer
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    notify_receiver.release.set()
    db.session.expire_all()
    (trade,) = trades()
    assert trade.notify_attempts == 1 and trade.notified_at is None
    assert trade.notify_next_at == trade.notify_last_at + timedelta(seconds=demopay.NOTIFY_BACKOFF_SECONDS[0])

    with gateway.app_context():
        db.session.execute(sa.update(DemoPayTrade).values(notify_next_at=trade.notify_last_at))
        db.session.commit()
        queue.enqueue("jobs.demopay.retry_notifies")
    result = burst_worker(gateway, db_url, redis_url, queue_name, **gateway_env)
    assert result.returncode == 0, result.stderr
    assert len(notify_receiver.requests) == 2
    db.session.expire_all()
    (trade,) = trades()
    assert trade.notify_attempts == 2 and trade.notified_at is not None


def test_concurrent_confirms_pay_once_and_notify_once(demo_gateway, notify_receiver):
    params = signed_request(demo_gateway, notify_receiver)
    buyers = [demo_gateway.open_pay_page(submit_url(demo_gateway, params)) for _ in range(8)]
    trade_no = trades()[0].trade_no
    assert len(trades()) == 1

    def press(buyer):
        http, page = buyer
        return http.post(demo_gateway.url(f"pay/{trade_no}/confirm"), data={"csrf_token": csrf_token(page.text)},
                         allow_redirects=False, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(press, buyers))
    assert [a.status_code for a in answers] == [303] * 8
    assert len({a.headers["Location"] for a in answers}) == 1
    assert len(notify_receiver.requests) == 1
    assert trades()[0].notify_attempts == 1


def test_concurrent_submits_of_one_order_make_one_trade(demo_gateway, notify_receiver):
    url = submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver))
    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(lambda _: requests.get(url, timeout=30), range(8)))
    assert [p.status_code for p in pages] == [200] * 8
    assert len({p.url for p in pages}) == 1
    assert len(trades()) == 1


def test_due_retries_can_be_sent_by_a_command(demo_gateway, notify_receiver, runner):
    assert runner.invoke(args=["retry-demo-notifies"]).exit_code != 0  # the shop without the gateway
    notify_receiver.answers = ["fail", "success"]
    demo_gateway.pay(submit_url(demo_gateway, signed_request(demo_gateway, notify_receiver)))
    gateway_cli = demo_gateway.app.test_cli_runner()
    with demo_gateway.app.app_context():  # the command runs in the app context it finds
        assert "0 个" in gateway_cli.invoke(args=["retry-demo-notifies"]).output  # not due yet
        db.session.execute(sa.update(DemoPayTrade).values(notify_next_at=DemoPayTrade.notify_last_at))
        db.session.commit()
        assert "1 个" in gateway_cli.invoke(args=["retry-demo-notifies"]).output
    assert len(notify_receiver.requests) == 2
    assert trades()[0].notified_at is not None


@pytest.mark.backends("sqlite")
def test_embedded_mode_sends_the_notify_from_the_job_pool(demo_gateway, notify_receiver):
    demo_gateway.app.config["JOBS_SYNC"] = False  # as ./scripts/run serves it: jobs on a thread pool
    params = {**signed_request(demo_gateway, notify_receiver), "sign_type": ""}  # empty means MD5
    answer = demo_gateway.pay(submit_url(demo_gateway, params))
    assert answer.status_code == 303
    deadline = time.monotonic() + 10
    while trades()[0].notified_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        db.session.expire_all()
    assert trades()[0].notified_at is not None
    assert len(notify_receiver.requests) == 1
    assert_signed_result(notify_receiver.fields(), demo_gateway.key)
