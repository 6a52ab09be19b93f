"""Sale prices from cost: the markup rule shared by bulk edits, imports and sync."""
from dataclasses import dataclass
from decimal import Decimal

from kamen.money import CENT, round_money, round_up_money


@dataclass(frozen=True)
class Markup:
    percent: Decimal = Decimal(0)
    fixed: Decimal = Decimal(0)
    step: Decimal = CENT  # round to 0.01 or 0.1 yuan

    def apply(self, cost):
        price = round_money(cost * (1 + self.percent / 100) + self.fixed, self.step)
        # Rounding down to a 0.1 step must never sell below cost.
        return price if price >= cost else round_up_money(cost, self.step)


def is_price_jump(old, new, limit_percent):
    """``new`` moved more than ``limit_percent`` from ``old``, up or down (from 0: always)."""
    if old == new:
        return False
    if not old:
        return True
    return abs(new - old) * 100 > abs(old) * Decimal(limit_percent)
