"""A 分站's ticket forwarded to a real second kamen (its 主站) over HTTP, answered in the
主站's own back office, and the signed callback bringing the answer back."""
import json
from base64 import b64encode
from datetime import timedelta
from decimal import Decimal

import requests
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import DeliveryType, StockMode, Supplier, SupplierKind, Ticket, TicketEvent, TicketStatus
from kamen.secretbox import encrypt
from kamen.services import aftersales, order_lookup, stations, sweeper, ticket_forwarding
from kamen.suppliers.kamen_signing import sign_headers
from tests.helpers import AuthActions, CSRFClient, form_values, make_product
from tests.ticket_helpers import image_bytes, last_ticket, paid_order, png_claiming, ticket_form


def _supplier(main):
    supplier = Supplier(code="main", name="主站", kind=SupplierKind.KAMEN, base_url=main["url"],
                        app_id=main["app_id"], secret_encrypted=encrypt(main["secret"]),
                        markup_percent=Decimal("10"))
    db.session.add(supplier)
    db.session.commit()
    with main["app"].app_context():  # the 分站's balance there pays for the orders it forwards
        stations.top_up(db.session, stations.station_by_app_id(db.session, main["app_id"]), "100")
    return supplier


def _topup(supplier):
    """The 主站's QB10 (its 分站 price ¥9.79), which the 主站 delivers by hand: the order stays with it."""
    return make_product(supplier_id=supplier.id, code="self.QB10", name="腾讯Q币10元", stock_mode=StockMode.UNLIMITED,
                        cost_price=Decimal("9.79"), sale_price=Decimal("10.00"),
                        delivery_type=DeliveryType.TOPUP,
                        buyer_fields=[{"key": "account", "label": "QQ号", "pattern": "", "hint": ""}])


def _main_admin(main):
    """The 主站's back office, logged in through its real form."""
    app = main["app"]
    app.test_client_class = CSRFClient
    client = app.test_client()
    with app.app_context():
        AuthActions(client, app).login()
    return client


def _main_tickets(main):
    with main["app"].app_context():
        rows = db.session.scalars(sa.select(Ticket).order_by(Ticket.id)).all()
        return [(t.id, t.ticket_no, t.station_order_no, t.station_ticket_no, t.status, t.callback_url) for t in rows]


