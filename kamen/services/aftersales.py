"""售后工单: a buyer's ticket on an order, who answers it, its deadlines and outcomes.

Flow 5 of DESIGN.md. A buyer who can see an order (its browser, a signed
link, or 查单) opens one ticket at a time on it (the database refuses a
second open one). The type decides who is responsible (settings): the
supplier's tickets are forwarded (kamen 主站: by a job over the upstream API,
kamen.services.ticket_forwarding; other kinds: a prepared message the admin
sends), the buyer's get a guided answer. Every status change is one
conditional UPDATE (transitions.transition) with one TicketEvent row; replies
are events, public or internal. Deadlines (SLA per type) raise one alert per
ticket per deadline from the per-minute tick.
"""
import io
import secrets
import warnings
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app
from PIL import Image, UnidentifiedImageError
from sqlalchemy.exc import IntegrityError

from kamen import secretbox
from kamen.models import (
    AttemptStatus,
    CardCode,
    Coupon,
    CouponKind,
    ForwardAttempt,
    Order,
    OrderStatus,
    Outcome,
    Reservation,
    Responsibility,
    StockMode,
    SupplierKind,
    Ticket,
    TicketAttachment,
    TicketEvent,
    TicketKind,
    TicketStatus,
    UploadChunk,
)
from kamen.models.aftersales import OPEN_STATUSES
from kamen.money import MoneyError, parse_money
from kamen.services import ordering, settings, uploads
from kamen.services.alerts import raise_alert
from kamen.services.ordering import ORDER_NO_ALPHABET, OrderRefused, now
from kamen.services.suppliers import OWN_SUPPLIER_CODE
from kamen.services.transitions import transition

MAX_SHOTS = 3
# MPO: the multi-picture JPEG some phone cameras write.
SHOT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "GIF": "image/gif",
                "WEBP": "image/webp"}
SHOT_MAX_PIXELS = 40_000_000  # a phone screenshot is 3-10 megapixels
MAX_TEXT = 2000
MAX_CODES_TEXT = 20000
MAX_BUYER_REPLIES = 30  # per ticket: a buyer adds details, not a chat log
TICKET_STATUSES_OPEN = [TicketStatus(s) for s in OPEN_STATUSES]
# Orders a buyer may open a ticket on: paid and not arrived (waiting, with the supplier, its result
# unknown, waiting for the admin), delivered, paid but not deliverable.
TICKETABLE = (OrderStatus.PAID, OrderStatus.FORWARDING, OrderStatus.UNCERTAIN, OrderStatus.MANUAL,
              OrderStatus.DELIVERED, OrderStatus.UNFULFILLABLE)

WRONG_ACCOUNT_GUIDE = (
    "充值已按您下单时填写的账号提交，虚拟商品一经充值无法撤回。"
    "本店可以：核对您填写的账号和到账记录，并协助联系货源尝试追回（不保证成功）。"
    "本店不能：直接退款，或重新充值到正确的账号（除非追回成功）。"
)
RESPONSIBILITY_NOTES = {
    Responsibility.SUPPLIER: "此类问题由货源核实处理，我们已转交货源，收到答复后会第一时间告诉您。",
    Responsibility.SHOP: "此类问题由本店直接处理，客服会尽快答复。",
    Responsibility.BUYER: WRONG_ACCOUNT_GUIDE,
}


class TicketRefused(ValueError):
    """Nothing was saved; str() is the Chinese message for the buyer or admin."""


# -- settings ---------------------------------------------------------------


def config(session):
    return settings.get(session, "aftersales")


def save_config(session, form):
    """From the admin form (strings): responsibility and hours per type. TicketRefused on bad input."""
    current = config(session)
    values = {"responsibility": {}, "first_hours": {}, "resolve_hours": {}}
    for kind in TicketKind:
        who = form.get(f"responsibility_{kind.value}", "")
        if who not in {r.value for r in Responsibility}:
            raise TicketRefused(f"请为“{kind.label}”选择责任方")
        first = _hours(form.get(f"first_hours_{kind.value}"), f"“{kind.label}”的首次答复时限")
        resolve = _hours(form.get(f"resolve_hours_{kind.value}"), f"“{kind.label}”的解决时限")
        if resolve < first:
            raise TicketRefused(f"“{kind.label}”的解决时限不能短于首次答复时限")
        values["responsibility"][kind.value] = who
        values["first_hours"][kind.value] = first
        values["resolve_hours"][kind.value] = resolve
    values["coupon_days"] = _hours(form.get("coupon_days"), "补偿券有效天数")
    settings.put(session, "aftersales", {**current, **values})


