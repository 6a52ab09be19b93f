"""Supplier lookups. The shop's own goods belong to a built-in manual supplier."""
import sqlalchemy as sa

from kamen.models import Supplier, SupplierKind

OWN_SUPPLIER_CODE = "self"


def default_supplier(session):
    """The built-in 自营 supplier, created on first use."""
    supplier = session.scalar(sa.select(Supplier).filter_by(code=OWN_SUPPLIER_CODE))
    if supplier is None:
        supplier = Supplier(code=OWN_SUPPLIER_CODE, name="自营", kind=SupplierKind.MANUAL)
        session.add(supplier)
        session.commit()
    return supplier
