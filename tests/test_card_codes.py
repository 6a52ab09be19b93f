"""卡密 upload and management through the back office, on SQLite and PostgreSQL."""
import io
import threading
import time

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from kamen import secretbox
from kamen.extensions import db
from kamen.models import CardCode, CardCodeUpload, Product, StockMode, UploadChunk
from kamen.services import card_codes as card_service
from tests.helpers import make_product

MB = 1024 * 1024


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


@pytest.fixture
def cards(app):
    return make_product(name="京东E卡 100元", stock_mode=StockMode.CARDS, stock=0)


def _upload(admin, product, data, name="codes.txt", htmx=False):
    return admin.post(
        f"/admin/products/{product.id}/card-codes",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        htmx=htmx,
    )


def _paste(admin, product, text, htmx=True):
    return admin.post(f"/admin/products/{product.id}/card-codes", data={"codes": text}, htmx=htmx)


def _stored(product):
    """{(number, secret): status} of the product's codes, decrypted."""
    db.session.expire_all()
    codes = db.session.scalars(sa.select(CardCode).where(CardCode.product_id == product.id))
    return {(c.number, secretbox.decrypt(c.secret_encrypted)): c.status for c in codes}


def _stock(product):
    db.session.expire_all()
    return db.session.get(Product, product.id).stock


def _xlsx(rows):
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_txt_upload_adds_codes_and_counts_them_into_stock(admin, cards):
    response = _upload(admin, cards, b"AAAA-1111-2222\nBBBB-3333-4444\n\nCCCC-5555-6666\n")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "共读取 3 条：新增入库 <strong>3</strong> 条" in page
    assert "另跳过空行 1 行" in page
    assert _stored(cards) == {("", "AAAA-1111-2222"): "available", ("", "BBBB-3333-4444"): "available",
                              ("", "CCCC-5555-6666"): "available"}
    assert _stock(cards) == 3


@pytest.mark.parametrize("sep", ["\t", ",", " ", "----", "|", "\u3000", "，", " ---- "])
def test_every_separator_splits_number_and_secret(admin, cards, sep):
    text = f"卡号{sep}卡密\n6001{sep}PWD-A1\n6002{sep}PWD-B2\n"
    _upload(admin, cards, text.encode("utf-8"))
    assert _stored(cards) == {("6001", "PWD-A1"): "available", ("6002", "PWD-B2"): "available"}
    assert _stock(cards) == 2


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-16"])
def test_txt_in_gbk_utf8_bom_and_utf16(admin, cards, encoding):
    text = "卡号----卡密\r\n礼品卡001----京东E卡甲壹\r\n礼品卡002----京东E卡乙贰\r\n"
    response = _upload(admin, cards, text.encode(encoding))
    assert "新增入库 <strong>2</strong> 条" in response.get_data(as_text=True)
    assert _stored(cards) == {("礼品卡001", "京东E卡甲壹"): "available", ("礼品卡002", "京东E卡乙贰"): "available"}


def test_full_width_characters_and_stray_spaces_are_normalized(admin, cards):
    _upload(admin, cards, "  ＡＢＣＤ１２３４  \n\ufeff7001｜ＸＹ９\u00a0\n".encode("utf-8"))
    assert _stored(cards) == {("", "ABCD1234"): "available", ("7001", "XY9"): "available"}


def test_csv_with_extra_columns_in_gbk(admin, cards):
    data = "卡号,卡密,面值,有效期\n8001,SEC-001,100,2027-12-31\n8002,SEC-002,100,2027-12-31\n".encode("gbk")
    _upload(admin, cards, data, name="卡密.csv")
    assert _stored(cards) == {("8001", "SEC-001"): "available", ("8002", "SEC-002"): "available"}
    assert _stock(cards) == 2


@pytest.mark.parametrize("header", [["账号", "密码"], ["卡号", "密码"], ["卡密"]])
def test_csv_header_synonyms(admin, cards, header):
    rows = [header] + ([["9001", "PW-1"], ["9002", "PW-2"]] if len(header) == 2 else [["PW-1"], ["PW-2"]])
    data = "\n".join("\t".join(r) for r in rows).encode("utf-8")
    _upload(admin, cards, data, name="codes.csv")
    numbers = ("9001", "9002") if len(header) == 2 else ("", "")
    assert _stored(cards) == {(numbers[0], "PW-1"): "available", (numbers[1], "PW-2"): "available"}