def test_ticket_goes_to_the_main_station_and_its_answer_comes_back(app, client, auth, main_station, live_server):
    supplier = _supplier(main_station)
    order = paid_order(client, _topup(supplier), f_account="123456")
    # The buyer opens the ticket on our site over HTTP (its address is where the 主站 calls back),
    # coming from the signed order link, as from a bookmark.
    buyer = requests.Session()
    link = f"{live_server}/order/{order.order_no}?t={order_lookup.link_token(order.order_no)}"
    assert buyer.get(link).status_code == 200
    form = form_values(buyer.get(f"{live_server}/order/{order.order_no}/ticket").text)
    shot = image_bytes("PNG", (64, 48))
    response = buyer.post(f"{live_server}/order/{order.order_no}/ticket", allow_redirects=False,
                          data={**form, "kind": "not_received", "text": "充值 10 Q币一直没到账"},
                          files={"shots": ("账单截图.png", shot, "image/png")})
    assert response.status_code == 302, response.text
    ours = last_ticket()
    assert (ours.status, ours.forward_state) == (TicketStatus.SUPPLIER, "sent"), ours.forward_error
    [(main_id, main_no, station_order_no, station_ticket_no, status, callback)] = _main_tickets(main_station)
    assert (station_order_no, station_ticket_no, status) == (order.order_no, ours.ticket_no, TicketStatus.OPEN)
    assert ours.upstream_ticket_no == main_no and callback == f"{live_server}/api/upstream-callbacks/tickets"
    with main_station["app"].app_context():  # the buyer's screenshot went with it, byte for byte
        [attached] = aftersales.attachments(db.session, main_id)
        assert aftersales.shot_bytes(db.session, attached) == shot and (attached.width, attached.height) == (64, 48)

    # The 主站 admin sees it in the queue, with the 分站 and its order number, and answers.
    main_admin = _main_admin(main_station)
    queue = main_admin.get("/admin/tickets").text
    assert main_no in queue and "测试分站" in queue and order.order_no in queue
    assert main_admin.post(f"/admin/tickets/{main_id}/note", data={"text": "主站内部：查上游流水"}).status_code == 302
    assert main_admin.post(f"/admin/tickets/{main_id}/reply", data={"text": "已查到，正在补充值"}).status_code == 302
    db.session.expire_all()
    events = db.session.scalars(sa.select(TicketEvent).where(TicketEvent.ticket_id == ours.id)).all()
    replies = [e.message for e in events if e.kind == "supplier_reply"]
    assert replies == ["货源答复：已查到，正在补充值"]  # the internal note stayed on the 主站
    assert all(not e.public for e in events if e.author == "supplier")  # our admin decides what the buyer sees
    assert last_ticket().status is TicketStatus.PROCESSING and last_ticket().upstream_status == "processing"

    # We pass on what the buyer added; the 主站 admin sees it on its ticket.
    auth.login()
    assert client.post(f"/admin/tickets/{ours.id}/to_supplier", data={"text": "买家补充：QQ号确认无误"}
                       ).status_code == 302
    assert "分站补充：买家补充：QQ号确认无误" in main_admin.get(f"/admin/tickets/{main_id}").text
    # A message whose job never ran (the queue was away) is found by the sweeper, and sent once.
    aftersales.record(db.session, ours.id, "to_supplier", "转告货源：补发时请附流水号", author="admin", public=False,
                      data={"text": "补发时请附流水号", "state": "pending"})
    db.session.commit()
    assert sweeper.sweep(db.session).enqueued == [("tickets", ours.id)]
    assert sweeper.sweep(db.session).enqueued == []
    assert main_admin.get(f"/admin/tickets/{main_id}").text.count("分站补充：补发时请附流水号") == 1
    assert main_admin.post(f"/admin/tickets/{main_id}/reissue", data={"codes": "QB-RECHARGE-OK 流水号 778899"}
                           ).status_code == 302
    ours = last_ticket()
    assert ours.upstream_status == "resolved" and ours.forward_state == "sent"
    page = client.get(f"/admin/tickets/{ours.id}").text
    assert "QB-RECHARGE-OK 流水号 778899" in page and "货源已处理（补发卡密）" in page
    # A message after the 主站 closed its ticket is refused there, and we say so.
    client.post(f"/admin/tickets/{ours.id}/to_supplier", data={"text": "还有一个问题"})
    assert "补充未送达货源" in client.get(f"/admin/tickets/{ours.id}").text and last_ticket().forward_state == "sent"
    # Our admin passes the codes on; the buyer sees them.
    client.post(f"/admin/tickets/{ours.id}/reissue", data={"codes": "QB-RECHARGE-OK 流水号 778899"})
    assert "QB-RECHARGE-OK" in client.get(f"/order/{order.order_no}/tickets/{ours.ticket_no}").text

    # Asking again (as after a lost callback) adds nothing twice.
    def supplier_replies():
        return db.session.scalars(sa.select(TicketEvent.message).where(
            TicketEvent.ticket_id == ours.id, TicketEvent.kind == "supplier_reply").order_by(TicketEvent.id)).all()

    assert supplier_replies() == ["货源答复：已查到，正在补充值", "货源答复：已为您补发，请在下方查看新的卡密/发货内容"]
    assert ticket_forwarding.refresh_from_upstream(db.session, ours.id) == "货源暂无新的答复"
    assert len(supplier_replies()) == 2


def test_callbacks_must_be_signed_by_the_supplier(app, client, main_station):
    supplier = _supplier(main_station)
    body = b'{"ticket": {"ticket_no": "S1", "status": "resolved", "reissued": "FORGED"}}'
    path = "/api/upstream-callbacks/tickets"
    forged = sign_headers(supplier.app_id, "not-the-secret", "POST", path, body)
    response = client.post(path, data=body, headers=forged, content_type="application/json", csrf=False)
    assert response.status_code == 401 and response.json["error"]["code"] == "bad_signature"
    signed = sign_headers(supplier.app_id, main_station["secret"], "POST", path, body)
    response = client.post(path, data=body, headers=signed, content_type="application/json", csrf=False)
    assert response.status_code == 404  # signed, but no ticket of ours has that number
    response = client.post(path, data=body, headers=signed, content_type="application/json", csrf=False)
    assert response.json["error"]["code"] == "nonce_reused"