def _hours(text, label):
    text = str(text if text is not None else "").strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 720:
        raise TicketRefused(f"{label}须为 1-720 之间的整数")
    return int(text)


@dataclass
class SupplierRef:
    """Who filled an order upstream, and what they know it by."""

    supplier: object
    order_key: str  # the idempotency key the order was placed with
    supplier_order_id: str | None = None


def supplier_ref(session, order):
    """The supplier that filled ``order`` and its numbers there, or None for the shop's own goods.

    A forwarded order is known upstream by the attempt the supplier took
    (failover may have filled it from another source than the product's own)."""
    attempt = session.scalar(
        sa.select(ForwardAttempt).where(ForwardAttempt.order_id == order.id,
                                     sa.or_(ForwardAttempt.accepted.is_(True),
                                            ForwardAttempt.status.in_((AttemptStatus.SENDING, AttemptStatus.UNKNOWN))))
        .order_by(ForwardAttempt.attempt_no.desc()).limit(1)
    )
    if attempt is not None:
        return SupplierRef(attempt.supplier, attempt.idempotency_key, attempt.supplier_order_id)
    product = order.product
    supplier = product.supplier if product is not None else None
    local = (order.reservation is Reservation.CODES or (product is not None and product.stock_mode is StockMode.CARDS)
             or supplier is None or supplier.code == OWN_SUPPLIER_CODE)
    if local:
        return None
    return SupplierRef(supplier, order.order_no)


def responsibility_for(session, order, kind, cfg=None):
    """(Responsibility, SupplierRef or None): the configured side, the shop itself for its own goods."""
    cfg = cfg or config(session)
    who = Responsibility(cfg["responsibility"].get(kind.value, "shop"))
    if who is not Responsibility.SUPPLIER:
        return who, None
    ref = supplier_ref(session, order)
    if ref is None:  # our own card codes: nobody upstream to ask
        return Responsibility.SHOP, None
    return Responsibility.SUPPLIER, ref


def deadlines(cfg, kind, at):
    return (at + timedelta(hours=int(cfg["first_hours"].get(kind.value, 2))),
            at + timedelta(hours=int(cfg["resolve_hours"].get(kind.value, 24))))


# -- screenshots -----------------------------------------------------------------


@dataclass
class Shot:
    data: bytes
    mimetype: str
    width: int
    height: int


def shot_max_bytes():
    return current_app.config["TICKET_SHOT_MAX_BYTES"]


def read_shot(stream, filename):
    """Check one uploaded screenshot: size, a real image of an allowed type, sane pixel count.

    Refuses with a Chinese message naming the file. The size is checked while
    reading, the pixel count from the header before anything is decoded, so a
    decompression bomb is never expanded."""
    name = (filename or "截图")[:60]
    limit = shot_max_bytes()
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TicketRefused(f"截图“{name}”太大，每张不能超过 {limit // (1024 * 1024)} MB")
    if not data:
        raise TicketRefused(f"截图“{name}”是空文件")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                if fmt not in SHOT_FORMATS:
                    raise TicketRefused(f"截图“{name}”格式不支持，请上传 PNG、JPG、GIF 或 WEBP 图片")
                if width * height > SHOT_MAX_PIXELS:
                    raise TicketRefused(f"截图“{name}”尺寸异常（{width}×{height} 像素），请上传普通的屏幕截图")
                image.load()  # a truncated or corrupt body fails here, bounded by the pixel check above
    except TicketRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TicketRefused(f"截图“{name}”尺寸异常，请上传普通的屏幕截图") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise TicketRefused(f"“{name}”不是有效的图片文件，请上传截图（PNG、JPG、GIF 或 WEBP）") from None
    return Shot(data, SHOT_FORMATS[fmt], width, height)


def attach_shots(session, ticket_id, shots, at):
    """Store checked ``Shot``s on the ticket, encrypted, in the caller's transaction."""
    for i, shot in enumerate(shots):
        upload = uploads.save(session, io.BytesIO(shot.data), purpose="ticket_shot", filename=f"shot-{i + 1}",
                              max_bytes=shot_max_bytes(), encrypt=True)
        session.add(TicketAttachment(ticket_id=ticket_id, upload_id=upload.id, mimetype=shot.mimetype,
                                     width=shot.width, height=shot.height, size=len(shot.data), created_at=at))