def test_xlsx_finds_the_header_below_a_title_and_keeps_numbers_as_text(admin, cards):
    data = _xlsx([
        ["XX货源卡密 2026-11"],
        [],
        ["序号", "卡号", "密码", "面值"],
        [1, 1234567890, "QWE-RTY", 50],
        [2, "0012345", 987654321, 50],
        [3, 1.2345678901234567e18, "LOST-DIGITS", 50],
        [4, "", "", 50],
        [5, "5005", "", 50],
    ])
    page = _upload(admin, cards, data, name="卡密.xlsx").get_data(as_text=True)
    assert _stored(cards) == {("1234567890", "QWE-RTY"): "available", ("0012345", "987654321"): "available"}
    assert "第 6 行：超过 15 位的数字已被 Excel 改写" in page
    assert "第 8 行：卡密为空" in page
    assert "无效 2 条" in page
    assert _stock(cards) == 2


def test_xlsx_without_a_secret_column_is_refused(admin, cards):
    response = _upload(admin, cards, _xlsx([["商品", "价格"], ["A", 1]]), name="x.xlsx")
    assert response.status_code == 400
    assert "没有找到“卡密”列" in response.get_data(as_text=True)
    assert _stored(cards) == {}


def test_paste_returns_the_panel_with_report_and_list(admin, cards):
    response = _paste(admin, cards, "P-0001-AAAA\r\nP-0002-BBBB")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="card-codes-panel">')
    assert "新增入库 <strong>2</strong> 条" in page
    assert "••••AAAA" in page and "P-0001-AAAA" not in page
    assert _stock(cards) == 2


def test_a_long_paste_is_accepted(admin, cards):
    """The paste form posts urlencoded: multipart fields are capped at 500 KB by Werkzeug."""
    text = "".join(f"LONGPASTE-{i:08d}\n" for i in range(40_000))
    assert len(text) > 500_000
    page = _paste(admin, cards, text).get_data(as_text=True)
    assert "新增入库 <strong>40000</strong> 条" in page
    assert _stock(cards) == 40_000


def test_duplicates_in_file_and_in_stock_are_reported_with_lines_and_not_added(admin, cards):
    _paste(admin, cards, "OLD-0001\nOLD-0002\n6000----SOLD-0003")
    db.session.execute(sa.update(CardCode).where(CardCode.number == "6000").values(status="sold"))
    db.session.commit()
    before = _stock(cards)

    response = _paste(admin, cards, "NEW-0001\nOLD-0002\nNEW-0001\n\nNEW-0002\n6000----SOLD-0003\nOLD-0001")
    page = response.get_data(as_text=True)
    assert "共读取 6 条：新增入库 <strong>2</strong> 条" in page
    assert "第 3 行：与第 1 行重复" in page
    assert "第 2 行：已有相同卡密（未售）" in page
    assert "第 7 行：已有相同卡密（未售）" in page
    assert "第 6 行：已售出过" in page
    assert "文件内重复 1 条，已在库存中 3 条，无效 0 条" in page
    assert _stock(cards) == before + 2
    assert len(_stored(cards)) == 5


def test_invalid_lines_are_listed_and_the_valid_ones_added(admin, cards):
    text = "GOOD-0001\n1----2----3\n7001,\n\x01BAD\nGOOD-0002\n--------\n" + "X" * 600
    page = _paste(admin, cards, text).get_data(as_text=True)
    assert "第 2 行：一行分成了 3 段" in page
    assert "第 3 行：卡号或卡密为空" in page
    assert "第 4 行：含有不可见的控制字符" in page
    assert "第 7 行：卡密超过 512 个字符" in page
    assert "新增入库 <strong>2</strong> 条" in page
    assert set(_stored(cards)) == {("", "GOOD-0001"), ("", "GOOD-0002")}


