"""Card codes (卡密) of products sold from local stock: upload, list, delete.

A file is stored (encrypted) with the upload storage and read by a job, so
a big file never holds a web worker; a short paste is read in the request.
An upload is read and checked whole, then stored in one transaction: new
codes go in with INSERT … ON CONFLICT DO NOTHING, so a concurrent upload of
the same codes cannot fail it half-way, and the stock counter moves by
exactly what the database inserted (or deleted), in one conditional UPDATE.

Secrets are encrypted at rest, never logged, and shown masked. The duplicate
digest is an HMAC keyed by SECRET_KEY: a plain sha256 of a short code would
let anyone holding a database dump confirm guesses.
"""
import csv
import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from kamen import queue, secretbox
from kamen.models import CardCode, CardCodeUpload, Product, StockMode
from kamen.services import uploads
from kamen.services.importing.errors import BadCell, ImportFileError
from kamen.services.importing.readers import MB, NOT_A_SHEET, ReadLimits, open_spreadsheet
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger(__name__)

MAX_NUMBER_CHARS = 128  # the column's size
PASTE_INLINE_BYTES = 256 * 1024  # a longer paste is read by a job, like a file
STALE_AFTER = timedelta(minutes=30)  # a file job still unfinished by then has lost its worker
MAX_SECRET_CHARS = 512
HEADER_SCAN_ROWS = 20
BATCH = 1000

NUMBER_HEADERS = frozenset({"卡号", "账号"})
SECRET_HEADERS = frozenset({"卡密", "密码"})
SEPARATORS = ("----", "\t", "|", ",")  # tried in this order; otherwise runs of spaces

AVAILABLE, RESERVED, SOLD = "available", "reserved", "sold"  # reserved: held by an unpaid order
STATUS_LABELS = {AVAILABLE: "未售", RESERVED: "待支付占用", SOLD: "已售"}

NOT_CARDS = "该商品的库存方式不是“本地卡密”，请先在商品编辑页把库存方式改为 本地卡密，再上传卡密"
WRONG_TYPE = "无法识别的文件类型：请上传 .txt（每行一个卡密）、.csv 或 Excel（.xlsx / .xls）文件"
NOTHING = "没有读到任何卡密（文件只有空行或表头），请检查是否选错了文件"
NO_HEADER = (
    f"表格前 {HEADER_SCAN_ROWS} 行里没有找到“卡密”列：请在表头写上“卡号”“卡密”（或“账号”“密码”），"
    "或者上传每行一个卡密的 .txt 文件"
)

# 全角 → 半角 (Ａ１，｜ and the ideographic space), no-break space → space; invisible marks dropped.
_NORMALIZE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {
    0x3000: " ", 0xA0: " ", 0xFEFF: None, 0x200B: None,
}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class CardCodeError(ValueError):
    """The upload was refused and nothing was stored; str() is the Chinese message."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 5 * MB
    max_codes: int = 100_000


@dataclass
class ParsedCodes:
    """What a file holds, before the database is asked: line numbers are the admin's."""

    codes: list = field(default_factory=list)  # [(line, number, secret)], first of each code
    duplicates: list = field(default_factory=list)  # [(line, first_line)]
    invalid: list = field(default_factory=list)  # [(line, reason)]
    blank: int = 0

    @property
    def entries(self):
        return len(self.codes) + len(self.duplicates) + len(self.invalid)


@dataclass
class UploadReport:
    """Honest totals: entries = added + duplicates in file + already in stock + invalid."""

    upload_id: str
    entries: int
    added: int
    duplicates_in_file: list  # [(line, first_line)]
    in_stock: list  # [(line, status)]
    invalid: list  # [(line, reason)]
    blank: int


@dataclass(frozen=True)
class CodeRow:
    id: int
    number: str
    masked: str
    status: str
    created_at: datetime


