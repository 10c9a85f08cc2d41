"""Schema fields that keep what the API accepts inside what the database can store: invalid
input is a 422 that names the field, never a 500 from the database."""
from __future__ import annotations

from decimal import Decimal

from apiflask.fields import Decimal as _Decimal
from apiflask.fields import Integer as _Integer
from apiflask.validators import Range
from werkzeug.routing import IntegerConverter

# every integer column is a 32-bit INTEGER (PostgreSQL)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# money columns are NUMERIC(14, 2)
MONEY_MAX = Decimal("999999999999.99")


class Integer(_Integer):
    """An integer that fits an INTEGER column; a larger one is invalid."""

    default_error_messages = {"out_of_range": f"Must be between {INT_MIN} and {INT_MAX}."}

    def _validated(self, value):
        number = super()._validated(value)
        if number is not None and not INT_MIN <= number <= INT_MAX:
            raise self.make_error("out_of_range")
        return number


class ColumnIntConverter(IntegerConverter):
    """`<int:...>` in routes: an id past the column's range matches no route (404) instead of
    reaching the database."""

    def __init__(self, map, fixed_digits=0, min=None, max=INT_MAX, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def MoneyIn(**kwargs) -> _Decimal:
    """A money amount sent to the API: a number (or decimal string) from 0 to what
    NUMERIC(14, 2) holds, two decimal places. Documented with numeric bounds."""
    return _Decimal(allow_none=True, places=2, validate=Range(min=0, max=MONEY_MAX),
                    metadata={"minimum": 0, "maximum": float(MONEY_MAX),
                              **kwargs.pop("metadata", {})}, **kwargs)


def MoneyOut(**kwargs) -> _Decimal:
    """A money amount the API answers: a decimal string with two places ("89.00"), so no
    precision is lost in a float; documented as such."""
    return _Decimal(as_string=True, allow_none=True, places=2,
                    metadata={"type": "string", "format": "decimal",
                              "example": "89.00", **kwargs.pop("metadata", {})}, **kwargs)