def test_product_not_selling_card_codes_is_refused(admin):
    synced = make_product(stock_mode=StockMode.SYNCED, stock=7)
    response = _upload(admin, synced, b"CODE-0001\n")
    assert response.status_code == 400
    assert "请先在商品编辑页把库存方式改为 本地卡密" in response.get_data(as_text=True)
    assert _stored(synced) == {} and _stock(synced) == 7
    assert "不能上传卡密" in admin.get(f"/admin/products/{synced.id}/card-codes").get_data(as_text=True)


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"", "codes.txt", "文件是空的"),
        (b"\n \n\t\n", "codes.txt", "没有读到任何卡密"),
        ("卡号----卡密\n".encode(), "codes.txt", "没有读到任何卡密"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "codes.txt", "无法识别的文件类型：请上传 .txt"),
        (b"PK\x03\x04" + bytes(100), "codes.xlsx", "文件已损坏"),
        (b"<html><table><tr><td>1</td></tr></table></html>", "codes.xls", "网页格式"),
        (b"A" * (MB + 1), "codes.txt", "文件太大，上限 1 MB"),
        ("".join(f"C{i:06d}\n" for i in range(100_001)).encode(), "codes.txt", "卡密超过单次上传上限 100000 条"),
    ],
    ids=["empty", "blank-lines", "header-only", "png", "corrupt-zip", "html-xls", "too-big", "too-many"],
)
def test_bad_uploads_get_a_chinese_message_and_store_nothing(admin, app, cards, data, name, message):
    app.config["IMPORT_MAX_BYTES"] = MB  # the import size limit applies to card codes too
    response = _upload(admin, cards, data, name=name, htmx=True)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "未上传任何卡密" in page and message in page
    assert _stored(cards) == {} and _stock(cards) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0  # the file is not kept


def test_exactly_the_limit_is_accepted(app, cards):
    text = "".join(f"C{i:03d}\n" for i in range(10))
    report = card_service.upload_text(db.session, cards, text, card_service.Limits(max_codes=10))
    assert report.added == 10 and _stock(cards) == 10
    with pytest.raises(card_service.CardCodeError, match="上限 10 条"):
        card_service.upload_text(db.session, cards, text + "C999\n", card_service.Limits(max_codes=10))
    assert _stock(cards) == 10


def test_nothing_to_upload(admin, cards):
    response = _paste(admin, cards, "   ", htmx=False)
    assert response.status_code == 400
    assert "请选择要上传的文件，或在文本框里粘贴卡密" in response.get_data(as_text=True)


def test_secrets_are_encrypted_at_rest_and_masked_on_the_page(admin, cards):
    _paste(admin, cards, "4001----SECRET-PLAIN-9876\nSHORT6")
    rows = db.session.execute(
        sa.text("SELECT number, secret_encrypted, digest FROM card_codes WHERE product_id = :p"), {"p": cards.id}
    ).all()
    assert len(rows) == 2
    for number, secret_encrypted, digest in rows:
        assert "SECRET-PLAIN" not in secret_encrypted and "SHORT6" not in secret_encrypted
        assert len(digest) == 64 and digest not in secret_encrypted
    assert {secretbox.decrypt(r.secret_encrypted) for r in rows} == {"SECRET-PLAIN-9876", "SHORT6"}

    page = admin.get(f"/admin/products/{cards.id}/card-codes").get_data(as_text=True)
    assert "••••••9876" in page and "SECRET-PLAIN" not in page
    assert "••••••RT6" in page and "SHORT6" not in page
    assert "4001" in page


@pytest.mark.parametrize(
    "secret, masked",
    [
        ("ABCDEFGH1234", "••••••1234"),
        ("12345678", "••••••5678"),
        ("SHORT6", "••••••RT6"),
        ("AB", "••••••B"),
        ("X", "••••••"),
    ],
)
def test_mask_shows_at_most_the_last_four_and_never_half(secret, masked):
    assert card_service.mask_secret(secret) == masked


