"""All models, importable from one place (Alembic and the app load this)."""
from kamen.models.catalog import Category, DeliveryType, Product, StockMode
from kamen.models.suppliers import Supplier, SupplierKind
from kamen.models.users import AdminUser, LoginAttempt

__all__ = [
    "AdminUser",
    "Category",
    "DeliveryType",
    "LoginAttempt",
    "Product",
    "StockMode",
    "Supplier",
    "SupplierKind",
]
