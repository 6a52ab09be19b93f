"""The supplier adapter contract: what every upstream (货源) looks like to kamen.

Services only ever see these types. Adapters turn each protocol's replies into
them and every failure into one of the ``SupplierError`` subclasses, whose
text is a Chinese message an admin can act on.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from kamen.money import format_money


class Level(str, Enum):
    IN = "IN"
    LOW = "LOW"
    OUT = "OUT"
    UNKNOWN = "UNKNOWN"


class Delivery(str, Enum):
    CARD = "card"  # card codes (卡密) handed to the buyer
    TOPUP = "topup"  # charged onto the buyer's account (代充), needs buyer fields


class OrderStatus(str, Enum):
    ACCEPTED = "ACCEPTED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class StockLevel:
    level: Level
    qty: int | None = None  # None: the supplier gives a level, not a count


@dataclass
class RemoteProduct:
    code: str
    name: str
    category_path: tuple[str, ...]
    face_value: Decimal | None
    cost_price: Decimal  # what we pay the supplier per unit
    market_price: Decimal | None
    stock: StockLevel
    available: bool  # listed and sellable upstream
    delivery: Delivery
    field_template: Any = None  # buyer fields as the supplier describes them; read when ordering
    # The same fields as the shop asks for them: [{"key", "label", "pattern", "hint"}]
    # (parsing.buyer_field); None when the supplier does not say.
    buyer_fields: list | None = None
    updated_at: datetime | None = None  # naive UTC
    # The supplier's product picture (parsing.picture_address): an absolute https
    # address or None; the shop shows it until the admin uploads one of its own.
    cover_url: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RejectedItem:
    """A listed product we could not accept; the sync records it, never delists it."""

    code: str | None
    reason: str


@dataclass
class Page:
    items: list[RemoteProduct]
    next_cursor: str | None = None
    rejected: list[RejectedItem] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectionInfo:
    name: str | None
    balance: Decimal | None
    message: str

    @classmethod
    def connected(cls, name, balance):
        shown = f"，店铺/账户：{name}" if name else ""
        return cls(name=name, balance=balance, message=f"连接成功{shown}，余额 ¥{format_money(balance)}")


@dataclass
class OrderResult:
    """One answer about one order. ``cards``: [{"number", "password", "expires"}]
    (number or password may be None). ``cost``: the unit price the supplier
    charged, when it said. ``raw``: the request and reply as exchanged, with
    keys, signatures and card secrets redacted (the order timeline shows it)."""

    status: OrderStatus
    supplier_order_id: str | None = None
    cards: list[dict] = field(default_factory=list)
    message: str = ""
    cost: Decimal | None = None
    idempotency_key: str | None = None  # our order number, as the supplier echoes it
    raw: dict = field(default_factory=dict, repr=False)


class SupplierError(Exception):
    """A supplier call failed; ``str(error)`` is the Chinese message shown to admins."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class AuthFailed(SupplierError):
    pass


class InsufficientBalance(SupplierError):
    pass


class OutOfStock(SupplierError):
    pass


class ProductUnavailable(SupplierError):
    pass


class PriceAboveLimit(SupplierError):
    pass


class InvalidAccount(SupplierError):
    pass


class DuplicateOrder(SupplierError):
    pass


class RateLimited(SupplierError):
    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds, when the supplier said


class Transient(SupplierError):
    """Worth retrying later: network trouble, supplier down, garbled reply."""


class Ambiguous(SupplierError):
    """The request may or may not have taken effect: query, don't retry blindly."""


class SupplierAdapter(ABC):
    kind: str
    # Where the supplier should send order notifications (set by adapter_for; None: unknown).
    callback_url: str | None = None
    # False: list_products ignores updated_after and always returns everything.
    supports_updated_after = False

    @abstractmethod
    def list_products(self, cursor=None, updated_after=None) -> Page:
        """One page of the supplier's catalogue; follow ``next_cursor`` until None."""

    @abstractmethod
    def get_stock(self, codes) -> dict[str, StockLevel]:
        """Current stock for these product codes."""

    @abstractmethod
    def balance(self) -> Decimal | None:
        """Our prepaid balance at the supplier (None: this kind has none)."""

    @abstractmethod
    def test_connection(self) -> ConnectionInfo:
        """Check endpoint and credentials; what 测试连接 shows."""

    # Ordering (一键代发; DESIGN.md flow 4). Adapters that cannot order keep
    # these defaults, which refuse with a message the admin can act on.
    def place_order(self, idempotency_key, code, qty, fields, max_unit_cost) -> OrderResult:
        """Order ``qty`` of ``code`` once per ``idempotency_key`` (our order number).

        Refused before anything is paid: PriceAboveLimit when the supplier's
        price is above ``max_unit_cost``, OutOfStock, ProductUnavailable,
        InvalidAccount, InsufficientBalance, AuthFailed, Transient (nothing was
        sent). Once the request has left, a lost or garbled answer is
        ``OrderStatus.UNKNOWN``: query, never place again blindly."""
        raise SupplierError(f"该货源类型（{self.kind}）不支持自动下单，请人工处理")

    def query_order(self, idempotency_key, supplier_order_id=None) -> OrderResult:
        """The order's current state; Transient when the supplier cannot say now."""
        raise SupplierError(f"该货源类型（{self.kind}）不支持查询订单，请人工处理")

    def parse_callback(self, headers, body) -> OrderResult:
        """An order notification from the supplier, its signature verified
        (AuthFailed when forged). ``body``: the raw request body, or the query
        string for a GET notification."""
        raise SupplierError(f"该货源类型（{self.kind}）不发送订单回调，请用查询订单获取结果")