def test_delete_removes_only_unsold_codes_and_decrements_stock(admin, cards):
    _paste(admin, cards, "\n".join(f"DEL-{i:04d}" for i in range(5)))
    codes = {secretbox.decrypt(c.secret_encrypted): c.id
             for c in db.session.scalars(sa.select(CardCode).where(CardCode.product_id == cards.id))}
    db.session.execute(sa.update(CardCode).where(CardCode.id == codes["DEL-0004"]).values(status="sold"))
    db.session.execute(sa.update(Product).where(Product.id == cards.id).values(stock=4))
    db.session.commit()

    response = admin.post(
        f"/admin/products/{cards.id}/card-codes/delete",
        data={"ids": [str(codes["DEL-0000"]), str(codes["DEL-0001"]), str(codes["DEL-0004"])]},
        htmx=True,
    )
    page = response.get_data(as_text=True)
    assert "已删除 2 条未售卡密" in page and "有已售出的，未删除" in page
    assert _stock(cards) == 2
    assert _stored(cards) == {("", "DEL-0002"): "available", ("", "DEL-0003"): "available",
                              ("", "DEL-0004"): "sold"}

    response = admin.post(f"/admin/products/{cards.id}/card-codes/delete", data={"ids": [str(codes["DEL-0002"])]})
    assert response.status_code == 302
    assert "已删除 1 条未售卡密" in admin.get(response.headers["Location"]).get_data(as_text=True)
    assert _stock(cards) == 1


def test_delete_ignores_other_products_codes(admin, cards):
    other = make_product(stock_mode=StockMode.CARDS, stock=0)
    _paste(admin, other, "OTHER-0001")
    other_id = db.session.scalar(sa.select(CardCode.id).where(CardCode.product_id == other.id))
    admin.post(f"/admin/products/{cards.id}/card-codes/delete", data={"ids": [str(other_id)]}, htmx=True)
    assert _stored(other) == {("", "OTHER-0001"): "available"} and _stock(other) == 1


def test_concurrent_upload_of_the_same_codes_is_counted_once(app, cards, monkeypatch):
    """Another upload inserts a code after this one looked: ON CONFLICT skips it, stock counts only ours."""
    card_service.upload_text(db.session, cards, "RACE-0001")
    monkeypatch.setattr(card_service, "_statuses", lambda session, product_id, digests: {})
    report = card_service.upload_text(db.session, cards, "RACE-0001\nRACE-0002")
    assert report.added == 1
    assert report.in_stock == [(1, "available")]
    assert _stock(cards) == 2
    assert set(_stored(cards)) == {("", "RACE-0001"), ("", "RACE-0002")}


def test_switching_the_product_away_from_cards_mid_upload_stores_nothing(app, cards):
    db.session.get(Product, cards.id)
    with db.engine.begin() as conn:  # another admin saves the product meanwhile
        conn.execute(sa.text("UPDATE products SET stock_mode = 'synced' WHERE id = :id"), {"id": cards.id})
    with pytest.raises(card_service.CardCodeError, match="本地卡密"):
        card_service.upload_text(db.session, cards, "MID-0001\nMID-0002")
    assert _stored(cards) == {} and _stock(cards) == 0


def test_list_pages_and_filters_by_status(admin, app, cards):
    app.config["ADMIN_PAGE_SIZE"] = 10
    _paste(admin, cards, "\n".join(f"LIST-{i:04d}" for i in range(25)))
    db.session.execute(sa.update(CardCode).where(CardCode.id <= db.session.scalar(
        sa.select(sa.func.min(CardCode.id))) + 2).values(status="sold"))
    db.session.execute(sa.update(Product).where(Product.id == cards.id).values(stock=22))
    db.session.commit()

    page = admin.get(f"/admin/products/{cards.id}/card-codes?page=3").get_data(as_text=True)
    assert "第 3 / 3 页，共 25 条" in page
    assert page.count("<code>") == 5
    assert "未售 <strong>22</strong>" in page and "已售 <strong>3</strong>" in page
    sold = admin.get(f"/admin/products/{cards.id}/card-codes?status=sold").get_data(as_text=True)
    assert sold.count("<code>") == 3 and 'name="ids"' not in sold
    assert "不一致" not in page
    assert "单次最多 100000 条、50 MB" in page


