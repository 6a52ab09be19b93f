"""售后工单 through the shop and the back office: open, answer, outcomes, responsibility, deadlines."""
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen.extensions import db
from kamen.models import (
    Coupon,
    DeliveryType,
    Notification,
    Order,
    OrderStatus,
    Outcome,
    Responsibility,
    StockMode,
    Supplier,
    SupplierKind,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketStatus,
)
from kamen.services import aftersales
from kamen.timeutil import utcnow
from tests.helpers import make_product
from tests.order_helpers import make_card_product
from tests.ticket_helpers import last_ticket, paid_order, ticket_form


def _open(client, order, **form):
    return client.post(f"/order/{order.order_no}/ticket", data=ticket_form(**form),
                       content_type="multipart/form-data")


def _events(ticket_id):
    return db.session.scalars(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                              .order_by(TicketEvent.id)).all()


def _topup_from(supplier, **kwargs):
    return make_product(supplier_id=supplier.id, stock_mode=StockMode.UNLIMITED, delivery_type=DeliveryType.TOPUP,
                        buyer_fields=[{"key": "account", "label": "QQ号", "pattern": "", "hint": ""}], **kwargs)


def _manual_supplier(name="老王货源"):
    supplier = Supplier(code="wang", name=name, kind=SupplierKind.MANUAL)
    db.session.add(supplier)
    db.session.commit()
    return supplier


def test_buyer_opens_a_ticket_follows_it_and_gets_reissued_codes(app, client, auth):
    product = make_card_product(codes=3, name="网易一卡通 50元")
    order = paid_order(client, product)
    assert order.status is OrderStatus.DELIVERED
    page = client.get(f"/order/{order.order_no}").text
    assert "申请售后" in page

    response = _open(client, order)
    assert response.status_code == 302
    ticket = last_ticket()
    # Our own card codes: the shop answers, nobody upstream is asked.
    assert (ticket.kind, ticket.responsibility, ticket.status) == (
        TicketKind.INVALID_CODE, Responsibility.SHOP, TicketStatus.OPEN)
    assert ticket.forward_state == "" and ticket.contact == order.contact
    assert ticket.first_response_due - ticket.created_at == timedelta(hours=2)
    assert ticket.resolve_due - ticket.created_at == timedelta(hours=24)
    status_page = client.get(response.location).text
    assert "待处理" in status_page and "卡密提示已被使用" in status_page and "本店直接处理" in status_page

    # One open ticket per order: the form says so and nothing is added.
    again = _open(client, order, text="再提交一次试试")
    assert again.status_code == 400 and "已有处理中的售后工单" in again.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 1

    auth.login()
    assert client.post(f"/admin/tickets/{ticket.id}/note", data={"text": "内部：核对卡密批次"}).status_code == 302
    assert client.post(f"/admin/tickets/{ticket.id}/reply", data={"text": "您好，正在核实，请稍候"}).status_code == 302
    ticket = last_ticket()
    assert ticket.status is TicketStatus.PROCESSING and ticket.first_responded_at is not None
    buyer_view = client.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").text
    assert "正在核实" in buyer_view and "核对卡密批次" not in buyer_view
    admin_view = client.get(f"/admin/tickets/{ticket.id}").text
    assert "核对卡密批次" in admin_view and "正在核实" in admin_view
    assert ticket.ticket_no in client.get(f"/admin/orders/{order.id}").text
    # The buyer adds to it; the admin sees it.
    assert client.post(f"/order/{order.order_no}/tickets/{ticket.ticket_no}/reply",
                       data={"text": "卡密截图里第二行"}).status_code == 302
    assert "卡密截图里第二行" in client.get(f"/admin/tickets/{ticket.id}").text

    response = client.post(f"/admin/tickets/{ticket.id}/reissue", data={"codes": "NEW-CODE-1 PWD-999"})
    assert response.status_code == 302
    ticket = last_ticket()
    assert (ticket.status, ticket.outcome) == (TicketStatus.RESOLVED, Outcome.REISSUE)
    assert "NEW-CODE-1" not in ticket.reissued_encrypted  # stored encrypted
    assert "NEW-CODE-1 PWD-999" in client.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").text
    assert "NEW-CODE-1 PWD-999" in client.get(f"/order/{order.order_no}").text
    # Every status change left exactly one event; the internal note stays internal.
    events = _events(ticket.id)
    assert [e.kind for e in events] == ["created", "routed", "note", "reply", "buyer_reply", "resolved"]
    assert [e.public for e in events] == [True, True, False, True, True, True]
    assert events[3].data == {"from": "open", "to": "processing"}
    # Closed: the next problem gets a new ticket.
    assert _open(client, order, kind="other", text="另一个问题").status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 2