def shot_bytes(session, attachment):
    """The screenshot's bytes (decrypted); only for its buyer and admins."""
    chunks = session.scalars(sa.select(UploadChunk.data).where(UploadChunk.upload_id == attachment.upload_id)
                             .order_by(UploadChunk.seq)).all()
    return b"".join(secretbox.unseal(c) for c in chunks)


# -- opening --------------------------------------------------------------------


def can_open(session, order):
    """Why this order cannot get a ticket now (Chinese), or None."""
    if order.status not in TICKETABLE:
        if order.status is OrderStatus.REFUNDED:
            return "该订单已退款，无需再申请售后"
        return "订单尚未付款，无需申请售后"
    if open_ticket_of(session, order.id) is not None:
        return "该订单已有处理中的售后工单，请在工单中补充说明"
    return None


def open_ticket_of(session, order_id):
    return session.scalar(sa.select(Ticket).where(Ticket.order_id == order_id,
                                                  Ticket.status.in_(TICKET_STATUSES_OPEN)))


def tickets_of_order(session, order_id):
    return session.scalars(sa.select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.id.desc())).all()


def new_ticket_no(at):
    return "S" + at.strftime("%y%m%d") + "".join(secrets.choice(ORDER_NO_ALPHABET) for _ in range(9))


def parse_kind(value):
    try:
        return TicketKind(value or "")
    except ValueError:
        raise TicketRefused("请选择问题类型") from None


def open_ticket(session, order_id, kind, text, shots, *, callback_url=""):
    """Open a ticket on an order; ``shots`` are checked ``Shot``s. Returns the ticket number.

    ``callback_url`` is where a kamen 主站 may call us back about this ticket."""
    kind = parse_kind(kind)
    text = (text or "").strip()
    if len(text) < 4:
        raise TicketRefused("请描述遇到的问题（至少 4 个字）")
    if len(text) > MAX_TEXT:
        raise TicketRefused(f"问题描述太长，请控制在 {MAX_TEXT} 字以内")
    if len(shots) > MAX_SHOTS:
        raise TicketRefused(f"最多上传 {MAX_SHOTS} 张截图")
    order = session.get(Order, order_id)
    reason = can_open(session, order)
    if reason:
        raise TicketRefused(reason)
    at = now()
    cfg = config(session)
    who, ref = responsibility_for(session, order, kind, cfg)
    supplier = ref.supplier if ref else None
    first_due, resolve_due = deadlines(cfg, kind, at)
    forward = ""
    if supplier is not None:
        forward = "pending" if supplier.kind is SupplierKind.KAMEN else "manual"
    ticket = Ticket(
        ticket_no=new_ticket_no(at), order_id=order.id, kind=kind, responsibility=who,
        status=TicketStatus.SUPPLIER if supplier is not None else TicketStatus.OPEN,
        text=text, contact=order.contact, product_name=order.product_name,
        supplier_id=supplier.id if supplier else None, created_at=at,
        supplier_order_key=ref.order_key if ref else None, supplier_order_id=ref.supplier_order_id if ref else None,
        first_response_due=first_due, resolve_due=resolve_due,
        forward_state=forward, forward_next_at=at if forward == "pending" else None,
        callback_url=callback_url[:500] if forward == "pending" else "",
    )
    session.add(ticket)
    try:
        session.flush()
    except IntegrityError:  # a second open ticket, from a double submit racing this one
        session.rollback()
        raise TicketRefused("该订单已有处理中的售后工单，请在工单中补充说明") from None
    attach_shots(session, ticket.id, shots, at)
    record(session, ticket.id, "created", f"买家提交售后：{kind.label}", author="buyer", public=True,
           data={"shots": len(shots), "responsibility": who.value})
    record(session, ticket.id, "routed", RESPONSIBILITY_NOTES[who], author="system", public=True,
           data={"supplier": supplier.name if supplier else None})
    ticket_id, ticket_no = ticket.id, ticket.ticket_no
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise TicketRefused("该订单已有处理中的售后工单，请在工单中补充说明") from None
    if forward == "pending":
        from kamen.services import ticket_forwarding

        ticket_forwarding.request_forward(session, ticket_id)
    return ticket_no


def record(session, ticket_id, kind, message, *, author, public, data=None, source_ref=None):
    session.add(TicketEvent(ticket_id=ticket_id, at=now(), kind=kind, author=author, public=public,
                            message=message, data=ordering.redact(data or {}), source_ref=source_ref))


