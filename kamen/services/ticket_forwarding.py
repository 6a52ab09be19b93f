"""Tickets between kamens: a 分站 forwards its buyer's ticket to its kamen 主站,
the 主站 answers in its own queue and calls the 分站 back (signed).

Wire format: docs/aftersales.md. The 分站 names the order by its own order
number — the idempotency key it forwarded the order with — so the 主站 keys
its ticket by (station, station_order_no). Suppliers of other kinds get a
prepared message the admin copies (``prepared_message``).

Both directions are jobs holding the ticket's lease (background.Lease):
``forward`` on the 分站, ``notify_station`` on the 主站. A failure is written
on the ticket (error, an internal event) and retried by the per-minute tick
with a growing pause; after ``MAX_ATTEMPTS`` it stops and alerts, and the
admin has a 重试 button.
"""
import binascii
import io
import json
import logging
from base64 import b64decode, b64encode
from datetime import timedelta
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen import secretbox
from kamen.models import (
    DownstreamStation,
    ForwardAttempt,
    Order,
    Outcome,
    Supplier,
    SupplierKind,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from kamen.outbound import AddressRefused, check_url
from kamen.services import aftersales, background, stations
from kamen.services.aftersales import TICKET_STATUSES_OPEN, TicketRefused, record
from kamen.services.alerts import raise_alert
from kamen.services.ordering import now
from kamen.services.transitions import transition
from kamen.suppliers.base import Ambiguous, RateLimited, SupplierError, Transient
from kamen.suppliers.kamen_signing import VerificationError, sign_headers, verify
from kamen.suppliers.kamen_upstream import KamenUpstreamAdapter
from kamen.timeutil import to_local, utcnow

log = logging.getLogger("kamen.aftersales")

MAX_ATTEMPTS = 6
CALLBACK_TIMEOUT = 10
CALLBACK_PATH = "/api/upstream-callbacks/tickets"
# A finished try asks for no job any more: the tick's next retry is not mistaken for one in flight.
JOB_DONE = {"job_requested_at": None, "job_enqueued_at": None}


def _backoff(attempts):
    return timedelta(minutes=min(2 ** attempts, 60))


# -- 分站: forwarding to a kamen 主站 -----------------------------------------------


def request_forward(session, ticket_id):
    return background.request_job(session, Ticket, ticket_id, "jobs.aftersales.forward_ticket")


def upstream_client(supplier):
    return KamenUpstreamAdapter(supplier.base_url, supplier.app_id, secretbox.decrypt(supplier.secret_encrypted))


def forward(session, ticket_id):
    """Bring the 主站 up to date with our ticket: create it there once (idempotent there:
    the same order's open ticket comes back), then send the admin's messages not yet sent."""
    lease = background.Lease(Ticket, ticket_id)
    if not lease.acquire(session, TICKET_STATUSES_OPEN):
        return False
    try:
        ticket = session.get(Ticket, ticket_id)
        if ticket.forward_state not in ("pending", "sent"):
            return False
        if ticket.forward_state == "sent" and not _unsent_messages(session, ticket_id):
            return False
        client = upstream_client(ticket.supplier)
        try:
            if not ticket.upstream_ticket_no:
                _create_upstream(session, lease, client, ticket)
            # A message saved while this ran is found by the sweeper (an unsent message is due).
            for event in _unsent_messages(session, ticket_id):
                _send_message(session, lease, client, ticket, event)
        except SupplierError as exc:
            _forward_failed(session, lease, ticket, exc.message)
            return False
        lease.beat(session, forward_state="sent", forward_error="", forward_next_at=None, forward_attempts=0,
                   **JOB_DONE)
        session.commit()
        return True
    finally:
        lease.release(session)


def _create_upstream(session, lease, client, ticket):
    payload = {"order_no": ticket.supplier_order_key, "ticket_no": ticket.ticket_no, "kind": ticket.kind.value,
               "text": ticket.text, "callback_url": ticket.callback_url or None,
               "screenshots": [{"content_type": shot.mimetype, "data": b64encode(aftersales.shot_bytes(session, shot))
                                .decode("ascii")} for shot in aftersales.attachments(session, ticket.id)]}
    remote = _ticket_reply(client.call("POST", "/tickets", payload=payload))
    lease.beat(session, upstream_ticket_no=remote["ticket_no"], upstream_status=remote["status"])
    record(session, ticket.id, "forwarded", f"已通过接口转交货源（主站工单 {remote['ticket_no']}）",
           author="system", public=False, data={"upstream": remote})
    session.commit()
    session.refresh(ticket)


def _unsent():
    return sa.and_(TicketEvent.kind == "to_supplier", TicketEvent.data["state"].as_string() == "pending")


def _unsent_messages(session, ticket_id):
    return session.scalars(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, _unsent())
                           .order_by(TicketEvent.id)).all()