def test_query_leads_to_the_form_and_strangers_see_nothing(app, client):
    product = make_card_product(codes=2)
    order = paid_order(client, product, contact="13912345678")
    assert _open(client, order).status_code == 302
    ticket = last_ticket()

    stranger = app.test_client()  # another browser, no 查单 yet
    assert stranger.get(f"/order/{order.order_no}/ticket").status_code == 404
    assert stranger.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").status_code == 404

    buyer_elsewhere = app.test_client()
    assert buyer_elsewhere.post("/query", data={"order_no": order.order_no, "secret": "13900000000",
                                                "next": "ticket"}).status_code == 400
    response = buyer_elsewhere.post("/query", data={"order_no": order.order_no, "secret": "13912345678",
                                                    "next": "ticket"})
    assert response.status_code == 302 and response.location.endswith(f"/order/{order.order_no}/ticket")
    form = buyer_elsewhere.get(response.location).text
    assert "已有处理中的售后工单" in form  # the open ticket is found from 查单 too
    assert ticket.ticket_no in buyer_elsewhere.get(f"/order/{order.order_no}").text


def test_only_paid_orders_get_tickets_and_bad_input_is_refused(app, client):
    product = make_card_product(codes=2)
    response = client.post(f"/p/{product.id}/buy", data={"quantity": "1", "contact": "13800138000"})
    order = db.session.scalars(sa.select(Order)).one()
    assert "未付款" in client.get(f"/order/{order.order_no}/ticket").text
    assert _open(client, order).status_code == 400
    assert response.status_code == 302

    order = paid_order(client, product)
    for form, message in (({"kind": "nonsense"}, "请选择问题类型"), ({"text": "短"}, "至少 4 个字"),
                          ({"text": "长" * 2001}, "2000 字以内")):
        response = _open(client, order, **form)
        assert response.status_code == 400 and message in response.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 0


