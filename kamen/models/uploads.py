"""Uploaded files, kept in the database so web and workers on other machines share them."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kamen.extensions import db
from kamen.timeutil import utcnow


class Upload(db.Model):
    """One uploaded file (a price list, a card-code file); its bytes are in UploadChunk rows."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(20))  # import | card_codes
    filename: Mapped[str] = mapped_column(sa.String(255), default="")
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    encrypted: Mapped[bool] = mapped_column(default=False)  # chunks sealed with the secretbox key
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class UploadChunk(db.Model):
    """A piece of an upload (bytea on PostgreSQL): rows stay small, files stream."""

    __tablename__ = "upload_chunks"

    upload_id: Mapped[int] = mapped_column(sa.ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