def _send_message(session, lease, client, ticket, event):
    """One message to the 主站's ticket. Refused for good (the 主站 closed it): noted, not retried;
    the connection failing: raised, the whole push is retried."""
    text = event.data.get("text", "")
    try:
        client.call("POST", f"/tickets/{ticket.upstream_ticket_no}/replies", payload={"text": text})
        state, note = "sent", None
    except (Transient, RateLimited, Ambiguous):
        raise
    except SupplierError as exc:
        state, note = "refused", f"补充未送达货源：{exc.message}"
    lease.beat(session)
    event.data = {**event.data, "state": state}
    if note:
        record(session, ticket.id, "to_supplier_failed", note, author="system", public=False)
    session.commit()


def message_upstream(session, ticket_id, text):
    """The admin tells the 主站 more about a forwarded ticket (sent by the forwarding job)."""
    text = aftersales.clean_text(text, "给货源的补充")
    ticket = aftersales.load_open(session, ticket_id)
    if ticket.supplier is None or ticket.supplier.kind is not SupplierKind.KAMEN or not ticket.forward_state:
        raise TicketRefused("该工单不是通过接口转交的，请把补充内容直接发给货源")
    record(session, ticket_id, "to_supplier", f"转告货源：{text}", author="admin", public=False,
           data={"text": text, "state": "pending"})
    session.commit()
    if ticket.forward_state != "failed":  # after a failure it waits for 重试转交 with the rest
        request_forward(session, ticket_id)


def _ticket_reply(data):
    remote = data.get("ticket") if isinstance(data, dict) else None
    if not isinstance(remote, dict) or not isinstance(remote.get("ticket_no"), str) or not remote.get("status"):
        raise SupplierError("主站返回的数据有误：缺少 ticket.ticket_no / ticket.status")
    return remote


def _forward_failed(session, lease, ticket, message):
    attempts = ticket.forward_attempts + 1
    give_up = attempts >= MAX_ATTEMPTS
    lease.beat(session, forward_attempts=attempts, forward_error=message[:1000], **JOB_DONE,
               forward_state="failed" if give_up else "pending",
               forward_next_at=None if give_up else now() + _backoff(attempts))
    note = "，已停止自动重试，请检查货源设置后点“重试转交”" if give_up else "，稍后自动重试"
    record(session, ticket.id, "forward_failed", f"转交货源失败（第 {attempts} 次）：{message}{note}",
           author="system", public=False)
    session.commit()
    log.warning("ticket %s: forwarding failed (%s): %s", ticket.ticket_no, attempts, message)
    if give_up:
        raise_alert(session, "ticket_forward_failed", "售后工单转交货源失败",
                    [f"工单 {ticket.ticket_no}：{message}"])