# -- answering ------------------------------------------------------------------


def clean_text(text, label, limit=MAX_TEXT):
    text = (text or "").strip()
    if not text:
        raise TicketRefused(f"请填写{label}")
    if len(text) > limit:
        raise TicketRefused(f"{label}太长，请控制在 {limit} 字以内")
    return text


def load_open(session, ticket_id):
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketRefused("工单不存在")
    if not ticket.is_open:
        raise TicketRefused("工单已关闭，不能再修改")
    return ticket


def _answered(session, ticket_id, at):
    """The first answer to the buyer stops the first-answer clock (once)."""
    session.execute(sa.update(Ticket).where(Ticket.id == ticket_id, Ticket.first_responded_at.is_(None))
                    .values(first_responded_at=at).execution_options(synchronize_session=False))


def reply(session, ticket_id, text, *, public):
    """The admin answers the buyer (public) or notes something for admins only."""
    text = clean_text(text, "回复内容")
    ticket = load_open(session, ticket_id)
    at = now()
    moved = False
    if public:
        _answered(session, ticket_id, at)
        moved = transition(session, Ticket, ticket_id, TicketStatus.OPEN, TicketStatus.PROCESSING)
    data = {"from": "open", "to": "processing"} if moved else {}
    record(session, ticket_id, "reply" if public else "note", text, author="admin", public=public, data=data)
    _tell_station(session, ticket, public)
    session.commit()
    _after_station_change(session, ticket_id, public)


def buyer_reply(session, ticket_id, text):
    """The buyer adds to their open ticket."""
    text = clean_text(text, "补充说明")
    ticket = load_open(session, ticket_id)
    sent = session.scalar(sa.select(sa.func.count()).select_from(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "buyer_reply"))
    if sent >= MAX_BUYER_REPLIES:
        raise TicketRefused("补充说明已经很多了，请等待客服答复")
    record(session, ticket.id, "buyer_reply", text, author="buyer", public=True)
    session.commit()


def buyer_close(session, ticket_id):
    """The buyer says the problem is solved: the ticket is closed as resolved (a new
    problem with the order opens a new ticket)."""
    ticket = load_open(session, ticket_id)
    if not transition(session, Ticket, ticket.id, TICKET_STATUSES_OPEN, TicketStatus.RESOLVED,
                      outcome=Outcome.ANSWERED, outcome_note=BUYER_CLOSED, resolved_at=now()):
        session.rollback()
        raise TicketRefused("工单已被处理，请刷新页面")
    record(session, ticket.id, "resolved", f"{BUYER_CLOSED}，工单已关闭", author="buyer", public=True,
           data={"outcome": Outcome.ANSWERED.value, "by": "buyer"})
    session.commit()


BUYER_CLOSED = "买家确认问题已解决"


def supplier_answer(session, ticket_id, text):
    """The admin enters what a supplier without an API answered (internal)."""
    text = clean_text(text, "货源答复")
    ticket = load_open(session, ticket_id)
    moved = transition(session, Ticket, ticket_id, TicketStatus.SUPPLIER, TicketStatus.PROCESSING)
    record(session, ticket.id, "supplier_reply", f"货源答复（手动录入）：{text}", author="supplier", public=False,
           data={"from": "supplier", "to": "processing"} if moved else {})
    session.commit()


def mark_sent_by_hand(session, ticket_id):
    """The admin sent the prepared message to the supplier themselves."""
    load_open(session, ticket_id)
    done = session.execute(sa.update(Ticket).where(Ticket.id == ticket_id, Ticket.forward_state == "manual")
                           .values(forward_state="sent").execution_options(synchronize_session=False)).rowcount
    if not done:
        session.rollback()
        raise TicketRefused("该工单没有待手动转交的消息")
    record(session, ticket_id, "forwarded", "管理员已把工单手动转交给货源", author="admin", public=False)
    session.commit()


# -- outcomes -------------------------------------------------------------------


def _close(session, ticket, new_status, outcome, message, *, data=None, **values):
    at = now()
    if not transition(session, Ticket, ticket.id, TICKET_STATUSES_OPEN, new_status, outcome=outcome,
                      resolved_at=at, first_responded_at=sa.func.coalesce(Ticket.first_responded_at, at), **values):
        session.rollback()
        raise TicketRefused("工单已被处理，请刷新页面")
    record(session, ticket.id, new_status.value, message, author="admin", public=True,
           data={"outcome": outcome.value, **(data or {})})
    _tell_station(session, ticket, True)