def test_a_station_ticket_with_a_bad_screenshot_is_refused_with_the_reason(app, client, main_station):
    """The 主站 checks a 分站's screenshots as it checks its own buyers' uploads."""
    main = main_station

    def create(screenshots):
        body = json.dumps({"order_no": "F1", "ticket_no": "S9", "kind": "invalid_code", "text": "卡密无效",
                           "screenshots": screenshots}).encode()
        path = "/api/upstream/v1/tickets"
        headers = {**sign_headers(main["app_id"], main["secret"], "POST", path, body),
                   "Content-Type": "application/json"}
        return requests.post(main["url"] + path, data=body, headers=headers, timeout=10)

    for screenshots, reason in (
        ([{"content_type": "image/png", "data": b64encode(b"not an image").decode()}], "不是有效的图片文件"),
        ([{"data": "%%%"}], "base64"),
        ([{"data": b64encode(png_claiming(40000, 40000)).decode()}], "尺寸异常"),
        ("x", "screenshots 应为数组"),
    ):
        response = create(screenshots)
        assert response.status_code == 400 and reason in response.json()["error"]["message"], response.text
    assert _main_tickets(main) == []  # nothing half-made
    good = create([{"content_type": "image/png", "data": b64encode(image_bytes("PNG")).decode()}])
    assert good.status_code == 201
    with main["app"].app_context():
        [(main_id, *_)] = _main_tickets(main)
        assert len(aftersales.attachments(db.session, main_id)) == 1


def test_a_failed_forward_is_recorded_and_retried_then_handed_to_the_admin(app, client, auth, main_station):
    supplier = _supplier(main_station)
    order = paid_order(client, _topup(supplier), f_account="123456")
    db.session.get(Supplier, supplier.id).secret_encrypted = encrypt("wrong-secret")  # the key changed since
    db.session.commit()
    client.post(f"/order/{order.order_no}/ticket", content_type="multipart/form-data",
                data=ticket_form(kind="not_received", text="一直没到账"))
    ticket = last_ticket()
    assert ticket.forward_state == "pending" and ticket.forward_attempts == 1 and "签名错误" in ticket.forward_error
    assert _main_tickets(main_station) == []
    for _ in range(ticket_forwarding.MAX_ATTEMPTS - 1):  # the sweeper's retries, each once its pause is over
        due = last_ticket().forward_next_at
        assert sweeper.sweep(db.session, now=due - timedelta(seconds=1)).enqueued == []  # not yet
        assert sweeper.sweep(db.session, now=due).enqueued == [("tickets", ticket.id)]
    ticket = last_ticket()
    assert ticket.forward_state == "failed" and ticket.forward_attempts == ticket_forwarding.MAX_ATTEMPTS
    auth.login()
    page = client.get(f"/admin/tickets/{ticket.id}").text
    assert "转交货源多次失败" in page and "重试转交" in page

    # The admin fixes the key and retries.
    db.session.get(Supplier, supplier.id).secret_encrypted = encrypt(main_station["secret"])
    db.session.commit()
    assert client.post(f"/admin/tickets/{ticket.id}/retry_forward").status_code == 302
    assert last_ticket().forward_state == "sent" and len(_main_tickets(main_station)) == 1


def test_forwarding_runs_on_a_real_rq_worker(app, client, main_station, redis_url, db_url):
    import uuid

    from tests.helpers import burst_worker

    supplier = _supplier(main_station)
    order = paid_order(client, _topup(supplier), f_account="123456")
    queue_name = f"kamen-tickets-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    response = client.post(f"/order/{order.order_no}/ticket", content_type="multipart/form-data",
                           data=ticket_form(kind="invalid_code", text="卡密无效"))
    assert response.status_code == 302
    ticket = last_ticket()
    assert ticket.forward_state == "pending" and ticket.job_enqueued_at is not None  # waits in the queue
    assert _main_tickets(main_station) == []
    result = burst_worker(app, db_url, redis_url, queue_name)
    assert result.returncode == 0, result.stderr
    ticket = last_ticket()
    assert ticket.forward_state == "sent" and ticket.job_token is None
    [(_id, main_no, station_order_no, *_rest)] = _main_tickets(main_station)
    assert (main_no, station_order_no) == (ticket.upstream_ticket_no, order.order_no)
