"""All models, importable from one place (Alembic and the app load this)."""
from kamen.models.catalog import Category, CategoryRule, DeliveryType, PriceBasis, Product, StockMode
from kamen.models.demopay import DemoPayTrade, DemoTradeStatus
from kamen.models.imports import ApiToken, CardCode, CardCodeUpload, ImportBatch, ImportFix, ImportRow, MappingTemplate
from kamen.models.notifications import Notification, Setting
from kamen.models.orders import (
    PAY_MODES,
    PAY_TYPES,
    Coupon,
    CouponKind,
    LookupAttempt,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentChannel,
    Reservation,
)
from kamen.models.suppliers import DownstreamStation, Supplier, SupplierKind, SyncRun, UsedNonce
from kamen.models.uploads import Upload, UploadChunk
from kamen.models.users import AdminUser, LoginAttempt

__all__ = [
    "AdminUser",
    "ApiToken",
    "CardCode",
    "CardCodeUpload",
    "Category",
    "CategoryRule",
    "Coupon",
    "CouponKind",
    "DeliveryType",
    "DemoPayTrade",
    "DemoTradeStatus",
    "DownstreamStation",
    "ImportBatch",
    "ImportFix",
    "ImportRow",
    "LoginAttempt",
    "LookupAttempt",
    "MappingTemplate",
    "Notification",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "PAY_MODES",
    "PAY_TYPES",
    "PaymentChannel",
    "PriceBasis",
    "Product",
    "Reservation",
    "Setting",
    "StockMode",
    "Supplier",
    "SupplierKind",
    "SyncRun",
    "Upload",
    "UploadChunk",
    "UsedNonce",
]