def resolve_reissue(session, ticket_id, codes):
    """New card codes (or a delivery text) for the buyer, stored encrypted."""
    codes = clean_text(codes, "补发的卡密", MAX_CODES_TEXT)
    ticket = load_open(session, ticket_id)
    _close(session, ticket, TicketStatus.RESOLVED, Outcome.REISSUE, "已为您补发，请在下方查看新的卡密/发货内容",
           reissued_encrypted=secretbox.encrypt(codes), outcome_note="补发")
    session.commit()
    _after_station_change(session, ticket_id, True)


def resolve_refund(session, ticket_id, reason):
    """Refund the order (ordering.refund) and close the ticket, in one commit. Returns what the admin is told:
    a 分站's order is paid back into its balance here, a buyer's is refunded on the payment platform."""
    reason = clean_text(reason, "退款原因", 200)
    ticket = load_open(session, ticket_id)
    if ticket.order_id is None:
        raise TicketRefused("找不到这张分站工单对应的本站订单，请在分站的余额中处理退款")
    _close(session, ticket, TicketStatus.RESOLVED, Outcome.REFUND, f"已退款：{reason}", outcome_note=reason)
    try:
        ordering.refund(session, ticket.order_id, f"售后 {ticket.ticket_no}：{reason}")  # commits both, or neither
    except OrderRefused as exc:
        session.rollback()
        raise TicketRefused(str(exc)) from None
    _after_station_change(session, ticket_id, True)
    order = session.get(Order, ticket.order_id)
    if order.station_id is not None:
        return f"已退款并关闭工单：¥{order.amount - (order.refund_amount or 0)} 已退回分站余额。"
    return "已记录退款并关闭工单。请在支付平台后台完成实际退款。"


def resolve_coupon(session, ticket_id, amount_text):
    """A one-use compensation coupon (立减) for the buyer's next order."""
    try:
        amount = parse_money(amount_text or "", field="补偿金额")
    except MoneyError as exc:
        raise TicketRefused(str(exc)) from None
    if amount <= 0 or amount > Decimal("10000"):
        raise TicketRefused("补偿金额须大于 0 且不超过 10000")
    ticket = load_open(session, ticket_id)
    if ticket.order_id is None or ticket.station_id is not None:
        raise TicketRefused("分站工单的买家不在本店购物，不能发本店的优惠券")
    at = now()
    days = int(config(session).get("coupon_days", 30))
    coupon = Coupon(code="SH" + "".join(secrets.choice(ORDER_NO_ALPHABET) for _ in range(10)), kind=CouponKind.AMOUNT,
                    value=amount, min_amount=Decimal("0"), valid_from=at, valid_to=at + timedelta(days=days),
                    max_uses=1, used_count=0, is_enabled=True, note=f"售后补偿（工单 {ticket.ticket_no}）")
    session.add(coupon)
    session.flush()
    _close(session, ticket, TicketStatus.RESOLVED, Outcome.COUPON,
           f"已为您发放 ¥{amount} 补偿优惠券：{coupon.code}（{days} 天内下单可用）",
           coupon_id=coupon.id, outcome_note=f"¥{amount}", data={"coupon": coupon.code})
    session.commit()
    _after_station_change(session, ticket_id, True)


def reject(session, ticket_id, reason):
    reason = clean_text(reason, "驳回理由", 300)
    ticket = load_open(session, ticket_id)
    _close(session, ticket, TicketStatus.REJECTED, Outcome.REJECTED, f"工单已驳回：{reason}", outcome_note=reason)
    session.commit()
    _after_station_change(session, ticket_id, True)


def resolve_answered(session, ticket_id, note):
    """Closed with an answer and nothing given (e.g. explained how to use the code)."""
    note = clean_text(note, "处理说明", 300)
    ticket = load_open(session, ticket_id)
    _close(session, ticket, TicketStatus.RESOLVED, Outcome.ANSWERED, f"已解决：{note}", outcome_note=note)
    session.commit()
    _after_station_change(session, ticket_id, True)


def _tell_station(session, ticket, public):
    """A 分站's ticket changed where the 分站 should see it: its callback is due."""
    if ticket.station_id is not None and public and ticket.callback_url:
        session.execute(sa.update(Ticket).where(Ticket.id == ticket.id)
                        .values(callback_state="pending", callback_next_at=now(), callback_attempts=0)
                        .execution_options(synchronize_session=False))