def test_responsibility_follows_the_type_the_supplier_and_the_settings(app, client, auth):
    supplier = _manual_supplier()
    product = _topup_from(supplier, name="QQ会员月卡")
    order = paid_order(client, product, f_account="123456")

    assert _open(client, order, kind="not_received", text="充值后一直没到账").status_code == 302
    ticket = last_ticket()
    assert (ticket.responsibility, ticket.status, ticket.forward_state) == (
        Responsibility.SUPPLIER, TicketStatus.SUPPLIER, "manual")
    assert ticket.supplier_id == supplier.id
    auth.login()
    page = client.get(f"/admin/tickets/{ticket.id}").text
    # The prepared message carries what the supplier needs to find the order.
    assert ticket.supplier_order_key == order.order_no  # what the supplier knows it by
    for part in (f"订单号：{order.order_no}", "QQ会员月卡", f"编码 {product.code}", "account：123456", "充值后一直没到账"):
        assert part in page
    assert client.post(f"/admin/tickets/{ticket.id}/forwarded").status_code == 302
    assert client.post(f"/admin/tickets/{ticket.id}/supplier_answer",
                       data={"text": "已补充值，请买家查收"}).status_code == 302
    ticket = last_ticket()
    assert ticket.status is TicketStatus.PROCESSING and ticket.forward_state == "sent"
    assert "已补充值" not in client.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").text  # internal
    assert client.post(f"/admin/tickets/{ticket.id}/answer", data={"note": "货源已补充值"}).status_code == 302

    # 充错账号 is the buyer's: the guide says what the shop can and cannot do.
    assert _open(client, order, kind="wrong_account", text="账号填错了一位数").status_code == 302
    ticket = last_ticket()
    assert ticket.responsibility is Responsibility.BUYER and ticket.supplier_id is None
    page = client.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").text
    assert "无法撤回" in page and "本店不能" in page
    client.post(f"/admin/tickets/{ticket.id}/reject", data={"reason": "账号为买家填写"})

    # The admin makes 其他 the supplier's too.
    form = {f"responsibility_{k.value}": "supplier" for k in TicketKind}
    form.update({f"first_hours_{k.value}": "1" for k in TicketKind})
    form.update({f"resolve_hours_{k.value}": "12" for k in TicketKind})
    form["coupon_days"] = "7"
    bad = client.post("/admin/settings/aftersales", data={**form, "resolve_hours_other": "0"})
    assert bad.status_code == 400 and "1-720" in bad.text
    assert aftersales.config(db.session)["responsibility"]["other"] == "shop"  # nothing saved
    assert client.post("/admin/settings/aftersales", data=form).status_code == 302
    assert _open(client, order, kind="other", text="其他问题请货源看看").status_code == 302
    ticket = last_ticket()
    assert ticket.responsibility is Responsibility.SUPPLIER
    assert ticket.first_response_due - ticket.created_at == timedelta(hours=1)


def test_refund_coupon_and_reject_outcomes(app, client, auth):
    product = make_card_product(codes=5, sale_price=Decimal("30.00"))
    auth.login()
    first = paid_order(client, product)
    _open(client, first)
    ticket = last_ticket()
    assert client.post(f"/admin/tickets/{ticket.id}/refund", data={"reason": ""}).status_code == 302
    assert last_ticket().is_open  # refused: no reason
    client.post(f"/admin/tickets/{ticket.id}/refund", data={"reason": "卡密确认无效"})
    ticket = last_ticket()
    assert (ticket.status, ticket.outcome) == (TicketStatus.RESOLVED, Outcome.REFUND)
    order = db.session.get(Order, first.id)
    assert order.status is OrderStatus.REFUNDED and ticket.ticket_no in order.refund_reason
    assert "已退款" in client.get(f"/order/{first.order_no}/tickets/{ticket.ticket_no}").text

    second = paid_order(client, product)
    _open(client, second)
    ticket = last_ticket()
    assert "金额" in client.post(f"/admin/tickets/{ticket.id}/coupon", data={"amount": "abc"},
                               follow_redirects=True).text
    client.post(f"/admin/tickets/{ticket.id}/coupon", data={"amount": "5"})
    ticket = last_ticket()
    coupon = db.session.get(Coupon, ticket.coupon_id)
    assert (ticket.outcome, coupon.value, coupon.max_uses) == (Outcome.COUPON, Decimal("5.00"), 1)
    assert coupon.valid_to - coupon.valid_from == timedelta(days=30)
    assert coupon.code in client.get(f"/order/{second.order_no}/tickets/{ticket.ticket_no}").text
    # The buyer can use it once.
    third = paid_order(client, product, coupon=coupon.code)
    assert third.amount == Decimal("25.00")

    _open(client, third, kind="other", text="想换一个面值")
    ticket = last_ticket()
    client.post(f"/admin/tickets/{ticket.id}/reject", data={"reason": "虚拟商品售出后不支持更换"})
    ticket = last_ticket()
    assert (ticket.status, ticket.outcome_note) == (TicketStatus.REJECTED, "虚拟商品售出后不支持更换")
    page = client.get(f"/order/{third.order_no}/tickets/{ticket.ticket_no}").text
    assert "已驳回" in page and "不支持更换" in page
    # A closed ticket takes no more answers.
    response = client.post(f"/admin/tickets/{ticket.id}/reply", data={"text": "补充"}, follow_redirects=True)
    assert "工单已关闭" in response.text


