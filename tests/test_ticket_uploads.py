"""售后 screenshots: real images are kept encrypted and shown only to the buyer and admins;
anything else is refused with a Chinese reason and nothing is kept."""
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Ticket, TicketAttachment, Upload, UploadChunk
from tests.order_helpers import make_card_product
from tests.ticket_helpers import image_bytes, last_ticket, paid_order, png_claiming, ticket_form


def _post(client, order, shots):
    return client.post(f"/order/{order.order_no}/ticket", data=ticket_form(shots=shots),
                       content_type="multipart/form-data")


def _stored():
    return (db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)),
            db.session.scalar(sa.select(sa.func.count()).select_from(Upload)))


def test_bad_files_are_refused_and_nothing_is_kept(app, client):
    order = paid_order(client, make_card_product(codes=1))
    good = (image_bytes("PNG"), "ok.png")
    truncated = image_bytes("PNG", (300, 300))[:200]
    cases = [
        ([(b"MZ\x90\x00 this is a program, not a picture", "截图.png")], "不是有效的图片"),
        ([(b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg")], "不是有效的图片"),
        ([(image_bytes("BMP"), "old.bmp")], "格式不支持"),
        ([(truncated, "half.png")], "不是有效的图片"),
        ([(png_claiming(7000, 7000), "huge.png")], "尺寸异常"),  # 49 megapixels, from a 70-byte file
        ([(png_claiming(30000, 30000), "bomb.png")], "尺寸异常"),  # past Pillow's own bomb limit
        ([(b"\x89PNG" + b"\0" * (50 * 1024 * 1024), "50mb.png")], "太大"),
        ([good, good, good, good], "最多上传 3 张"),
        ([good, (b"not an image at all", "second.jpg")], "“second.jpg”不是有效的图片"),  # one bad file spoils all
    ]
    for shots, message in cases:
        response = _post(client, order, shots)
        assert response.status_code == 400, shots[0][1]
        assert message in response.text, (shots[0][1], response.text[-600:])
        assert _stored() == (0, 0), shots[0][1]


def test_screenshots_are_stored_encrypted_and_served_only_to_buyer_and_admins(app, client, auth):
    order = paid_order(client, make_card_product(codes=1))
    png, jpeg = image_bytes("PNG", (64, 48)), image_bytes("JPEG", (1170, 2532))  # a phone screenshot
    response = _post(client, order, [(png, "a.png"), (jpeg, "b.jpg")])
    assert response.status_code == 302, response.text
    ticket = last_ticket()
    shots = db.session.scalars(sa.select(TicketAttachment).where(TicketAttachment.ticket_id == ticket.id)
                               .order_by(TicketAttachment.id)).all()
    assert [(s.mimetype, s.width, s.height) for s in shots] == [("image/png", 64, 48), ("image/jpeg", 1170, 2532)]
    upload = db.session.get(Upload, shots[0].upload_id)
    chunk = db.session.scalar(sa.select(UploadChunk.data).where(UploadChunk.upload_id == upload.id))
    assert upload.encrypted and png not in chunk

    url = f"/order/{order.order_no}/tickets/{ticket.ticket_no}/shots/{shots[0].id}"
    page = client.get(f"/order/{order.order_no}/tickets/{ticket.ticket_no}").text
    assert url in page
    served = client.get(url)
    assert served.data == png and served.mimetype == "image/png"
    assert "no-store" in served.headers["Cache-Control"] and served.headers["X-Content-Type-Options"] == "nosniff"
    # Another browser: no order, no picture; another ticket's number does not open it either.
    assert app.test_client().get(url).status_code == 404
    other = paid_order(client, make_card_product(codes=1))
    assert client.get(f"/order/{other.order_no}/tickets/{ticket.ticket_no}/shots/{shots[0].id}").status_code == 404

    auth.login()
    admin_url = f"/admin/tickets/{ticket.id}/shots/{shots[1].id}"
    assert admin_url in client.get(f"/admin/tickets/{ticket.id}").text
    assert client.get(admin_url).data == jpeg
    auth.logout()
    assert client.get(admin_url).status_code == 302  # to the login
