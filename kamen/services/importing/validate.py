"""Validate one import row: raw cells -> normalized values, errors and warnings.

Values hold only the fields the row filled in, so an update leaves the
others alone. Errors stop the row (prices break the shop's price rule in
pricing.py); warnings (价格变动过大, 售价高于面值 …) need the admin's confirmation. Every issue has a kind the preview filters by
and a Chinese message naming the field and the value.
"""
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import NamedTuple

from kamen.services.importing import normalize as n
from kamen.services.importing.mapping import FIELDS_BY_KEY, REQUIRED
from kamen.services.pricing import import_price, price_problem

DEFAULT_MAX_PRICE_CHANGE = Decimal(30)  # percent versus today's price


def _label(key):
    return FIELDS_BY_KEY[key].label


PARSERS = {  # partial, not lambda: one Python call less for each of a file's cells
    "code": n.parse_code,
    "name": partial(n.parse_text, label="商品名称", max_length=200),
    "category": partial(n.parse_text, label="分类", max_length=60),
    "face_value": n.parse_face_value,
    "tier_label": n.parse_tier,
    "cost_price": partial(n.parse_money_cell, label="供货价"),
    "market_price": partial(n.parse_money_cell, label="市场价"),
    "sale_price": partial(n.parse_money_cell, label="售价"),
    "stock": partial(n.parse_whole, label="库存"),
    "promo_price": partial(n.parse_money_cell, label="折扣价"),
    "promo_start": partial(n.parse_datetime, label="活动开始"),
    "promo_end": partial(n.parse_datetime, label="活动结束", end_of_day=True),
    "sync_stock": partial(n.parse_bool, label="需同步库存"),
    "delivery_type": n.parse_delivery,
    "account_format": partial(n.parse_text, label="充值账号格式", max_length=50),
    "delivery_minutes": n.parse_minutes,
}


@dataclass(frozen=True, slots=True)
class Issue:
    field: str  # field key
    kind: str  # 字段缺失, 格式错误, 重复编码, 活动结束早于开始, 负库存, 价格变动过大, and PriceProblem's kinds
    message: str


@dataclass(slots=True)
class RowResult:
    values: dict
    errors: list
    warnings: list
    computed: tuple  # keys derived, not read: the preview marks them "计算得出"

    @property
    def ok(self):
        return not self.errors

    def reason(self):
        """The 错误原因 cell of the error report."""
        return "；".join(issue.message for issue in self.errors)


def validate_row(raw, *, markup, current=None, max_price_change=DEFAULT_MAX_PRICE_CHANGE, basis="file"):
    """Validate {field key: raw cell}, e.g. a staged row after an inline edit.

    ``markup`` and ``basis`` (PriceBasis value) set the sale price (markup None:
    only the file's 售价); ``current`` is the product's values today, for the
    price-change warning.
    """
    return _validate(raw, markup, lambda code: current, max_price_change, basis)


class FileValidator:
    """Validates a file's rows in order, tracking codes seen to flag duplicates."""

    def __init__(self, columns, *, markup, current=None, max_price_change=DEFAULT_MAX_PRICE_CHANGE, basis="file"):
        """``columns`` is Mapping.columns; ``current`` maps code -> today's values."""
        self._cells = _RepeatingCells()
        # (field, column, its parser, or the distinct cells parsed so far for a REPEATING field);
        # a field outside REPEATING is parse_cell's plain case (面值, its one special case, repeats)
        self._plan = tuple((key, column, PARSERS[key], self._cells.seen(key) if key in REPEATING else None)
                           for key, column in columns.items())
        self._markup = markup
        self._basis = basis
        self._current = (current if current is not None else {}).get  # may be filled later, chunk by chunk
        self._max_price_change = max_price_change
        self._first_line = {}
        self._priced = {}  # a _Pricing by the prices it was worked out for

    def expect(self, first_lines):
        """Check the next rows against {code: its first line in the file} (a chunk of a
        file another process reads, which found those lines), not against the rows seen."""
        self._first_line = dict(first_lines)

    def check(self, cells, line):
        """validate_row of the row's mapped cells, parsed as its loop does (inlined here: it
        runs for each of a file's cells), a REPEATING field's distinct cells once."""
        width = len(cells)
        values, errors, failed = {}, [], set()
        for key, column, parser, seen in self._plan:
            if column >= width:
                continue
            cell = cells[column]
            if cell is None or (cell.__class__ is str and (not cell or cell.isspace())):
                continue
            try:
                if seen is None:
                    values[key] = parser(cell)
                    continue
                found = seen.get(cell if cell.__class__ is str else (cell.__class__, cell))
                if found is None:
                    found = self._cells.parse(seen, key, cell)
                if found.__class__ is _Refused:
                    raise n.FieldError(found.message)
                values[found[0]] = found[1]
            except n.FieldError as exc:
                errors.append(Issue(key, "格式错误", str(exc)))
                failed.add(key)
        result = _judge(values, errors, failed, self._markup, self._current, self._max_price_change, self._basis,
                        self._priced)
        code = result.values.get("code")
        if code is not None:
            first = self._first_line.setdefault(code, line)
            if first != line:
                result.errors.append(Issue("code", "重复编码", f"商品编码“{code}”与第 {first} 行重复"))
        return result


def parse_cell(key, cell):
    """(the field, its value) of a filled cell; a 面值 range is a 面值档位. Raises FieldError."""
    if key == "face_value" and n.is_range(cell):
        return "tier_label", n.parse_tier(cell)
    return key, PARSERS[key](cell)