def test_page_warns_when_stock_differs_from_unsold_codes(admin, cards):
    _paste(admin, cards, "W-0001\nW-0002")
    db.session.execute(sa.update(Product).where(Product.id == cards.id).values(stock=9))
    db.session.commit()
    page = admin.get(f"/admin/products/{cards.id}/card-codes").get_data(as_text=True)
    assert "商品库存 9 与未售卡密 2 条不一致" in page


def test_product_form_links_to_card_codes_only_for_card_products(admin, cards):
    link = f"/admin/products/{cards.id}/card-codes"
    assert link in admin.get(f"/admin/products/{cards.id}/edit").get_data(as_text=True)
    synced = make_product(stock_mode=StockMode.SYNCED)
    assert "card-codes" not in admin.get(f"/admin/products/{synced.id}/edit").get_data(as_text=True)


def test_card_code_pages_need_login(client, cards):
    assert client.get(f"/admin/products/{cards.id}/card-codes").status_code == 302
    response = client.post(f"/admin/products/{cards.id}/card-codes", data={"codes": "X-1"})
    assert response.status_code == 302 and _stored(cards) == {}


@pytest.mark.parametrize(
    "line, expected",
    [
        ("ABC", ("", "ABC")),
        ("  1\t2  ", ("1", "2")),
        ("1  ,  2", ("1", "2")),
        ("1 ---- 2 3", ("1", "2 3")),
        ("1    2", ("1", "2")),
        ("", None),
        ("   \u3000 ", None),
        ("||", None),
    ],
)
def test_split_line(line, expected):
    assert card_service.split_line(line) == expected


