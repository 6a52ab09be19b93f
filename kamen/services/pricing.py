"""The shop's one price rule, applied by every write path (product form, inline
edit, bulk markup, import, sync): a sale or promo price is never below cost plus
the supplier's minimum margin, a promo never above the sale price, and a markup
stays within the same limits wherever an admin types one."""
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import NamedTuple

from kamen.money import CENT, MoneyError, parse_money, round_money, round_up_money

MAX_MARKUP_PERCENT = Decimal(1000)
MAX_MARKUP_FIXED = Decimal(10000)
MARKUP_STEPS = (CENT, Decimal("0.1"))


class PriceRuleError(ValueError):
    """A price or markup the rule refuses; ``field`` names the input, str() is the Chinese message."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Markup:
    percent: Decimal = Decimal(0)
    fixed: Decimal = Decimal(0)
    step: Decimal = CENT  # round to 0.01 or 0.1 yuan
    min_margin: Decimal = Decimal(0)

    def apply(self, cost):
        """Sale price from cost; rounding to the step never goes below the price floor."""
        price = round_money(cost * (1 + self.percent / 100) + self.fixed, self.step)
        floor = price_floor(cost, self.min_margin)
        return price if price >= floor else round_up_money(floor, self.step)


def price_floor(cost, min_margin):
    return cost + (min_margin or 0)


@dataclass(frozen=True)
class PriceProblem:
    field: str
    kind: str  # a short label the import preview filters by
    message: str


def price_problem(*, cost, sale, promo, min_margin):
    """The first broken rule as a PriceProblem, or None (None prices are not checked)."""
    if cost is None:
        return None
    floor = price_floor(cost, min_margin)
    if sale is not None and sale < floor:
        return PriceProblem("sale_price", "售价低于成本", f"售价 ¥{sale} 低于{_floor_text(cost, min_margin)}，会亏本")
    if promo is not None:
        if sale is not None and promo > sale:
            return PriceProblem("promo_price", "折扣价高于售价", f"折扣价 ¥{promo} 不能高于售价 ¥{sale}")
        if promo < floor:
            return PriceProblem("promo_price", "折扣价低于成本",
                                f"折扣价 ¥{promo} 低于{_floor_text(cost, min_margin)}，会亏本")
    return None


def _floor_text(cost, min_margin):
    """Worded only for a broken rule: the check runs for each of an import's rows."""
    return f"供货价 ¥{cost}" + (f" 加最低利润 ¥{min_margin}" if min_margin else "")


PRICE_BASES = ("file", "markup", "cap_face", "cap_market")  # catalog.PriceBasis values


class ImportPrice(NamedTuple):
    price: Decimal | None  # None: the row's own price stands (the file's, under basis "file")
    how: str  # 文件 | 加价 | 面值封顶 | 市场价封顶 | 成本加最低利润: what the preview says
    warnings: tuple  # PriceProblem, the admin confirms them


def import_price(basis, markup, *, cost, suggested=None, face=None, market=None):
    """The sale price an imported row gets under ``basis`` (PriceBasis value).

    file: the file's 建议零售价/售价 as given (a price below the floor stays a
    price_problem error), rows without one are marked up. markup: cost marked
    up; the file's price is only a suggestion. cap_face / cap_market: marked up,
    but not above 面值 / 市场价 when the row has one. Every basis stays at or above
    cost + the minimum margin; a price above 面值 or 市场价 and a suggestion below
    cost are warnings. Runs once per imported row: nothing is built unless needed."""
    if basis == "file" and suggested is not None:
        price, how, shown = None, "文件", suggested
    else:
        price, how = markup.apply(cost), "加价"
        cap = face if basis == "cap_face" else market if basis == "cap_market" else None
        if cap is not None and price > cap:
            capped = cap.quantize(markup.step, rounding=ROUND_DOWN)
            if capped >= price_floor(cost, markup.min_margin):
                price, how = capped, "面值封顶" if basis == "cap_face" else "市场价封顶"
            else:
                price, how = round_up_money(price_floor(cost, markup.min_margin), markup.step), "成本加最低利润"
        shown = price
    warnings = ()
    if face is not None and shown > face:
        warnings += (PriceProblem("sale_price", "售价高于面值", f"售价 ¥{shown} 高于面值 ¥{face}，顾客会觉得买贵了"),)
    if market is not None and shown > market:
        warnings += (PriceProblem("sale_price", "售价高于市场价", f"售价 ¥{shown} 高于市场价 ¥{market}"),)
    if price is not None and suggested is not None and suggested < price_floor(cost, markup.min_margin):
        warnings += (PriceProblem("sale_price", "建议零售价低于成本",
                                  f"文件中的建议零售价 ¥{suggested} 低于供货价 ¥{cost}，请核对供货价"),)
    return ImportPrice(price, how, warnings)


def check_prices(*, cost, sale, promo, min_margin):
    problem = price_problem(cost=cost, sale=sale, promo=promo, min_margin=min_margin)
    if problem:
        raise PriceRuleError(problem.message, problem.field)


def check_markup(percent, fixed, step=CENT):
    """The markup limits, for every form that sets one (bulk, import, supplier, station)."""
    if percent < 0 or fixed < 0:
        raise PriceRuleError("加价不能为负数", "markup_percent" if percent < 0 else "markup_fixed")
    if percent > MAX_MARKUP_PERCENT:
        raise PriceRuleError(f"加价百分比不能超过 {MAX_MARKUP_PERCENT}%", "markup_percent")
    if fixed > MAX_MARKUP_FIXED:
        raise PriceRuleError(f"固定加价不能超过 {MAX_MARKUP_FIXED} 元", "markup_fixed")
    if step not in MARKUP_STEPS:
        raise PriceRuleError("取整只能是精确到分或精确到角", "markup_step")


def parse_markup(form):
    """A markup from the request form fields markup_percent / markup_fixed / markup_step."""
    try:
        percent = parse_money(form.get("markup_percent") or "0", field="加价百分比")
        fixed = parse_money(form.get("markup_fixed") or "0", field="固定加价")
    except MoneyError as exc:
        raise PriceRuleError(str(exc)) from exc
    step = Decimal("0.1") if form.get("markup_step") == "0.1" else CENT
    check_markup(percent, fixed, step)
    return Markup(percent=percent, fixed=fixed, step=step)


def is_price_jump(old, new, limit_percent):
    """``new`` moved more than ``limit_percent`` from ``old``, up or down (from 0: always)."""
    if old == new:
        return False
    if not old:
        return True
    return abs(new - old) * 100 > abs(old) * Decimal(limit_percent)