class _Collector:
    def __init__(self, limits):
        self.limits = limits
        self.parsed = ParsedCodes()
        self._first_line = {}

    def blank(self):
        self.parsed.blank += 1

    def invalid(self, line, reason):
        self._count()
        self.parsed.invalid.append((line, reason))

    def code(self, line, number, secret):
        reason = _problem(number, secret)
        if reason:
            self.invalid(line, reason)
            return
        self._count()
        first = self._first_line.setdefault((number, secret), line)
        if first == line:
            self.parsed.codes.append((line, number, secret))
        else:
            self.parsed.duplicates.append((line, first))

    def _count(self):
        if self.parsed.entries >= self.limits.max_codes:
            raise CardCodeError(f"卡密超过单次上传上限 {self.limits.max_codes} 条，请拆分后分批上传")

    def result(self):
        if not self.parsed.entries:
            raise CardCodeError(NOTHING)
        return self.parsed


def normalize(text):
    return text.translate(_NORMALIZE).strip()


def split_line(text):
    """(number, secret) of one line: "卡密" alone or "卡号<sep>卡密"; None if blank.

    Raises CardCodeError with the reason when the line is neither."""
    text = normalize(text)
    if not text:
        return None
    sep = next((s for s in SEPARATORS if s in text), None)
    parts = [p.strip() for p in text.split(sep)] if sep else text.split()
    if not any(parts):  # a drawn line such as "--------"
        return None
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) > 2:
        raise CardCodeError(f"一行分成了 {len(parts)} 段：每行只能是“卡密”或“卡号 分隔符 卡密”")
    if not all(parts):
        raise CardCodeError("卡号或卡密为空")
    return parts[0], parts[1]


def _problem(number, secret):
    if not secret:
        return "卡密为空"
    if _CONTROL.search(number) or _CONTROL.search(secret):
        return "含有不可见的控制字符"
    if len(number) > MAX_NUMBER_CHARS:
        return f"卡号超过 {MAX_NUMBER_CHARS} 个字符"
    if len(secret) > MAX_SECRET_CHARS:
        return f"卡密超过 {MAX_SECRET_CHARS} 个字符"
    return None


def _is_header(parts):
    names = {normalize(str(p)) for p in parts} - {""}
    return bool(names & SECRET_HEADERS) and names <= NUMBER_HEADERS | SECRET_HEADERS


def parse_text(text, limits=Limits()):
    """Pasted text: one code per line, like a .txt file."""
    lines = _LINE_BREAK.split(text)
    if lines[-1] == "":  # the final line break
        lines.pop()
    return _parse_lines(lines, limits)


def _parse_lines(lines, limits):
    """One code per line (see split_line); a 卡号/卡密 title line is skipped."""
    collector = _Collector(limits)
    seen_content = False
    for line, raw in enumerate(lines, 1):
        try:
            pair = split_line(raw)
        except CardCodeError as exc:
            collector.invalid(line, str(exc))
            seen_content = True
            continue
        if pair is None:
            collector.blank()
        elif not seen_content and _is_header(pair):
            seen_content = True
        else:
            seen_content = True
            collector.code(line, *pair)
    return collector.result()


def parse_file(path, limits=Limits()):
    """A .txt, .csv, .xlsx or .xls file; the type comes from its bytes, not its name."""
    read_limits = ReadLimits(max_bytes=limits.max_bytes, max_rows=limits.max_codes + HEADER_SCAN_ROWS)
    try:
        with open_spreadsheet(path, read_limits) as book:
            if book.kind != "csv":
                return _parse_table(book.rows(), limits)
            if _csv_header(book.lines(), book.delimiter):
                return _parse_table(book.rows(), limits)
            return _parse_lines(book.lines(), limits)
    except ImportFileError as exc:
        raise CardCodeError(WRONG_TYPE if str(exc) == NOT_A_SHEET else str(exc)) from exc


def _csv_header(lines, delimiter):
    """A csv whose first line names columns (卡号,卡密,面值…) is read as a table."""
    first = next((line for line in lines if line.strip()), "")
    cells = next(csv.reader([first], delimiter=delimiter), [])
    return len(cells) > 1 and any(normalize(c) in SECRET_HEADERS for c in cells)


