"""Morpho Blue liquidation: an incentive fixed by the market's LLTV, any size, bad debt realised.

Reference: ../shared/reference/lending-protocols.md §6 (``Morpho.sol``, ``ConstantsLib.sol`` of
morpho-org/morpho-blue). WAD (1e18) fixed point with explicit rounding directions; the oracle
price of one collateral unit in loan units is scaled by ``ORACLE_PRICE_SCALE = 1e36`` (and by the
two tokens' decimals).

- ``LIF = min(1.15, 1/(1 − 0.3·(1 − LLTV)))`` = ``min(1.15, 1/(0.3·LLTV + 0.7))``, with
  ``wMulDown`` for the product and ``wDivDown`` for the inverse;
- healthy iff ``⌊⌊collateral·price/1e36⌋·LLTV⌋ ≥ borrowed`` — liquidatable otherwise, whatever
  the size: the liquidator names either the collateral to seize (the repay is rounded up) or the
  debt to repay (the seized collateral is rounded down);
- when the borrower's collateral reaches zero, the remaining debt is written off against the
  market's suppliers at once (``bad_debt``). Seizing everything still leaves bad debt once the
  LTV exceeds ``1/LIF``.

Borrow shares are taken at par with assets (a market without accrued interest); Morpho's
virtual-share offsets are not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput
from . import WAD, ProtocolRevert, ceil_div, from_units, to_units

ORACLE_PRICE_SCALE = 10**36


def _wad(value: object, field: str) -> int:
    return to_units(value, 18, field)


def w_mul_down(x: int, y: int) -> int:
    return x * y // WAD


def w_div_down(x: int, y: int) -> int:
    return x * WAD // y


def w_div_up(x: int, y: int) -> int:
    return ceil_div(x * WAD, y)


@dataclass(frozen=True)
class MorphoConfig:
    """``MAX_LIQUIDATION_INCENTIVE_FACTOR`` and ``LIQUIDATION_CURSOR`` (wad)."""

    max_liquidation_incentive_factor: int = 115 * WAD // 100
    liquidation_cursor: int = 3 * WAD // 10

    def __post_init__(self) -> None:
        if self.max_liquidation_incentive_factor < WAD:
            raise InvalidInput("max_liquidation_incentive_factor", "must be at least 1")
        if not 0 <= self.liquidation_cursor <= WAD:
            raise InvalidInput("liquidation_cursor", "must be within [0, 1]")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "liquidation") -> MorphoConfig:
        d = cls()
        return cls(
            max_liquidation_incentive_factor=(
                _wad(table["max_liquidation_incentive_factor"], f"{where}.max_liquidation_incentive_factor")
                if "max_liquidation_incentive_factor" in table else d.max_liquidation_incentive_factor),
            liquidation_cursor=(_wad(table["liquidation_cursor"], f"{where}.liquidation_cursor")
                                if "liquidation_cursor" in table else d.liquidation_cursor),
        )


def _lltv(value: object, field: str = "lltv") -> int:
    units = _wad(value, field)
    if units >= WAD:  # enableLltv requires LLTV < 100%
        raise InvalidInput(field, "must be below 1")
    return units


def lif_units(lltv: int, config: MorphoConfig = MorphoConfig()) -> int:
    """The liquidation incentive factor (wad) of a market with ``lltv`` (wad)."""
    if not 0 <= lltv < WAD:
        raise InvalidInput("lltv", "must be within [0, 1)")
    denominator = WAD - w_mul_down(config.liquidation_cursor, WAD - lltv)
    return min(config.max_liquidation_incentive_factor, w_div_down(WAD, denominator))


def liquidation_incentive_factor(lltv: object, config: MorphoConfig = MorphoConfig()) -> Decimal:
    """``min(1.15, 1/(1 − 0.3·(1 − LLTV)))`` with Morpho's WAD rounding (down)."""
    return from_units(lif_units(_lltv(lltv), config), 18)


def bad_debt_ltv(lltv: object, config: MorphoConfig = MorphoConfig()) -> Decimal:
    """The LTV above which even seizing all collateral leaves bad debt: ``1/LIF``."""
    return 1 / liquidation_incentive_factor(lltv, config)


