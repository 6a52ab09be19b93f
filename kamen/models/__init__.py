"""All models, importable from one place (Alembic and the app load this)."""
from kamen.models.aftersales import (
    Outcome,
    Responsibility,
    Ticket,
    TicketAttachment,
    TicketEvent,
    TicketKind,
    TicketStatus,
)
from kamen.models.catalog import Category, CategoryRule, DeliveryType, PriceBasis, Product, StockMode
from kamen.models.demopay import DemoPayTrade, DemoTradeStatus
from kamen.models.launch import LaunchCheck, LaunchRun
from kamen.models.forwarding import OPEN_ATTEMPTS, AttemptStatus, ForwardAttempt, ProductSource
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
from kamen.models.suppliers import BalanceSample, DownstreamStation, Supplier, SupplierKind, SyncRun, UsedNonce
from kamen.models.uploads import Upload, UploadChunk
from kamen.models.users import AdminUser, LoginAttempt

__all__ = [
    "AdminUser",
    "BalanceSample",
    "AttemptStatus",
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
    "ForwardAttempt",
    "ImportBatch",
    "ImportFix",
    "ImportRow",
    "LaunchCheck",
    "LaunchRun",
    "LoginAttempt",
    "LookupAttempt",
    "MappingTemplate",
    "Notification",
    "OPEN_ATTEMPTS",
    "Outcome",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "PAY_MODES",
    "PAY_TYPES",
    "PaymentChannel",
    "PriceBasis",
    "Product",
    "ProductSource",
    "Reservation",
    "Responsibility",
    "Setting",
    "StockMode",
    "Supplier",
    "SupplierKind",
    "SyncRun",
    "Ticket",
    "TicketAttachment",
    "TicketEvent",
    "TicketKind",
    "TicketStatus",
    "Upload",
    "UploadChunk",
    "UsedNonce",
]