def _parse_table(rows, limits):
    collector = _Collector(limits)
    columns = None
    for index, row in enumerate(rows):
        line = index + 1
        if columns is None:
            columns = _header_columns(row)
            if columns is None and line >= HEADER_SCAN_ROWS:
                raise CardCodeError(NO_HEADER)
            continue
        number_col, secret_col = columns
        try:
            number = _cell_text(row, number_col)
            secret = _cell_text(row, secret_col)
        except CardCodeError as exc:
            collector.invalid(line, str(exc))
            continue
        if not number and not secret:
            collector.blank()
        else:
            collector.code(line, number, secret)
    if columns is None:
        raise CardCodeError(NO_HEADER)
    return collector.result()


def _header_columns(row):
    """(number column or None, secret column) if this row is the header."""
    names = [normalize(c) if isinstance(c, str) else "" for c in row]
    secret = next((i for i, n in enumerate(names) if n in SECRET_HEADERS), None)
    if secret is None:
        return None
    number = next((i for i, n in enumerate(names) if n in NUMBER_HEADERS), None)
    return number, secret


def _cell_text(row, column):
    if column is None or column >= len(row):
        return ""
    value = row[column]
    if isinstance(value, BadCell):
        raise CardCodeError(value.message)
    if isinstance(value, bool) or isinstance(value, (date, datetime)):
        raise CardCodeError("单元格是日期或是/否，不是卡号或卡密")
    if isinstance(value, float):
        if abs(value) >= 1e15:
            raise CardCodeError("超过 15 位的数字已被 Excel 改写、末位丢失，请把该列设为文本后重新填写")
        return str(int(value)) if value.is_integer() else repr(value)
    return normalize(str(value))


def digest(number, secret):
    key = hashlib.sha256(b"kamen-card-digest:" + current_app.config["SECRET_KEY"].encode()).digest()
    return hmac.new(key, f"{number}\x1f{secret}".encode(), hashlib.sha256).hexdigest()


def check_accepts_codes(product):
    if product.stock_mode is not StockMode.CARDS:
        raise CardCodeError(NOT_CARDS)


def upload_file(session, product, path, limits=Limits()):
    check_accepts_codes(product)
    return store(session, product, parse_file(path, limits))


def upload_text(session, product, text, limits=Limits()):
    check_accepts_codes(product)
    if len(text.encode("utf-8")) > limits.max_bytes:
        raise CardCodeError(f"粘贴的内容超过 {limits.max_bytes / MB:.0f} MB，请改为上传文件或分批粘贴")
    return store(session, product, parse_text(text, limits))


def configured_limits():
    return Limits(max_bytes=current_app.config["IMPORT_MAX_BYTES"])


def queue_file(session, product, stream, filename, limits=None):
    """Store a card-code file (encrypted) and queue the job that reads it; returns the CardCodeUpload."""
    check_accepts_codes(product)
    limits = limits or configured_limits()
    try:
        upload = uploads.save(session, stream, purpose="card_codes", filename=filename,
                              max_bytes=limits.max_bytes, encrypt=True)
    except uploads.UploadTooLarge as exc:
        session.rollback()
        raise CardCodeError(f"文件太大，上限 {limits.max_bytes / MB:.0f} MB，请拆分后分批上传") from exc
    job = CardCodeUpload(product_id=product.id, upload_id=upload.id, filename=upload.filename, status="queued")
    session.add(job)
    session.commit()
    try:
        # The sweeper does not re-enqueue card-code reads: an unreachable queue fails the upload.
        paused = queue.enqueue("jobs.card_codes.read_card_codes", job.id, job_id=f"kamen-card-codes-{job.id}").paused
    except RedisError:
        log.exception("card codes upload %s: could not queue the job", job.id)
        paused = True
    if paused:
        _finish(session, job.id, "queued", "failed", message="后台任务暂时不可用，没有卡密入库，请稍后重新上传")
    session.refresh(job)  # a synchronous job has finished already
    return job


