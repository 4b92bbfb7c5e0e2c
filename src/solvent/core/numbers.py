"""Exact numbers.

Money, sizes and rates enter solvent as decimal strings, ints or ``Decimal`` — never as binary
floats, whose value is not the number a venue published. Everything here validates on the way
in and names the field that was wrong.

Rounding helpers take an explicit direction: solvent rounds against the account and toward the
protocol, and each venue's own published rule (dYdX rounds up, Aave floors/ceils) is applied by
the policy that owns it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from .bounds import MAX_ABS_INT, MAX_TEXT_DIGITS, any_decimal
from .errors import InvalidInput

Number = int | str | Decimal

ZERO = Decimal(0)
ONE = Decimal(1)


def to_decimal(value: object, field: str) -> Decimal:
    """Parse ``value`` into a finite Decimal or raise :class:`InvalidInput` naming ``field``.

    Floats are refused: a float is not the decimal number a venue publishes, and building
    ledger values from one is how cents go missing. Pass the decimal string instead.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_DIGITS:
            raise InvalidInput(field, f"a decimal string of at most {MAX_TEXT_DIGITS} characters, got {len(value)}")
        try:
            result = Decimal(value)  # surrounding whitespace and digit-group underscores are accepted
        except InvalidOperation:
            raise InvalidInput(field, f"not a decimal number: {value!r}") from None
    elif isinstance(value, bool):
        raise InvalidInput(field, f"expected a number, got a boolean ({value})")
    elif isinstance(value, int):
        if not -MAX_ABS_INT <= value <= MAX_ABS_INT:
            raise InvalidInput(field, f"integer out of range (|x| <= 2**64): {value.bit_length()} bits")
        result = Decimal(value)
    elif isinstance(value, float):
        raise InvalidInput(field, f"floats are not accepted ({value!r}); pass the decimal string")
    else:
        raise InvalidInput(field, f"expected a decimal string, int or Decimal, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidInput(field, f"must be finite, got {value!r}")
    if value is result:  # a Decimal already inside: computed values (1e-48 residuals) are not input
        return result
    return any_decimal(result, field)


def positive(value: object, field: str) -> Decimal:
    """A Decimal strictly greater than zero (prices, sizes, leverage)."""
    result = to_decimal(value, field)
    if result <= 0:
        raise InvalidInput(field, f"must be positive, got {result}")
    return result


def non_negative(value: object, field: str) -> Decimal:
    """A Decimal at least zero (balances, rates, floors)."""
    result = to_decimal(value, field)
    if result < 0:
        raise InvalidInput(field, f"must not be negative, got {result}")
    return result


def fraction(value: object, field: str, *, allow_one: bool = True) -> Decimal:
    """A rate in [0, 1] (or [0, 1) when ``allow_one`` is false)."""
    result = non_negative(value, field)
    if result > 1 or (not allow_one and result == 1):
        bound = "1" if allow_one else "below 1"
        raise InvalidInput(field, f"must be at most {bound}, got {result}")
    return result


def to_int(value: object, field: str) -> int:
    """An exact integer (quantums, slots): ints or integral decimal strings."""
    if type(value) is int and -MAX_ABS_INT <= value <= MAX_ABS_INT:  # the common case
        return value
    result = to_decimal(value, field)
    if result != result.to_integral_value():
        raise InvalidInput(field, f"must be an integer, got {result}")
    return int(result)


def floor_int(value: Decimal) -> int:
    """Largest integer <= value."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded toward +infinity (denominator > 0)."""
    return -((-numerator) // denominator)


def to_units(amount: Decimal, decimals: int, *, rounding: str) -> int:
    """Convert an amount of an asset into integer units of 10**-decimals, rounding as told."""
    scaled = amount.scaleb(decimals)
    return int(scaled.to_integral_value(rounding=rounding))


def from_units(units: int, decimals: int) -> Decimal:
    """The Decimal amount of ``units`` integer units of 10**-decimals (exact)."""
    return Decimal(units).scaleb(-decimals)


def isqrt_floor(n: int) -> int:
    """Integer square root rounded down, as on-chain code computes it."""
    if n < 0:
        raise InvalidInput("sqrt", f"negative argument {n}")
    from math import isqrt

    return isqrt(n)