def test_the_database_refuses_a_second_open_ticket(app, client):
    order = paid_order(client, make_card_product(codes=1))
    at = utcnow()
    values = dict(order_id=order.id, kind=TicketKind.OTHER, responsibility=Responsibility.SHOP,
                  status=TicketStatus.OPEN, first_response_due=at, resolve_due=at)
    db.session.add(Ticket(ticket_no="S1", **values))
    db.session.commit()
    db.session.add(Ticket(ticket_no="S2", **values))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(Ticket(ticket_no="S3", **{**values, "status": TicketStatus.RESOLVED}))
    db.session.commit()  # closed ones do not count


def test_deadlines_alert_once_each_from_the_minute_tick(app, client, auth, redis_url):
    clock = {"now": utcnow()}
    app.config["ORDER_CLOCK"] = lambda: clock["now"]
    start = clock["now"]
    queue_name = f"kamen-tickets-{uuid.uuid4().hex[:8]}"
    quick = paid_order(client, make_card_product(codes=1, name="迟迟不答"))
    answered = paid_order(client, make_card_product(codes=1, name="已经答复"))
    _open(client, quick)
    late = last_ticket()
    _open(client, answered)
    auth.login()
    client.post(f"/admin/tickets/{last_ticket().id}/reply", data={"text": "已收到"})

    from jobs.tick import every_minute
    from kamen import queue

    def tick(minutes):
        """The schedule's minute job, run here so it sees the test's clock (the queue gets its other work)."""
        clock["now"] = start + timedelta(minutes=minutes)
        app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
        try:
            every_minute()
        finally:
            app.config.update(REDIS_URL=None)

    def alerts():
        return db.session.scalars(sa.select(Notification).where(Notification.kind == "ticket_overdue")
                                  .order_by(Notification.id)).all()

    tick(119)
    assert alerts() == []
    tick(121)
    tick(122)
    notes = alerts()
    assert len(notes) == 1 and late.ticket_no in notes[0].body and "首次答复" in notes[0].body
    assert "已超时" in client.get("/admin/tickets").text
    tick(24 * 60 + 1)
    tick(24 * 60 + 2)
    notes = alerts()
    assert len(notes) == 2 and "解决" in notes[1].body
    assert late.ticket_no in notes[1].body and "已经答复" in notes[1].body  # the answered one is late to resolve
    overdue = [e.message for e in _events(late.id) if e.kind == "overdue"]
    assert overdue == ["已超过首次答复时限", "已超过解决时限"]
    app.config.update(REDIS_URL=redis_url, JOB_QUEUE=queue_name)
    queue.rq_queue().delete(delete_jobs=True)
    app.config.update(REDIS_URL=None)