def retry_forward(session, ticket_id):
    """The admin's 重试转交 after the automatic tries gave up."""
    done = session.execute(
        sa.update(Ticket).where(Ticket.id == ticket_id, Ticket.forward_state == "failed",
                                Ticket.status.in_(TICKET_STATUSES_OPEN))
        .values(forward_state="pending", forward_attempts=0, forward_next_at=now())
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        session.rollback()
        raise TicketRefused("该工单没有失败待重试的转交")
    record(session, ticket_id, "forward_retry", "管理员重新转交货源", author="admin", public=False)
    session.commit()
    request_forward(session, ticket_id)


def refresh_from_upstream(session, ticket_id):
    """Ask the 主站 for the ticket now (its callback may be lost); returns a message for the admin."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not ticket.upstream_ticket_no:
        raise TicketRefused("该工单还没有转交到主站")
    try:
        data = upstream_client(ticket.supplier).call("GET", f"/tickets/{ticket.upstream_ticket_no}")
        remote = _ticket_reply(data)
    except SupplierError as exc:
        raise TicketRefused(exc.message) from None
    added = apply_upstream(session, ticket, remote)
    return f"已从货源获取最新进度：{added} 条新答复" if added else "货源暂无新的答复"


def apply_upstream(session, ticket, remote):
    """The 主站's view of our ticket (callback or query): its replies become internal events
    (each once), its codes are kept encrypted for the admin to pass on. Returns new replies."""
    added = 0
    for item in remote.get("replies") or []:
        if not isinstance(item, dict) or not str(item.get("id", "")).strip():
            continue
        ref = f"up:{item['id']}"[:40]
        exists = session.scalar(sa.select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id,
                                                                  TicketEvent.source_ref == ref))
        if exists:
            continue
        try:
            with session.begin_nested():
                record(session, ticket.id, "supplier_reply", f"货源答复：{str(item.get('message', ''))[:2000]}",
                       author="supplier", public=False, source_ref=ref)
            added += 1
        except IntegrityError:  # the callback and a query delivered it at the same time
            continue
    status = str(remote.get("status", ""))[:16]
    closed_states = (TicketStatus.RESOLVED.value, TicketStatus.REJECTED.value)
    newly_closed = status in closed_states and ticket.upstream_status not in closed_states
    values = {"upstream_status": status}
    codes = remote.get("reissued")
    if isinstance(codes, str) and codes.strip():
        values["supplier_codes_encrypted"] = secretbox.encrypt(codes.strip()[:20000])
    ticket_id, was_open = ticket.id, ticket.is_open
    session.execute(sa.update(Ticket).where(Ticket.id == ticket_id).values(**values)
                    .execution_options(synchronize_session=False))
    moved = (added or newly_closed) and was_open and transition(
        session, Ticket, ticket_id, TicketStatus.SUPPLIER, TicketStatus.PROCESSING)
    data = {"from": "supplier", "to": "processing"} if moved else {}
    if newly_closed:
        outcome = remote.get("outcome") or ""
        label = Outcome(outcome).label if outcome in {o.value for o in Outcome} else "已答复"
        note = f"货源已处理（{label}）"
        if values.get("supplier_codes_encrypted"):
            note += "，补发的内容已收到，请核对后发给买家"
        record(session, ticket_id, "supplier_done", note, author="system", public=False, data=data)
    elif moved:
        record(session, ticket_id, "supplier_answered", "货源已答复", author="system", public=False, data=data)
    session.commit()
    return added


def supplier_for_callback(session, app_id):
    return session.scalar(sa.select(Supplier).where(Supplier.kind == SupplierKind.KAMEN, Supplier.app_id == app_id,
                                                    Supplier.is_active.is_(True)).order_by(Supplier.id))


def receive_callback(session, headers, method, target, body):
    """A 主站's signed call about one of our forwarded tickets. Returns (status, message)."""
    def secret_for(app_id):
        supplier = supplier_for_callback(session, app_id)
        return secretbox.decrypt(supplier.secret_encrypted) if supplier else None

    try:
        app_id = verify(headers, method, target, body, secret_for,
                        lambda app_id, nonce: stations.nonce_seen(session, f"cb:{app_id}"[:32], nonce))
    except VerificationError as exc:
        return 401, exc.code, exc.message
    supplier = supplier_for_callback(session, app_id)
    try:
        remote = _ticket_reply(json.loads(body or b"{}"))
    except (ValueError, SupplierError):
        return 400, "bad_request", "请求体应为 {\"ticket\": {...}}"
    ticket = session.scalar(sa.select(Ticket).where(Ticket.supplier_id == supplier.id,
                                                    Ticket.upstream_ticket_no == remote["ticket_no"]))
    if ticket is None and remote.get("station_ticket_no"):
        ticket = session.scalar(sa.select(Ticket).where(Ticket.supplier_id == supplier.id,
                                                        Ticket.ticket_no == str(remote["station_ticket_no"])))
    if ticket is None:
        return 404, "not_found", "没有这个工单"
    if not ticket.upstream_ticket_no:
        ticket.upstream_ticket_no = remote["ticket_no"]
    apply_upstream(session, ticket, remote)
    return 200, "ok", "已收到"


def local_dt(dt):
    return to_local(dt).strftime("%Y-%m-%d %H:%M")


def prepared_message(session, ticket):
    """What the admin sends a supplier without an API: everything they need to find the order."""
    order = ticket.order
    # Failover may have filled the order from another source: name the product as that supplier knows it.
    attempt_code = session.scalar(
        sa.select(ForwardAttempt.code).where(ForwardAttempt.order_id == order.id,
                                             ForwardAttempt.supplier_id == ticket.supplier_id,
                                             ForwardAttempt.idempotency_key == ticket.supplier_order_key)
        .order_by(ForwardAttempt.attempt_no.desc()).limit(1)) if ticket.supplier_id else None
    product_code = attempt_code or (order.product.code if order.product else "")
    code = f"（编码 {product_code}）" if product_code else ""
    lines = [f"【售后】{ticket.kind.label}", f"订单号：{ticket.supplier_order_key or order.order_no}"]
    if ticket.supplier_order_id:
        lines.append(f"贵方订单号：{ticket.supplier_order_id}")
    lines += [f"商品：{order.product_name}{code}", f"数量：{order.quantity}",
              f"下单时间：{local_dt(order.created_at)}"]
    if order.paid_at:
        lines.append(f"付款时间：{local_dt(order.paid_at)}")
    for key, value in (order.buyer_fields or {}).items():
        lines.append(f"{key}：{value}")
    numbers = [n for n in aftersales.delivered_code_numbers(session, order.id) if n]
    if numbers:
        lines.append("卡号：" + "、".join(numbers[:20]))
    lines.append(f"问题描述：{ticket.text}")
    lines.append("请核实后回复处理结果，谢谢。")
    return "\n".join(lines)


# -- 主站: tickets of our 分站 ---------------------------------------------------------


def open_station_ticket(session, station, payload):
    """A 分站 forwards its buyer's ticket. Returns (ticket, created); the same order's open
    ticket comes back unchanged on a retry. TicketRefused for bad input."""
    if not isinstance(payload, dict):
        raise TicketRefused("请求体应为 JSON 对象")
    order_no = str(payload.get("order_no") or "").strip()
    station_ticket_no = str(payload.get("ticket_no") or "").strip()
    if not order_no or len(order_no) > 64:
        raise TicketRefused("order_no（分站订单号）必填，最长 64 位")
    if len(station_ticket_no) > 32:
        raise TicketRefused("ticket_no 最长 32 位")
    kind = aftersales.parse_kind(payload.get("kind"))
    text = str(payload.get("text") or "").strip()[:aftersales.MAX_TEXT]
    if not text:
        raise TicketRefused("text（问题描述）必填")
    callback_url = str(payload.get("callback_url") or "").strip()
    if callback_url:
        if len(callback_url) > 500 or urlsplit(callback_url).scheme not in ("http", "https"):
            raise TicketRefused("callback_url 应为 http(s) 地址")
        try:
            check_url(callback_url, "回调地址", resolve=False)
        except AddressRefused as exc:
            raise TicketRefused(str(exc)) from None
    shots = _station_shots(payload.get("screenshots"))
    existing = _open_station_ticket(session, station.id, order_no)
    if existing is not None:
        return existing, False
    at = now()
    first_due, resolve_due = aftersales.deadlines(aftersales.config(session), kind, at)
    order = session.scalar(sa.select(Order).where(Order.station_id == station.id, Order.station_order_no == order_no))
    ticket = Ticket(ticket_no=aftersales.new_ticket_no(at), station_id=station.id, station_order_no=order_no,
                    order_id=order.id if order is not None else None,
                    station_ticket_no=station_ticket_no or None, callback_url=callback_url, kind=kind,
                    responsibility=aftersales.Responsibility.SHOP, status=TicketStatus.OPEN, text=text,
                    contact=f"分站：{station.name}"[:64],
                    product_name=(order.product_name if order is not None else f"分站订单 {order_no}")[:200],
                    created_at=at, first_response_due=first_due, resolve_due=resolve_due)
    session.add(ticket)
    try:
        session.flush()
        aftersales.attach_shots(session, ticket.id, shots, at)
        record(session, ticket.id, "created", f"分站“{station.name}”转来售后：{kind.label}", author="station",
               public=True, data={"station_order_no": order_no, "station_ticket_no": station_ticket_no,
                                  "shots": len(shots)})
        session.commit()
    except IntegrityError:  # the same forward twice at once: the other one's ticket
        session.rollback()
        existing = _open_station_ticket(session, station.id, order_no)
        if existing is None:
            raise
        return existing, False
    return ticket, True


def _station_shots(items):
    """The buyer's screenshots a 分站 sends (base64), checked as a buyer's upload is."""
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > aftersales.MAX_SHOTS:
        raise TicketRefused(f"screenshots 应为数组，最多 {aftersales.MAX_SHOTS} 张")
    shots = []
    for i, item in enumerate(items, 1):
        data = item.get("data") if isinstance(item, dict) else None
        try:
            raw = b64decode(data, validate=True) if isinstance(data, str) else None
        except binascii.Error:
            raw = None
        if raw is None:
            raise TicketRefused(f"screenshots 第 {i} 张的 data 应为 base64 编码的图片")
        shots.append(aftersales.read_shot(io.BytesIO(raw), f"截图{i}"))
    return shots


def _open_station_ticket(session, station_id, order_no):
    return session.scalar(sa.select(Ticket).where(Ticket.station_id == station_id, Ticket.station_order_no == order_no,
                                                  Ticket.status.in_(TICKET_STATUSES_OPEN)))


def station_ticket(session, station, ticket_no):
    ticket = aftersales.by_number(session, ticket_no)
    if ticket is None or ticket.station_id != station.id:
        return None
    return ticket


def station_add_reply(session, station, ticket, text):
    """The 分站 adds to its ticket (internal for our admins: it speaks for its buyer)."""
    text = str(text or "").strip()
    if not text or len(text) > aftersales.MAX_TEXT:
        raise TicketRefused(f"text 必填，最长 {aftersales.MAX_TEXT} 字")
    if not ticket.is_open:
        raise TicketRefused("工单已关闭")
    record(session, ticket.id, "station_reply", f"分站补充：{text}", author="station", public=True)
    session.commit()


def ticket_json(session, ticket):
    """What a 分站 sees of its ticket: status, outcome, every public answer of ours, reissued codes."""
    replies = session.execute(
        sa.select(TicketEvent.id, TicketEvent.at, TicketEvent.message)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.public.is_(True), TicketEvent.author == "admin")
        .order_by(TicketEvent.id)).all()
    return {
        "ticket_no": ticket.ticket_no,
        "station_ticket_no": ticket.station_ticket_no,
        "order_no": ticket.station_order_no,
        "kind": ticket.kind.value,
        "status": ticket.status.value,
        "status_label": ticket.status.label,
        "outcome": ticket.outcome.value if ticket.outcome else None,
        "outcome_note": ticket.outcome_note or "",
        "reissued": aftersales.reissued(ticket) or None,
        "replies": [{"id": str(i), "at": at.replace(microsecond=0).isoformat() + "Z", "message": m}
                    for i, at, m in replies],
        "created_at": ticket.created_at.replace(microsecond=0).isoformat() + "Z",
    }


