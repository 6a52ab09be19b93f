"""The one contract every payment gateway implements (易支付 V1 first).

The merchant code (kamen.services.payments) only talks to this contract:
create a payment (a page to send the buyer to, or a QR code), verify and
parse a notify, and ask the gateway whether an order was paid.
"""
from dataclasses import dataclass
from decimal import Decimal


class GatewayError(Exception):
    """The gateway could not be reached or answered an error; str() is Chinese."""


class NoticeRejected(Exception):
    """A notify that must be answered ``fail``; str() says why (Chinese)."""


@dataclass(frozen=True)
class PaymentStart:
    redirect_url: str | None = None  # where to send the buyer
    qrcode: str | None = None  # or a code to scan (mapi.php)
    trade_no: str | None = None


@dataclass(frozen=True)
class Notice:
    """A verified notify: the gateway says ``out_trade_no`` was paid ``money``."""

    out_trade_no: str
    trade_no: str
    money: Decimal
    pay_type: str
    paid: bool


@dataclass(frozen=True)
class QueryResult:
    found: bool
    paid: bool
    money: Decimal | None = None
    trade_no: str | None = None
    raw: dict | None = None
