"""Euler v2 (Euler Vault Kit) liquidation: the discount is how unhealthy the account is.

Reference: ../shared/reference/lending-protocols.md §5 (``Liquidation.sol``, ``LiquidityUtils.sol``,
``LTVConfig.sol`` of euler-xyz/euler-vault-kit). Values are in the vault's unit of account at
18 decimals, LTVs and the maximum discount in the kit's ``CONFIG_SCALE`` (1e4); divisions truncate.

- ``collateralAdjusted = Σ ⌊value_i·LTV_i⌋`` (liquidation LTV, mid prices); the account is in
  violation iff ``collateralAdjusted ≤ liability`` (note ``≤``) and it has a liability;
- ``discountFactor = ⌊collateralAdjusted/liability⌋`` (the health score), floored at
  ``1 − maxLiquidationDiscount``: the discount ``1 − discountFactor`` grows with unhealthiness
  and is capped;
- the whole liability may be taken over: ``maxYield = liability / discountFactor`` of collateral
  value; if the chosen collateral is worth less, all of it is yielded for
  ``collateralValue × discountFactor`` of repay; a smaller repay yields proportionally less;
- worthless collateral (value 0) is taken for nothing.

A governance cut of the liquidation LTV can be ramped: :func:`ramped_ltv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput
from ...core.numbers import to_int
from . import ProtocolRevert, from_units, to_units

SCALE = 10**18  # unit of account and discount factors
CONFIG_SCALE = 10_000
CONFIG_DECIMALS = 4


def _config(value: object, field: str, *, below_one: bool = False) -> int:
    units = to_units(value, CONFIG_DECIMALS, field)
    if units > CONFIG_SCALE or (below_one and units == CONFIG_SCALE):
        raise InvalidInput(field, "must be below 1" if below_one else "must be at most 1")
    return units


@dataclass(frozen=True)
class EulerVaultConfig:
    """A vault's liquidation settings: ``max_liquidation_discount`` in CONFIG_SCALE (the kit's
    default is 0 — the creator must set it; 100% is refused), cool-off in seconds."""

    max_liquidation_discount: int = 0
    liquidation_cool_off_time: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.max_liquidation_discount < CONFIG_SCALE:
            raise InvalidInput("max_liquidation_discount", "must be within [0, 1)")
        if self.liquidation_cool_off_time < 0:
            raise InvalidInput("liquidation_cool_off_time", "must not be negative")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "liquidation") -> EulerVaultConfig:
        return cls(
            max_liquidation_discount=_config(table.get("max_liquidation_discount", "0"),
                                             f"{where}.max_liquidation_discount", below_one=True),
            liquidation_cool_off_time=to_int(table.get("liquidation_cool_off_time", 0),
                                             f"{where}.liquidation_cool_off_time"),
        )

    def with_max_discount(self, value: object) -> EulerVaultConfig:
        return EulerVaultConfig(_config(value, "max_discount", below_one=True), self.liquidation_cool_off_time)


def is_violator(collateral_adjusted: int, liability: int) -> bool:
    """In violation iff there is a liability and ``collateralAdjusted ≤ liability``."""
    return liability > 0 and collateral_adjusted <= liability


def discount_factor(collateral_adjusted: int, liability: int, max_discount: int) -> int:
    """``max(adjusted/liability, 1 − maxDiscount)`` at 1e18 (the health score, floored)."""
    if liability <= 0:
        raise InvalidInput("liability_value", "must be positive")
    factor = collateral_adjusted * SCALE // liability
    floor = SCALE - SCALE * max_discount // CONFIG_SCALE
    return max(factor, floor)


def ramped_ltv(target: object, initial: object, time_remaining: object, ramp_duration: object) -> Decimal:
    """The liquidation LTV during a ramp down: ``target + (initial − target)·remaining/duration``.
    Increases apply at once (no ramp), so ``initial ≤ target`` returns ``target``."""
    tgt = _config(target, "target")
    ini = _config(initial, "initial")
    remaining = to_int(time_remaining, "time_remaining")
    duration = to_int(ramp_duration, "ramp_duration")
    if duration <= 0 or remaining <= 0 or ini <= tgt:
        return from_units(tgt, CONFIG_DECIMALS)
    remaining = min(remaining, duration)
    return from_units(tgt + (ini - tgt) * remaining // duration, CONFIG_DECIMALS)


@dataclass(frozen=True)
class EulerLiquidation:
    """The most a liquidator may take over from a violator, or a partial repay of it.

    ``repay`` is liability *value* taken over (unit of account), ``yield_`` the collateral it
    receives (collateral units), ``discount`` = 1 − discount factor; all 0 when not in violation.
    """

    violation: bool
    discount_factor: int
    repay: int  # 1e18 unit of account
    yield_: int  # collateral units
    collateral_decimals: int = 18

    @property
    def discount(self) -> Decimal:
        return from_units(SCALE - self.discount_factor, 18) if self.violation else Decimal(0)

    def outputs(self) -> dict[str, Any]:
        return {"discount": self.discount, "repay": from_units(self.repay, 18),
                "yield": from_units(self.yield_, self.collateral_decimals), "violation": self.violation}


def max_liquidation(collateral_adjusted: int, liability: int, max_discount: int, collateral_balance: int,
                    collateral_value: int) -> tuple[bool, int, int, int]:
    """``calculateMaxLiquidation`` in integers: (violation, discount factor, max repay value,
    max yield in collateral units). Values at 1e18, ``max_discount`` in CONFIG_SCALE."""
    if not is_violator(collateral_adjusted, liability):
        return False, SCALE, 0, 0
    factor = discount_factor(collateral_adjusted, liability, max_discount)
    if collateral_value == 0:  # worthless (or unrepresentable) collateral: free to take
        return True, factor, 0, collateral_balance
    repay = liability
    yield_value = repay * SCALE // factor
    if collateral_value < yield_value:  # not enough of this collateral: take it all, repay less
        repay = collateral_value * factor // SCALE
        yield_value = collateral_value
    return True, factor, repay, yield_value * collateral_balance // collateral_value


def liquidation(collateral_value: object, liability_value: object, ltv: object, max_discount: object,
                collateral_amount: object, collateral_price: object, *, repay: object | None = None,
                collateral_decimals: int = 18) -> EulerLiquidation:
    """Liquidation of an account with one collateral (§5.3), from decimals.

    ``collateral_value``/``liability_value`` in the unit of account (mid prices), ``ltv`` the
    liquidation LTV, ``collateral_amount`` of the seized collateral and its ``collateral_price``.
    ``repay`` (unit of account) asks for a partial liquidation; the default is the maximum.
    """
    value = to_units(collateral_value, 18, "collateral_value")
    liability = to_units(liability_value, 18, "liability_value")
    ltv_units = _config(ltv, "ltv")
    cap = _config(max_discount, "max_discount", below_one=True)
    balance = to_units(collateral_amount, collateral_decimals, "collateral_amount")
    price = to_units(collateral_price, 18, "collateral_price")
    seized_value = balance * price // 10**collateral_decimals  # the oracle's quote of the balance
    adjusted = value * ltv_units // CONFIG_SCALE
    violation, factor, max_repay, max_yield = max_liquidation(adjusted, liability, cap, balance, seized_value)
    if repay is None or not violation:
        return EulerLiquidation(violation, factor, max_repay, max_yield, collateral_decimals)
    wanted = to_units(repay, 18, "repay")
    if wanted > max_repay:
        raise ProtocolRevert("E_ExcessiveRepayAmount", f"repay {from_units(wanted, 18)} exceeds the maximum "
                             f"{from_units(max_repay, 18)}")
    partial_yield = wanted * max_yield // max_repay if max_repay else max_yield
    return EulerLiquidation(True, factor, wanted, partial_yield, collateral_decimals)