def _after_station_change(session, ticket_id, public):
    ticket = session.get(Ticket, ticket_id)
    if ticket is not None and ticket.station_id is not None and public and ticket.callback_url:
        from kamen.services import ticket_forwarding

        ticket_forwarding.request_callback(session, ticket_id)


def reissued(ticket):
    return secretbox.decrypt(ticket.reissued_encrypted) if ticket.reissued_encrypted else ""


# -- deadlines ------------------------------------------------------------------


def alert_overdue(session, at=None):
    """One alert per ticket per deadline that passed: marks it, notes it on the ticket,
    and raises one message listing them all. Returns the ticket numbers alerted."""
    at = at or now()
    lines, alerted = [], []
    checks = (
        (Ticket.first_response_due, Ticket.first_overdue_alerted_at, "first_overdue_alerted_at",
         Ticket.first_responded_at.is_(None), "首次答复"),
        (Ticket.resolve_due, Ticket.resolve_overdue_alerted_at, "resolve_overdue_alerted_at", sa.true(), "解决"),
    )
    for due_col, alerted_col, alerted_name, pending, label in checks:
        due = session.execute(
            sa.select(Ticket.id, Ticket.ticket_no, Ticket.kind, Ticket.product_name, due_col)
            .where(Ticket.status.in_(TICKET_STATUSES_OPEN), due_col <= at, alerted_col.is_(None), pending)
            .order_by(due_col).limit(500)
        ).all()
        for ticket_id, ticket_no, kind, product_name, due_at in due:
            claimed = session.execute(
                sa.update(Ticket).where(Ticket.id == ticket_id, alerted_col.is_(None))
                .values({alerted_name: at}).execution_options(synchronize_session=False)
            ).rowcount == 1
            if not claimed:  # another tick got it
                continue
            record(session, ticket_id, "overdue", f"已超过{label}时限", author="system", public=False,
                   data={"due": due_at.isoformat()})
            lines.append(f"工单 {ticket_no}（{kind.label}，{product_name}）已超过{label}时限")
            alerted.append(ticket_no)
        session.commit()
    if lines:
        raise_alert(session, "ticket_overdue", f"{len(lines)} 个售后工单已超时", lines)
    return alerted


# -- reading --------------------------------------------------------------------


def events(session, ticket_id, *, public_only=False):
    stmt = sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    if public_only:
        stmt = stmt.where(TicketEvent.public.is_(True))
    return session.scalars(stmt.order_by(TicketEvent.id)).all()


def attachments(session, ticket_id):
    return session.scalars(sa.select(TicketAttachment).where(TicketAttachment.ticket_id == ticket_id)
                           .order_by(TicketAttachment.id)).all()


def by_number(session, ticket_no):
    return session.scalar(sa.select(Ticket).where(Ticket.ticket_no == (ticket_no or "")[:24]))


def _due_order():
    return sa.case((Ticket.first_responded_at.is_(None), Ticket.first_response_due), else_=Ticket.resolve_due)


QUEUE_FILTERS = {
    "active": ("未关闭", TICKET_STATUSES_OPEN),
    **{s.value: (s.label, [s]) for s in TicketStatus},
    "all": ("全部", list(TicketStatus)),
}


def queue_page(session, status_filter, page, per_page):
    """(tickets, total): open ones by the deadline that comes first, closed ones newest first."""
    label, statuses = QUEUE_FILTERS.get(status_filter, QUEUE_FILTERS["active"])
    where = Ticket.status.in_(statuses)
    total = session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(where))
    is_closed = sa.case((Ticket.status.in_(TICKET_STATUSES_OPEN), 0), else_=1)
    rows = session.scalars(
        sa.select(Ticket).where(where)
        .order_by(is_closed, _due_order(), Ticket.resolved_at.desc(), Ticket.id)
        .limit(per_page).offset((max(page, 1) - 1) * per_page)
    ).all()
    return rows, total


def open_counts(session, at=None):
    """For the queue header: open tickets, and how many of them are past a deadline."""
    at = at or now()
    open_, overdue = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(_due_order() <= at))
        .select_from(Ticket).where(Ticket.status.in_(TICKET_STATUSES_OPEN))
    ).one()
    return open_, overdue


def delivered_code_numbers(session, order_id):
    """The card numbers the order got (for the prepared message; secrets stay out)."""
    return session.scalars(sa.select(CardCode.number).where(CardCode.order_id == order_id)).all()
