"""Batch import (批量导入): batches, staged rows, saved mappings, card codes."""
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kamen.extensions import db
from kamen.models.jobs import JobLease
from kamen.models.types import Money, Percent, Step
from kamen.timeutil import utcnow


class ImportBatch(JobLease, db.Model):
    """One uploaded file on its way in: analyzed → staged (preview) → committed."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id"), index=True)
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("categories.id"))  # import into one category
    filename: Mapped[str] = mapped_column(sa.String(255))
    # sha256 of the uploaded bytes: the same file uploaded again is recognised.
    file_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The file itself; None once housekeeping deleted it (the totals stay).
    upload_id: Mapped[int | None] = mapped_column(sa.ForeignKey("uploads.id", ondelete="SET NULL"))
    file_kind: Mapped[str] = mapped_column(sa.String(8), default="")  # csv | xlsx | xls
    csv_encoding: Mapped[str | None] = mapped_column(sa.String(20))
    csv_delimiter: Mapped[str | None] = mapped_column(sa.String(1))
    sheets: Mapped[list] = mapped_column(sa.JSON, default=list)  # sheet names in the file
    sheet: Mapped[str | None] = mapped_column(sa.String(100))  # chosen sheet; "*" = all sheets
    header_row: Mapped[int | None]  # 0-based; None = detected
    headers: Mapped[list] = mapped_column(sa.JSON, default=list)
    mapping: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # field key -> column index
    match_info: Mapped[list] = mapped_column(sa.JSON, default=list)  # [{column, header, key, how, confidence}]
    samples: Mapped[list] = mapped_column(sa.JSON, default=list)  # per column: up to 3 values read under it
    template_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mapping_templates.id"))
    mode: Mapped[str] = mapped_column(sa.String(8), default="upsert")  # upsert | create | update
    delist_missing: Mapped[str] = mapped_column(sa.String(10), default="")  # "" | supplier | category
    markup_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("0"))
    markup_fixed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    markup_step: Mapped[Decimal] = mapped_column(Step, default=Decimal("0.01"))
    max_price_change: Mapped[Decimal] = mapped_column(Percent, default=Decimal("30"))
    price_basis: Mapped[str] = mapped_column(sa.String(12), default="file", server_default="file")
    # Categories the file names that the shop lacks: {"父/子": {"rows": n, "similar": id|None,
    # "choice": None (waiting) | "create" | category id}}; their rows wait for the choice.
    new_categories: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    warnings_confirmed: Mapped[bool] = mapped_column(default=False)

    status: Mapped[str] = mapped_column(sa.String(12), default="analyzing")
    message: Mapped[str] = mapped_column(sa.Text, default="")
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    scheduled_for: Mapped[datetime | None]
    # The step the batch's job runs (analyze | stage | commit | auto), kept after a
    # failure so 重试 runs it again; None when a failure needs the admin (bad file).
    step: Mapped[str | None] = mapped_column(sa.String(8))
    auto_options: Mapped[dict | None] = mapped_column(sa.JSON)  # imports sent by scripts: what to do unattended
    purged_at: Mapped[datetime | None]  # upload and staged rows deleted by housekeeping; totals kept

    rows_in: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    delisted_ids: Mapped[list] = mapped_column(sa.JSON, default=list)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    committed_at: Mapped[datetime | None]
    undone_at: Mapped[datetime | None]

    supplier: Mapped["Supplier"] = relationship()  # noqa: F821
    category: Mapped["Category | None"] = relationship()  # noqa: F821


class ImportRow(db.Model):
    """A staged row: the admin's cells, what they mean, and what committing does."""

    __tablename__ = "import_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    # An ImportBatch's id, unchecked by the database: staging writes 100,000 rows a file, for
    # the batch it holds, and batches are never deleted (migration 0022).
    batch_id: Mapped[int]
    sheet: Mapped[str | None] = mapped_column(sa.String(100))
    line: Mapped[int]  # row number in the admin's file (Excel numbering)
    cells: Mapped[list] = mapped_column(sa.JSON)  # the row as read, for the error file
    # field key -> the text the row holds where it is not the cell's (staging.row_texts): the
    # admin's inline fix, a remembered fix, a change in bulk, an xlsx date as the admin typed it
    edits: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    values: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # normalized, JSON-safe
    errors: Mapped[list] = mapped_column(sa.JSON, default=list)  # [{field, kind, message}]
    warnings: Mapped[list] = mapped_column(sa.JSON, default=list)
    has_warnings: Mapped[bool] = mapped_column(default=False)  # needs the admin's confirmation
    error_kinds: Mapped[str] = mapped_column(sa.String(120), default="")  # ",格式错误,重复编码," for filtering
    changes: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # field -> [old, new] for updates
    code: Mapped[str | None] = mapped_column(sa.String(64))
    # A category the shop lacks yet (a key of the batch's new_categories): the row waits for it.
    category_path: Mapped[str | None] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(10))  # create | update | unchanged | skip | error
    skip_reason: Mapped[str] = mapped_column(sa.String(200), default="")
    auto_fixed: Mapped[list] = mapped_column(sa.JSON, default=list)  # fields a remembered fix changed
    product_id: Mapped[int | None]
    before: Mapped[dict | None] = mapped_column(sa.JSON)  # before-image, for undo
    committed: Mapped[bool] = mapped_column(default=False)

    # Half of each page left free (PostgreSQL): a commit's mark of a written row (product_id,
    # committed) is then a HOT update on the same page, not a moved row and two index entries.
    __table_args__ = (sa.Index("ix_import_rows_batch_action", "batch_id", "action", "line"),
                      {"postgresql_with": {"fillfactor": 50}})


