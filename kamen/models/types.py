"""Column types shared by the models."""
import enum
import operator
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa


class ExactDecimal(sa.TypeDecorator):
    """A fixed-point Decimal that SQL adds, sums and compares exactly on every backend.

    NUMERIC on PostgreSQL. SQLite has no decimal type (NUMERIC there is a binary
    float: 0.70 + 0.10 = 0.7999999999999999), so there the column holds the
    value scaled to an integer (yuan -> cents for money). Integer sums,
    differences, comparisons and products with whole numbers stay exact; never
    divide such columns or multiply them by fractions or by each other in SQL
    (do that on Decimals in Python).
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision, scale):
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        # Extra decimals round half away from zero, as PostgreSQL's NUMERIC does.
        return int(Decimal(value).scaleb(self.scale).to_integral_value(ROUND_HALF_UP))

    def process_result_value(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return Decimal(int(value)).scaleb(-self.scale)

    def coerce_compared_value(self, op, value):
        """`balance + :amount`, `price >= 0`: the literal is scaled like the column;
        `price * 3`: a whole factor stays a plain number. A fractional factor or a
        division would be inexact on SQLite, so it fails here on every backend:
        do that arithmetic on Decimals in Python."""
        if op is operator.mul and isinstance(value, int) and not isinstance(value, bool):
            return sa.Integer()
        if op in (operator.mul, operator.truediv, operator.floordiv, operator.mod):
            raise TypeError(f"money columns are only multiplied by whole numbers in SQL, not {op.__name__} {value!r}")
        return self


# Money: yuan with 2 decimals, Decimal in Python, exact in SQL on both backends.
Money = ExactDecimal(12, 2)
# Percentages and rounding steps (markup 5.50 %, step 0.10 yuan).
Percent = ExactDecimal(7, 2)
Step = ExactDecimal(4, 2)


def enum_column(enum_cls, **kwargs):
    """A VARCHAR holding an enum's value (portable, readable in SQL)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        **kwargs,
    )


class LabeledEnum(str, enum.Enum):
    """A str enum whose members carry a Chinese label for the UI."""

    def __new__(cls, value, label):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.label = label
        return obj

    @classmethod
    def choices(cls):
        return [(m.value, m.label) for m in cls]


