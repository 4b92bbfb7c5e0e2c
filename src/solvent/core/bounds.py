"""Bounds on the numbers a command may carry: each kind of field has a documented range.

The engine is total (see ``docs/service-trust.md``): every command gives events or a refusal
naming the field. Two layers keep arithmetic away from the decimal context's limits (where
``decimal.Overflow`` or a silent rounding to zero would start):

- every decimal given as text or an integer to :func:`solvent.core.numbers.to_decimal` has an
  adjusted exponent in ``[-ANY_EXPONENT, ANY_EXPONENT]`` and its text at most ``MAX_TEXT_DIGITS``
  characters (``1E-999999999`` is refused wherever it is sent); a ``Decimal`` the engine or a policy
  computed passes as it is (a residual of 1e-48 is arithmetic, not input);
- the fields of commands are checked against the range of their kind below, where the engine
  reads them (not only at the HTTP edge), so that a price of ``1E-400`` or ``1E+24`` is refused as
  a price.

=========== ===================== ==================== ==========================================
kind        smallest (non-zero)   largest (absolute)   why
=========== ===================== ==================== ==========================================
price       1e-12                 1e12                 memecoins at 1e-9, BTC at 1e5: 3 and 7 orders of room
size        1e-18                 1e12                 contracts or base units
leverage    1e-6                  1e9                  the bracket's maximum is checked afterwards
amount      1e-18                 1e15                 money in an asset (fees, deposits, caps)
timestamp   0                     253402300799         seconds, up to 9999-12-31T23:59:59Z
block       0                     2**53                heights
seed        0                     2**64 - 1            a block's random draw
=========== ===================== ==================== ==========================================

Ids (venues, accounts, markets, backstops: :func:`identifier`): 1 to 200 characters, printable
(no NUL, no control or format characters, no line breaks), no surrounding whitespace, and no
``/``, which separates a venue from its protocol accounts (``venue/insurance``).

With these, a product of a price, a size and a leverage stays below 1e33 and above 1e-36, far
inside the decimal context's exponent range, and a notional in the ledger's integer units fits
any Python int.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from .errors import InvalidInput

ANY_EXPONENT = 40  # any decimal entering the engine: 1e-40 <= |x| < 1e41 (or zero)
MAX_TEXT_DIGITS = 100  # characters of a decimal string (a 5,000-digit number is refused before parsing)
MAX_ABS_INT = 2 ** 64  # any integer field


class Range(NamedTuple):
    """The magnitudes allowed for one kind of field (zero is allowed or not by the caller)."""

    smallest: Decimal
    largest: Decimal


PRICE = Range(Decimal("1e-12"), Decimal("1e12"))
SIZE = Range(Decimal("1e-18"), Decimal("1e12"))
LEVERAGE = Range(Decimal("1e-6"), Decimal("1e9"))
AMOUNT = Range(Decimal("1e-18"), Decimal("1e15"))

MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
MAX_BLOCK = 2 ** 53
MAX_SEED = 2 ** 64 - 1

KINDS: dict[str, Range] = {"price": PRICE, "size": SIZE, "leverage": LEVERAGE, "amount": AMOUNT}


def within(value: Decimal, bounds: Range, field: str, kind: str) -> Decimal:
    """``value`` if zero or its magnitude is within ``bounds``; else InvalidInput naming ``field``."""
    if value:
        magnitude = abs(value)
        if magnitude > bounds.largest:
            raise InvalidInput(field, f"{value} is out of range for a {kind} (at most {bounds.largest})")
        if magnitude < bounds.smallest:
            raise InvalidInput(field, f"{value} is out of range for a {kind} (at least {bounds.smallest})")
    return value


def any_decimal(value: Decimal, field: str) -> Decimal:
    """The bound every decimal entering the engine obeys (see the module docstring)."""
    if value and not -ANY_EXPONENT <= value.adjusted() <= ANY_EXPONENT:
        raise InvalidInput(field, f"{value:.3E} is out of range (1e-{ANY_EXPONENT} <= |x| < 1e{ANY_EXPONENT + 1})")
    return value


def price(value: Decimal, field: str) -> Decimal:
    return within(value, PRICE, field, "price")


def size(value: Decimal, field: str) -> Decimal:
    return within(value, SIZE, field, "size")


def leverage(value: Decimal, field: str) -> Decimal:
    return within(value, LEVERAGE, field, "leverage")


def amount(value: Decimal, field: str) -> Decimal:
    return within(value, AMOUNT, field, "amount")


def integer(value: int, field: str, largest: int, *, what: str = "integer") -> int:
    if not 0 <= value <= largest:
        raise InvalidInput(field, f"{value} is out of range for a {what} (0 to {largest})")
    return value


def timestamp(value: int, field: str = "timestamp") -> int:
    return integer(value, field, MAX_TIMESTAMP, what="timestamp (seconds up to year 9999)")


def block(value: int, field: str = "block") -> int:
    return integer(value, field, MAX_BLOCK, what="block")


def seed(value: int, field: str = "seed") -> int:
    return integer(value, field, MAX_SEED, what="seed")


MAX_ID = 200
ID_SEPARATOR = "/"


def identifier(value: object, field: str) -> str:
    """An id a command creates (venue, account, market, backstop): see the module docstring."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a string id, got {type(value).__name__}")
    if not value or len(value) > MAX_ID:
        raise InvalidInput(field, f"an id has 1 to {MAX_ID} characters, got {len(value)}")
    if not value.isprintable() or value != value.strip():
        raise InvalidInput(field, f"an id is printable text without control characters or surrounding spaces: "
                                  f"{value!r}")
    if ID_SEPARATOR in value:
        raise InvalidInput(field, f"ids may not contain {ID_SEPARATOR!r} (it names a venue's protocol accounts)")
    return value