def oracle_price(price: object, collateral_decimals: int = 18, loan_decimals: int = 18) -> int:
    """A price in loan tokens per collateral token as Morpho's oracle returns it (scaled 1e36,
    adjusted by the tokens' decimals). Refuses a price the oracle's integer cannot hold."""
    exponent = 36 + loan_decimals - collateral_decimals
    if exponent < 0:
        raise InvalidInput("price", "decimals too far apart for a 1e36 oracle price")
    units = to_units(price, exponent, "price")
    if units <= 0:
        raise InvalidInput("price", "must be positive")
    return units


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    return w_mul_down(collateral * price // ORACLE_PRICE_SCALE, lltv)


def is_healthy(collateral: int, borrowed: int, price: int, lltv: int) -> bool:
    """``maxBorrow ≥ borrowed`` (collateral and borrowed in token units, price from :func:`oracle_price`)."""
    return max_borrow(collateral, price, lltv) >= borrowed


@dataclass(frozen=True)
class MorphoLiquidation:
    """A liquidation in token units: collateral seized, loan repaid, debt written off."""

    lif: int
    seized: int
    repaid: int
    bad_debt: int
    collateral_after: int
    borrowed_after: int
    collateral_decimals: int = 18
    loan_decimals: int = 18

    def outputs(self) -> dict[str, Any]:
        return {
            "lif": from_units(self.lif, 18),
            "seized": from_units(self.seized, self.collateral_decimals),
            "repaid": from_units(self.repaid, self.loan_decimals),
            "bad_debt": from_units(self.bad_debt, self.loan_decimals),
            "collateral_after": from_units(self.collateral_after, self.collateral_decimals),
            "borrowed_after": from_units(self.borrowed_after, self.loan_decimals),
        }


def liquidate_units(collateral: int, borrowed: int, price: int, lltv: int, *, seized: int = 0, repaid: int = 0,
                    config: MorphoConfig = MorphoConfig()) -> MorphoLiquidation:
    """``liquidate`` in Morpho's integers: exactly one of ``seized``/``repaid`` is non-zero."""
    if (seized == 0) == (repaid == 0):
        raise ProtocolRevert("inconsistent input", "give exactly one of seized and repaid")
    if min(collateral, borrowed, seized, repaid) < 0:
        raise InvalidInput("position", "amounts must not be negative")
    if is_healthy(collateral, borrowed, price, lltv):
        raise ProtocolRevert("position is healthy", "LTV is not above the LLTV")
    lif = lif_units(lltv, config)
    if seized:
        repaid = w_div_up(ceil_div(seized * price, ORACLE_PRICE_SCALE), lif)
    else:
        seized = w_mul_down(repaid, lif) * ORACLE_PRICE_SCALE // price
    if seized > collateral:
        raise ProtocolRevert("insufficient collateral", "cannot seize more collateral than the position holds")
    if repaid > borrowed:
        raise ProtocolRevert("insufficient debt", "cannot repay more than the position owes")
    collateral_after = collateral - seized
    borrowed_after = borrowed - repaid
    bad_debt = 0
    if collateral_after == 0:  # no collateral left: the rest is written off against suppliers
        bad_debt, borrowed_after = borrowed_after, 0
    return MorphoLiquidation(lif, seized, repaid, bad_debt, collateral_after, borrowed_after)


def liquidate(collateral: object, borrowed: object, price: object, lltv: object, *, seized: object = None,
              repaid: object = None, collateral_decimals: int = 18, loan_decimals: int = 18,
              config: MorphoConfig = MorphoConfig()) -> MorphoLiquidation:
    """:func:`liquidate_units` from decimals (token amounts, loan tokens per collateral token)."""
    result = liquidate_units(
        to_units(collateral, collateral_decimals, "collateral"),
        to_units(borrowed, loan_decimals, "borrowed"),
        oracle_price(price, collateral_decimals, loan_decimals),
        _lltv(lltv),
        seized=0 if seized is None else to_units(seized, collateral_decimals, "seized"),
        repaid=0 if repaid is None else to_units(repaid, loan_decimals, "repaid"),
        config=config,
    )
    return MorphoLiquidation(result.lif, result.seized, result.repaid, result.bad_debt, result.collateral_after,
                             result.borrowed_after, collateral_decimals, loan_decimals)