def test_queue_is_sorted_by_deadline_and_filtered_by_status(app, client, auth):
    clock = {"now": utcnow()}
    app.config["ORDER_CLOCK"] = lambda: clock["now"]
    supplier = _manual_supplier()
    orders = [paid_order(client, _topup_from(supplier, name=f"商品{i}"), f_account="10001") for i in range(3)]
    # Opened in this order: 其他 (4 h to answer), 未到账 (2 h), 卡密无效 (2 h, ten minutes later).
    for order, kind, minutes in ((orders[0], "other", 0), (orders[1], "not_received", 1),
                                 (orders[2], "invalid_code", 10)):
        clock["now"] = clock["now"] + timedelta(minutes=minutes)
        response = _open(client, order, kind=kind, text="测试排序的工单")
        assert response.status_code == 302, response.text
    auth.login()
    page = client.get("/admin/tickets").text
    assert page.index("商品1") < page.index("商品2") < page.index("商品0")
    closed = last_ticket()
    client.post(f"/admin/tickets/{closed.id}/reject", data={"reason": "重复提交"})
    page = client.get("/admin/tickets").text
    assert "商品2" not in page and "商品0" in page
    page = client.get("/admin/tickets?status=rejected").text
    assert "商品2" in page and "商品0" not in page
    assert "商品2" in client.get("/admin/tickets?status=all").text
    # Embedded mode has no schedule: the queue itself raises the overdue alerts (once).
    clock["now"] += timedelta(hours=5)
    client.get("/admin/tickets")
    client.get("/admin/tickets")
    [note] = db.session.scalars(sa.select(Notification).where(Notification.kind == "ticket_overdue")).all()
    assert note.title == "2 个售后工单已超时" and "商品1" in note.body and "商品0" in note.body


@pytest.mark.backends("postgresql")
def test_double_submits_on_real_workers_open_one_ticket(app, client, db_url, tmp_path):
    """The same form sent eight times at once to two gunicorn workers: one ticket, seven clear refusals."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from kamen.services import order_lookup
    from tests.helpers import form_values, gunicorn_server

    order = paid_order(client, make_card_product(codes=1))
    with gunicorn_server(db_url, tmp_path, workers=2, threads=4) as base:
        buyer = requests.Session()
        assert buyer.get(f"{base}/order/{order.order_no}?t={order_lookup.link_token(order.order_no)}").ok
        form = form_values(buyer.get(f"{base}/order/{order.order_no}/ticket").text)
        data = {**form, "kind": "invalid_code", "text": "卡密无效，连点了好几次提交"}

        def submit(_):
            return buyer.post(f"{base}/order/{order.order_no}/ticket", data=data, allow_redirects=False)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [302] + [400] * 7, codes
    assert all("已有处理中的售后工单" in a.text for a in answers if a.status_code == 400)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 1


def test_a_buyer_adds_details_but_cannot_flood_a_ticket(app, client):
    order = paid_order(client, make_card_product(codes=1))
    _open(client, order)
    ticket = last_ticket()
    url = f"/order/{order.order_no}/tickets/{ticket.ticket_no}/reply"
    assert "请填写补充说明" in client.post(url, data={"text": "  "}).text
    for i in range(aftersales.MAX_BUYER_REPLIES):
        assert client.post(url, data={"text": f"补充 {i}"}).status_code == 302
    refused = client.post(url, data={"text": "再补充一条"})
    assert refused.status_code == 400 and "请等待客服答复" in refused.text


def test_the_buyer_closes_a_solved_ticket_and_can_open_a_new_one(app, client, auth):
    order = paid_order(client, make_card_product(codes=1))
    _open(client, order)
    ticket = last_ticket()
    page_url = f"/order/{order.order_no}/tickets/{ticket.ticket_no}"
    assert "问题已解决，关闭工单" in client.get(page_url).text
    assert client.post(f"{page_url}/close").status_code == 302
    closed = last_ticket()
    assert (closed.status, closed.outcome, closed.outcome_note) == (
        TicketStatus.RESOLVED, Outcome.ANSWERED, "买家确认问题已解决")
    page = client.get(page_url).text
    assert "买家确认问题已解决，工单已关闭" in page and "关闭工单" not in page and "再次申请售后" in page
    again = client.post(f"{page_url}/close")
    assert again.status_code == 400 and "工单已关闭" in again.text  # nothing changes twice
    auth.login()
    assert "买家确认问题已解决" in client.get(f"/admin/tickets/{ticket.id}").text
    auth.logout()
    _open(client, order, text="换了新的问题：卡密提示已使用")  # a new problem, a new ticket
    assert last_ticket().id != ticket.id and last_ticket().is_open