def job_for_page(session, product, job_id):
    """The upload the page shows; one stuck past STALE_AFTER (its worker died) is failed with the reason."""
    job = session.get(CardCodeUpload, job_id) if job_id else None
    if job is None or job.product_id != product.id:
        return None
    if job.status in ("queued", "running") and job.created_at < utcnow() - STALE_AFTER:
        _finish(session, job.id, ("queued", "running"), "failed",
                message="后台读取中断，请核对下方卡密列表后重新上传（已入库的卡密不会重复入库）")
        session.refresh(job)
    return job


def read_queued(session, job_id, limits=None):
    """The job: read the stored file into stock once, record the report, delete the file."""
    if not transition(session, CardCodeUpload, job_id, "queued", "running"):
        return session.get(CardCodeUpload, job_id)  # taken (or finished) by another run
    session.commit()
    job = session.get(CardCodeUpload, job_id)
    values = {"status": "failed"}
    try:
        product = session.get(Product, job.product_id)
        with uploads.local_copy(session, job.upload_id) as path:
            report = upload_file(session, product, path, limits or configured_limits())
        values = {"status": "done", "report": asdict(report)}
    except (CardCodeError, uploads.UploadGone) as exc:
        session.rollback()
        values["message"] = str(exc)
    except Exception:
        session.rollback()
        log.exception("card codes upload %s failed", job_id)
        values["message"] = "读取卡密文件时出错，没有卡密入库，请重新上传；如果再次出现请联系技术支持"
    _finish(session, job_id, "running", values.pop("status"), **values)
    return session.get(CardCodeUpload, job_id)


def _finish(session, job_id, expected, status, **values):
    """Record the outcome once and delete the file: it holds secrets, never kept once read."""
    upload_id = session.scalar(sa.select(CardCodeUpload.upload_id).where(CardCodeUpload.id == job_id))
    if transition(session, CardCodeUpload, job_id, expected, status, upload_id=None, finished_at=utcnow(), **values):
        if upload_id is not None:
            uploads.delete(session, upload_id)
    session.commit()


def report_of(job):
    return UploadReport(**job.report) if job.report else None


def store(session, product, parsed):
    """Add the new codes and count them into stock, all or nothing."""
    check_accepts_codes(product)
    product_id = product.id
    upload_id = uuid.uuid4().hex
    by_digest = {digest(number, secret): (line, number, secret) for line, number, secret in parsed.codes}
    try:
        existing = _statuses(session, product_id, list(by_digest))
        fresh = {d: code for d, code in by_digest.items() if d not in existing}
        inserted = _insert(session, product_id, fresh, upload_id)
        if inserted and not _move_stock(session, product_id, len(inserted)):
            raise CardCodeError(NOT_CARDS)
        session.commit()
    except Exception:
        session.rollback()
        raise
    # Codes another upload inserted while this one ran are already in stock too.
    raced = {d: AVAILABLE for d in fresh if d not in inserted}
    in_stock = sorted((by_digest[d][0], status) for d, status in (existing | raced).items())
    report = UploadReport(
        upload_id=upload_id,
        entries=parsed.entries,
        added=len(inserted),
        duplicates_in_file=parsed.duplicates,
        in_stock=in_stock,
        invalid=parsed.invalid,
        blank=parsed.blank,
    )
    log.info(
        "card codes upload %s for product %s: %d entries, %d added, %d duplicate in file, %d in stock, %d invalid",
        upload_id, product_id, report.entries, report.added, len(report.duplicates_in_file),
        len(report.in_stock), len(report.invalid),
    )
    return report


def _statuses(session, product_id, digests):
    """{digest: status} of the codes the product already has."""
    table = CardCode.__table__
    query = sa.select(table.c.digest, table.c.status).where(table.c.product_id == product_id)
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: IN-list chunks each rescan the product's codes
        # when the planner picks the product_id index (stale stats after a big upload).
        digest_list = sa.bindparam("digests", digests, type_=postgresql.ARRAY(sa.String))
        return dict(session.execute(query.where(table.c.digest == sa.any_(digest_list))).all())
    found = {}
    for start in range(0, len(digests), BATCH):
        found.update(session.execute(query.where(table.c.digest.in_(digests[start : start + BATCH]))).all())
    return found


