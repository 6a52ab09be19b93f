"""Column types shared by the models."""
import enum

import sqlalchemy as sa


# Money: yuan with 2 decimals, NUMERIC in the database, Decimal in Python.
Money = sa.Numeric(12, 2, asdecimal=True)


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