@pytest.mark.backends("sqlite")
def test_a_file_is_read_in_the_background_and_the_page_shows_progress_then_the_report(admin, app, cards):
    """Jobs on the in-process pool (as ./scripts/run serves them): the request only stores the file."""
    app.config["JOBS_SYNC"] = False
    data = "".join(f"BG-{i:05d}\n" for i in range(3000)).encode()
    response = _upload(admin, cards, data, htmx=True)
    assert response.status_code == 200
    job = db.session.scalar(sa.select(CardCodeUpload))
    page = response.get_data(as_text=True)
    if job.status in ("queued", "running"):  # the pool may not have started it yet
        assert "正在读取卡密文件“codes.txt”" in page and f"upload={job.id}" in page and 'hx-trigger="every 1s"' in page
    deadline = time.monotonic() + 30
    while True:
        db.session.expire_all()  # the test shares the views' session: no stale job row
        page = admin.get(f"/admin/products/{cards.id}/card-codes?upload={job.id}",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
        if "正在读取" not in page or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "新增入库 <strong>3000</strong> 条" in page and "hx-trigger" not in page
    db.session.expire_all()
    assert _stock(cards) == 3000
    job = db.session.get(CardCodeUpload, job.id)
    assert (job.status, job.upload_id, job.report["added"]) == ("done", None, 3000)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0  # secrets not kept


def test_a_long_paste_goes_to_the_job_and_a_short_one_stays_inline(admin, cards):
    short = _paste(admin, cards, "SHORT-1\nSHORT-2\n")
    assert "新增入库 <strong>2</strong> 条" in short.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CardCodeUpload)) == 0
    long_text = "".join(f"PASTE-{i:07d}-{'x' * 20}\n" for i in range(card_service.PASTE_INLINE_BYTES // 30 + 10))
    page = _paste(admin, cards, long_text).get_data(as_text=True)
    job = db.session.scalar(sa.select(CardCodeUpload))
    assert job.filename == "粘贴的卡密.txt" and job.status == "done"
    assert f"新增入库 <strong>{job.report['added']}</strong> 条" in page and job.report["added"] > 8000
    assert _stock(cards) == 2 + job.report["added"]


def test_a_job_runs_once_even_when_delivered_twice(app, cards):
    job = card_service.queue_file(db.session, cards, io.BytesIO(b"ONCE-1\nONCE-2\n"), "a.txt")
    assert job.status == "done" and _stock(cards) == 2
    again = card_service.read_queued(db.session, job.id)
    assert again.status == "done" and again.report["added"] == 2 and _stock(cards) == 2


def test_another_products_upload_is_not_shown(admin, cards):
    other = make_product(name="其他卡", stock_mode=StockMode.CARDS, stock=0)
    job = card_service.queue_file(db.session, other, io.BytesIO(b"OTHER-1\n"), "o.txt")
    page = admin.get(f"/admin/products/{cards.id}/card-codes?upload={job.id}").get_data(as_text=True)
    assert "上传结果" not in page and "新增入库" not in page


def test_a_hostile_sheet_is_refused_before_it_is_loaded(admin, cards, tmp_path):
    from tests.importing.test_hostile_files import far_cell_xlsx

    data = far_cell_xlsx(tmp_path / "far.xlsx").read_bytes()
    response = _upload(admin, cards, data, name="卡密.xlsx", htmx=True)
    assert response.status_code == 422
    assert "未上传任何卡密：表格有 150000 行，超过" in response.get_data(as_text=True)
    assert _stock(cards) == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0


@pytest.mark.parametrize("bad, message", [
    (b"BAD-\x00-1\n", "第 8001 行含有空字符"),
    ("坏卡-1\n".encode("gbk"), "第 8001 行有无法识别的文字"),
    (b"X" * (MB + 10) + b"\n", "第 8001 行超过 1 MB"),
], ids=["nul", "mixed-encoding", "long-line"])
def test_a_broken_text_file_is_refused_like_a_price_list(admin, cards, bad, message):
    """卡密 files are read by the importer's one line reader: the same limits, the same words
    (the bad line comes after the part the file type is told from)."""
    good = "".join(f"好卡-{n:05d}\n" for n in range(8000)).encode("utf-8")
    response = _upload(admin, cards, good + bad, htmx=True)
    assert response.status_code == 422
    assert f"未上传任何卡密：{message}" in response.get_data(as_text=True)
    assert _stock(cards) == 0


def test_queue_unreachable_is_a_message_not_a_500(admin, app, cards):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    response = _upload(admin, cards, b"RQ-DOWN-1\n", htmx=True)
    assert response.status_code == 422
    assert "未上传任何卡密：后台任务暂时不可用" in response.get_data(as_text=True)
    assert _stock(cards) == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0


def test_a_job_whose_worker_died_is_shown_failed_with_the_reason(admin, cards):
    from datetime import timedelta

    from kamen.services import uploads
    from kamen.timeutil import utcnow

    upload = uploads.save(db.session, io.BytesIO(b"LOST-1\n"), purpose="card_codes", max_bytes=MB, encrypt=True)
    job = CardCodeUpload(product_id=cards.id, upload_id=upload.id, filename="lost.txt", status="running",
                         created_at=utcnow() - card_service.STALE_AFTER - timedelta(minutes=1))
    db.session.add(job)
    db.session.commit()
    page = admin.get(f"/admin/products/{cards.id}/card-codes?upload={job.id}").get_data(as_text=True)
    assert "后台读取中断，请核对下方卡密列表后重新上传" in page and "hx-trigger" not in page
    db.session.expire_all()
    assert db.session.get(CardCodeUpload, job.id).status == "failed"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0


@pytest.mark.backends("postgresql")
def test_recount_waits_for_an_upload_in_flight_and_counts_its_codes(app, cards):
    """A recount (a product switched to 本地卡密) while another transaction is adding
    codes: it waits for that transaction and then counts what it added."""
    card_service.upload_text(db.session, cards, "OLD-0001")
    upload = db.engine.connect()
    tx = upload.begin()
    upload.execute(CardCode.__table__.insert(), [
        {"product_id": cards.id, "number": "", "secret_encrypted": secretbox.encrypt(f"NEW-{n}"),
         "digest": f"in-flight-{n}", "status": "available", "upload_id": "in-flight"} for n in range(2)])
    upload.execute(sa.update(Product.__table__).where(Product.__table__.c.id == cards.id)
                   .values(stock=Product.__table__.c.stock + 2))

    def recount():
        with app.app_context():
            card_service.recount_stock(db.session, [cards.id])
            db.session.commit()

    worker = threading.Thread(target=recount)
    worker.start()
    worker.join(timeout=1)
    assert worker.is_alive()  # blocked on the product row the upload holds
    tx.commit()
    upload.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert _stock(cards) == 3
