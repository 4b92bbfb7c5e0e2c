"""Liquidation policies of lending and CDP protocols, each in the protocol's own integer units.

Reference: ../shared/reference/lending-protocols.md (§1 Aave v3, §2 Compound v3, §3 Maker
Liquidations 2.0, §4 Liquity v1, §5 Euler v2, §6 Morpho Blue). One module per protocol:

- :mod:`.aave` — health factor, close factor (3.0 per reserve vs 3.3 whole position), liquidation
  call with bonus, protocol fee, collateral cap, the $1,000 dust rule and deficits;
- :mod:`.compound` — store-front quote, absorb at the liquidation factor, reserves;
- :mod:`.maker` — the three price-decrease functions, ``bark`` and ``take`` in wad/ray/rad;
- :mod:`.liquity` — stability-pool offset, redistribution, recovery mode, gas compensation;
- :mod:`.euler` — discount = 1 − health, capped; repay and yield;
- :mod:`.morpho` — the liquidation incentive factor from the LLTV, seize/repay, bad debt.

The contracts compute with unsigned integers at fixed scales and truncate (or round half up)
at given places; the vectors they publish depend on those places. So every policy converts its
decimal inputs into the integers the contract would hold, computes as the contract does, and
converts back only at the end. A value finer than the contract's unit is refused, naming the
field, rather than silently rounded: the contract could not hold it.

This module holds what the protocols share: the scales and the exact conversions.
"""

from __future__ import annotations

from decimal import Decimal

from ...core.errors import InvalidInput, SolventError
from ...core.numbers import non_negative, to_decimal

WAD = 10**18
RAY = 10**27
RAD = 10**45


class ProtocolRevert(SolventError):
    """The protocol would revert this call (``reason`` is the contract's own error name)."""

    def __init__(self, reason: str, message: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {message}" if message else reason)


def to_units(value: object, decimals: int, field: str, *, signed: bool = False) -> int:
    """``value`` as an integer count of 10**-decimals, exactly; anything finer is refused."""
    amount = to_decimal(value, field) if signed else non_negative(value, field)
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field, f"{amount} is finer than the protocol's unit 1e-{decimals}")
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    """The exact Decimal of ``units`` counts of 10**-decimals."""
    return Decimal(units).scaleb(-decimals)


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded up (non-negative operands, positive denominator)."""
    return -((-numerator) // denominator)


def half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half up, the way WadRayMath and PercentageMath round."""
    return (numerator + denominator // 2) // denominator


from . import aave, compound, euler, liquity, maker, morpho

__all__ = [
    "RAD",
    "RAY",
    "WAD",
    "ProtocolRevert",
    "aave",
    "ceil_div",
    "compound",
    "euler",
    "from_units",
    "half_up_div",
    "liquity",
    "maker",
    "morpho",
    "to_units",
]