def request_callback(session, ticket_id):
    return background.request_job(session, Ticket, ticket_id, "jobs.aftersales.notify_station")


def notify_station(session, ticket_id):
    """POST the ticket's state to the 分站's callback URL, signed with the station's key."""
    lease = background.Lease(Ticket, ticket_id)
    if not lease.acquire(session, list(TicketStatus)):
        return False
    try:
        ticket = session.get(Ticket, ticket_id)
        if ticket.callback_state != "pending" or not ticket.callback_url:
            return False
        station = session.get(DownstreamStation, ticket.station_id)
        body = json.dumps({"ticket": ticket_json(session, ticket)}, ensure_ascii=False).encode("utf-8")
        parts = urlsplit(ticket.callback_url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = sign_headers(station.app_id, secretbox.decrypt(station.secret_encrypted), "POST", target, body)
        headers["Content-Type"] = "application/json"
        try:
            check_url(ticket.callback_url, "分站回调地址")
            resp = requests.post(ticket.callback_url, data=body, headers=headers, timeout=CALLBACK_TIMEOUT,
                                 allow_redirects=False)
            ok = resp.status_code == 200
            problem = "" if ok else f"分站回答 HTTP {resp.status_code}：{resp.text[:200]}"
        except (requests.RequestException, AddressRefused) as exc:
            ok, problem = False, f"连接分站失败：{exc}"[:500]
        if ok:
            lease.beat(session, callback_state="sent", callback_error="", callback_next_at=None, **JOB_DONE)
            record(session, ticket_id, "callback", "已通知分站", author="system", public=False)
        else:
            attempts = ticket.callback_attempts + 1
            give_up = attempts >= MAX_ATTEMPTS
            lease.beat(session, callback_attempts=attempts, callback_error=problem, **JOB_DONE,
                       callback_state="failed" if give_up else "pending",
                       callback_next_at=None if give_up else now() + _backoff(attempts))
            record(session, ticket_id, "callback_failed", f"通知分站失败（第 {attempts} 次）：{problem}",
                   author="system", public=False)
            log.warning("ticket %s: station callback failed: %s", ticket.ticket_no, problem)
        session.commit()
        return ok
    finally:
        lease.release(session)


# -- the per-minute tick ------------------------------------------------------------


def dispatch_due(session, at=None):
    """Forwards and callbacks whose retry time came, and whose job is not already on it;
    returns their ticket ids. Called by the sweeper."""
    at = at or now()
    wall = utcnow()
    started = []
    unsent = sa.exists().where(TicketEvent.ticket_id == Ticket.id, _unsent())
    forward_due = sa.and_(Ticket.status.in_(TICKET_STATUSES_OPEN), sa.or_(
        sa.and_(Ticket.forward_state == "pending", Ticket.forward_next_at <= at),
        sa.and_(Ticket.forward_state == "sent", unsent)))
    due = session.execute(sa.select(Ticket, forward_due).where(
        sa.or_(forward_due, sa.and_(Ticket.callback_state == "pending", Ticket.callback_next_at <= at))
    ).limit(100)).all()
    for ticket, forwarding in due:
        if background.is_busy(ticket, wall):
            continue
        handle = request_forward(session, ticket.id) if forwarding else request_callback(session, ticket.id)
        if not handle.paused:
            started.append(ticket.id)
    return started