class MappingTemplate(db.Model):
    """A supplier's column headers -> our fields, found again by header fingerprint."""

    __tablename__ = "mapping_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id"))
    name: Mapped[str] = mapped_column(sa.String(60))
    fingerprint: Mapped[str] = mapped_column(sa.String(32), index=True)
    columns: Mapped[dict] = mapped_column(sa.JSON)  # normalized header -> field key or None
    header_row: Mapped[int | None]
    # The import settings of the batch that saved it (mode, category, markup…), reused
    # when the next file of this layout goes straight to the preview.
    options: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("supplier_id", "name"),)


class ImportFix(db.Model):
    """An admin's inline fix of a supplier's row, applied again when the identical row comes back."""

    __tablename__ = "import_fixes"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(sa.ForeignKey("suppliers.id", ondelete="CASCADE"))
    source_hash: Mapped[str] = mapped_column(sa.String(64))  # sha256 of the row's cells as read
    field: Mapped[str] = mapped_column(sa.String(20))
    text: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("supplier_id", "source_hash", "field"),)


class CardCode(db.Model):
    """One card code (卡密) of a card-code product; the secret is stored encrypted."""

    __tablename__ = "card_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"), index=True)
    number: Mapped[str] = mapped_column(sa.String(128), default="")  # 卡号 (may be empty)
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)  # 卡密
    digest: Mapped[str] = mapped_column(sa.String(64))  # sha256 of number + secret, for duplicates
    status: Mapped[str] = mapped_column(sa.String(10), default="available")  # available | reserved | sold
    # The order holding (reserved) or owning (sold) this code.
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    upload_id: Mapped[str] = mapped_column(sa.String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("product_id", "digest"),)


class CardCodeUpload(db.Model):
    """A card-code file read by a job: its progress and the report the admin reads."""

    __tablename__ = "card_code_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id", ondelete="CASCADE"), index=True)
    # The file (encrypted: it holds secrets), deleted once read.
    upload_id: Mapped[int | None] = mapped_column(sa.ForeignKey("uploads.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(sa.String(255), default="")
    status: Mapped[str] = mapped_column(sa.String(12), default="queued")  # queued | running | done | failed
    message: Mapped[str] = mapped_column(sa.Text, default="")
    report: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class ApiToken(db.Model):
    """A token for scripts that upload price lists over HTTP; only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(60))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