def _insert(session, product_id, codes, upload_id):
    """Insert what is not there yet; returns the digests the database really inserted."""
    if not codes:
        return set()
    dialect_insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[session.get_bind().dialect.name]
    stmt = (
        dialect_insert(CardCode.__table__)
        .on_conflict_do_nothing(index_elements=["product_id", "digest"])
        .returning(CardCode.__table__.c.digest)
    )
    rows = [
        {
            "product_id": product_id,
            "number": number,
            "secret_encrypted": secretbox.encrypt(secret),
            "digest": d,
            "status": AVAILABLE,
            "upload_id": upload_id,
        }
        for d, (_line, number, secret) in codes.items()
    ]
    inserted = set()
    for start in range(0, len(rows), BATCH):
        inserted.update(session.execute(stmt, rows[start : start + BATCH]).scalars())
    return inserted


def _move_stock(session, product_id, delta):
    """stock = stock + delta in the database, only while the product sells local codes."""
    stock = Product.__table__.c.stock
    result = session.execute(
        sa.update(Product.__table__)
        .where(Product.__table__.c.id == product_id, Product.__table__.c.stock_mode == StockMode.CARDS.value)
        .values(stock=sa.case((stock + delta < 0, 0), else_=stock + delta))
    )
    return result.rowcount == 1


def recount_stock(session, product_ids):
    """stock = unsold codes, for those of ``product_ids`` (ids or a subquery) selling local
    codes: after a write that may have switched them to 本地卡密. The rows are locked
    first, so the count includes an upload that committed while we waited."""
    cards = sa.and_(Product.id.in_(product_ids), Product.stock_mode == StockMode.CARDS)
    session.execute(sa.select(Product.id).where(cards).with_for_update())
    unsold = (
        sa.select(sa.func.count())
        .where(CardCode.product_id == Product.id, CardCode.status == AVAILABLE)
        .scalar_subquery()
    )
    session.execute(sa.update(Product).where(cards).values(stock=unsold).execution_options(synchronize_session=False))


def delete_available(session, product, ids):
    """Delete unsold codes; stock drops by what was really deleted (a code sold meanwhile stays)."""
    ids = [i for i in ids if isinstance(i, int)]
    if not ids:
        raise CardCodeError("请先勾选要删除的卡密")
    try:
        deleted = session.execute(
            sa.delete(CardCode.__table__).where(
                CardCode.__table__.c.product_id == product.id,
                CardCode.__table__.c.id.in_(ids),
                CardCode.__table__.c.status == AVAILABLE,
            )
        ).rowcount
        if deleted:
            _move_stock(session, product.id, -deleted)
        session.commit()
    except Exception:
        session.rollback()
        raise
    log.info("card codes deleted for product %s: %d", product.id, deleted)
    return deleted


def status_counts(session, product_id):
    query = (
        sa.select(CardCode.status, sa.func.count()).where(CardCode.product_id == product_id).group_by(CardCode.status)
    )
    counts = dict(session.execute(query).all())
    return {status: counts.get(status, 0) for status in STATUS_LABELS}


def code_page(session, product_id, *, status=None, page=1, per_page=50):
    """One page of a product's codes, newest first, secrets masked; returns (rows, total)."""
    query = sa.select(CardCode).where(CardCode.product_id == product_id)
    if status in STATUS_LABELS:
        query = query.where(CardCode.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    codes = session.scalars(query.order_by(CardCode.id.desc()).limit(per_page).offset((page - 1) * per_page))
    return [CodeRow(c.id, c.number, _masked(c.secret_encrypted), c.status, c.created_at) for c in codes], total


def _masked(secret_encrypted):
    try:
        return mask_secret(secretbox.decrypt(secret_encrypted))
    except secretbox.SecretUnreadable:
        return "（无法解密）"


def mask_secret(secret):
    """Only the tail, and never more than half of a short code; the length is not shown."""
    visible = min(4, len(secret) // 2)
    return "••••••" + (secret[-visible:] if visible else "")