# Fields whose cells repeat down a price list (a handful of categories, face values,
# delivery words; a few thousand prices and stock figures for 100,000 goods): a file's
# validator parses each distinct cell once.
REPEATING = frozenset(("category", "face_value", "tier_label", "cost_price", "market_price", "sale_price", "stock",
                       "promo_price", "promo_start", "promo_end", "sync_stock", "delivery_type", "account_format",
                       "delivery_minutes"))


class _RepeatingCells:
    """A file's parse_cell results for the fields in REPEATING, by field and cell: (field,
    value), or _Refused (results are immutable: text, Decimal, int, datetime). A text cell
    is its own key; another by its type too (1, 1.0 and True are equal keys otherwise)."""

    LIMIT = 20_000  # cells remembered, all fields together

    def __init__(self):
        self._by_field, self._size = {}, 0

    def seen(self, key):
        return self._by_field.setdefault(key, {})

    def parse(self, seen, key, cell):
        try:
            found = parse_cell(key, cell)
        except n.FieldError as exc:
            found = _Refused(str(exc))
        if self._size < self.LIMIT:
            seen[cell if cell.__class__ is str else (cell.__class__, cell)] = found
            self._size += 1
        return found


class _Refused:
    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message


def _validate(raw, markup, current_for, max_price_change, basis="file"):
    values, errors, failed = {}, [], set()
    for key, cell in raw.items():
        if cell is None or (cell.__class__ is str and (not cell or cell.isspace())):
            continue  # blank: n.is_blank inlined
        try:
            field, value = parse_cell(key, cell)
            values[field] = value
        except n.FieldError as exc:
            errors.append(Issue(key, "格式错误", str(exc)))
            failed.add(key)
    return _judge(values, errors, failed, markup, current_for, max_price_change, basis)


def _judge(values, errors, failed, markup, current_for, max_price_change, basis, priced_before=None):
    """The checks of a row's parsed ``values`` (``failed``: the fields whose cells did not parse).
    ``priced_before``: a file's rows priced so far, by their prices (see _Pricing)."""
    warnings, computed = [], ()
    for key in REQUIRED:
        if key not in values and key not in failed:
            errors.append(Issue(key, "字段缺失", f"{_label(key)}不能为空"))

    stock = values.get("stock")
    if stock is not None and stock < 0:
        errors.append(Issue("stock", "负库存", f"库存不能为负数：{stock}"))
    start, end = values.get("promo_start"), values.get("promo_end")
    if start and end and end <= start:
        errors.append(Issue("promo_end", "活动结束早于开始", "活动结束时间早于开始时间"))

    cost = values.get("cost_price")
    current = current_for(values.get("code"))
    # A row updating a product caps at the product's 面值 / 市场价 when the file has none.
    face, market = values.get("face_value"), values.get("market_price")
    if current:
        face = current.get("face_value") if face is None else face
        market = current.get("market_price") if market is None else market
    prices = (cost is not None and markup is not None and "sale_price" not in failed,
              cost, values.get("sale_price"), face, market, values.get("promo_price"))
    pricing = priced_before.get(prices) if priced_before is not None else None
    if pricing is None:
        pricing = _Pricing.of(markup, basis, *prices)
        if priced_before is not None and len(priced_before) < _Pricing.LIMIT:
            priced_before[prices] = pricing
    if pricing.sale is not None:  # never below cost + the minimum margin
        values["sale_price"] = pricing.sale
        computed = ("sale_price",)
    if pricing.warnings:
        warnings += pricing.warnings
    if pricing.problem:
        errors.append(pricing.problem)

    if current and max_price_change is not None:
        for key in ("cost_price", "sale_price"):
            old, new = current.get(key), values.get(key)
            if old is not None and new is not None and old != new:  # most rows: no change
                warning = _price_change(key, old, new, max_price_change)
                if warning:
                    warnings.append(warning)
    return RowResult(values, errors, warnings, computed)


class _Pricing(NamedTuple):
    """What a row's prices come to: the sale price set (or None: the row's own stands), the
    warnings to confirm and the broken price rule. It depends on the prices alone (the
    markup and basis are the file's), and a price list repeats a few thousand of them over
    100,000 goods: a file's validator works each out once."""

    sale: Decimal | None
    warnings: tuple  # Issue
    problem: Issue | None

    LIMIT = 20_000  # price combinations remembered per file

    @classmethod
    def of(cls, markup, basis, priced, cost, sale, face, market, promo):
        """``priced``: the sale price is set from ``cost`` (the 售价 cell did not fail to parse)."""
        new_sale, warnings = None, ()
        if priced:
            found = import_price(basis, markup, cost=cost, suggested=sale, face=face, market=market)
            if found.price is not None:
                sale = new_sale = found.price
            warnings = tuple(Issue(w.field, w.kind, w.message) for w in found.warnings)
        problem = price_problem(cost=cost, sale=sale, promo=promo, min_margin=markup.min_margin if markup else 0)
        return cls(new_sale, warnings, Issue(problem.field, problem.kind, problem.message) if problem else None)


def _price_change(key, old, new, limit):
    """The warning for a price changed from ``old`` to ``new`` (both set, not equal) by more than ``limit`` %."""
    if old:
        change = (new - old) / old * 100
        if abs(change) <= limit:
            return None
        shown = f"{change:+.1f}%"
    else:
        shown = "原价为 0"
    limit_text = format(Decimal(limit).normalize(), "f")
    return Issue(key, "价格变动过大", f"{_label(key)} {old} → {new}（{shown}），变动超过 {limit_text}%，请确认")
