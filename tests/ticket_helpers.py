"""售后 in tests: a paid order bought through the shop, and image files (good and hostile)."""
import io
import struct
import zlib

import sqlalchemy as sa
from PIL import Image

from kamen.extensions import db
from kamen.models import Order, Ticket
from tests.order_helpers import buy_form, make_channel, notify_params


def paid_order(client, product, channel=None, **form):
    """Buy ``product`` through the shop as this client's buyer and pay it with a signed notify."""
    channel = channel or make_channel()
    response = client.post(f"/p/{product.id}/buy", data=buy_form(**form))
    assert response.status_code == 302, response.get_data(as_text=True)
    order = db.session.scalars(sa.select(Order).order_by(Order.id.desc())).first()
    answer = client.get(f"/pay/notify/{channel.id}", query_string=notify_params(order.order_no, order.amount))
    assert answer.text == "success"
    db.session.expire_all()
    return db.session.get(Order, order.id)


def image_bytes(fmt="PNG", size=(40, 30), color=(200, 30, 30)):
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def png_claiming(width, height):
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb's shape)."""
    data = bytearray(image_bytes("PNG", (1, 1)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def ticket_form(kind="invalid_code", text="卡密提示已被使用，无法兑换", shots=()):
    """The 售后 form's fields; ``shots`` are (bytes, filename) pairs."""
    data = {"kind": kind, "text": text}
    if shots:
        data["shots"] = [(io.BytesIO(content), name) for content, name in shots]
    return data


def last_ticket():
    db.session.expire_all()
    return db.session.scalars(sa.select(Ticket).order_by(Ticket.id.desc())).first()
