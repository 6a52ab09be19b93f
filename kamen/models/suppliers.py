"""Suppliers (货源). Minimal for now; sync settings come with the sync feature."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kamen.extensions import db
from kamen.models.types import LabeledEnum, enum_column
from kamen.timeutil import utcnow


class SupplierKind(LabeledEnum):
    KAMEN = ("kamen", "kamen 主站")
    FULU = ("fulu", "福禄式网关")
    ACGFAKA = ("acgfaka", "acg-faka 共享店铺")
    MANUAL = ("manual", "表格/手工货源")


class Supplier(db.Model):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[SupplierKind] = mapped_column(enum_column(SupplierKind), default=SupplierKind.MANUAL)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
