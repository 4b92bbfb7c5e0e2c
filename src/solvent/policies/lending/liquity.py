"""Liquity v1 trove liquidation: stability-pool offset, redistribution, recovery mode.

Reference: ../shared/reference/lending-protocols.md §4 (``TroveManager.sol`` of liquity/dev).
Amounts are 18-decimal integers (ETH, LUSD, the ETH price in LUSD) and divisions truncate, as
the contract's SafeMath does. A trove is always liquidated whole:

- the caller gets ``coll/200`` (0.5%) of the collateral and the 200 LUSD gas reserve (which is
  part of the trove's debt, so it is offset or redistributed with the rest);
- **normal mode**, ``ICR < MCR`` (110%): the stability pool absorbs ``min(debt, pool)`` of the
  debt and the same share of the remaining collateral; what it cannot cover (debt and the rest
  of the collateral) is **redistributed** to all other troves in proportion to their stakes;
- **recovery mode** (``TCR < CCR`` = 150%), where the last trove is never liquidated:
  ``ICR ≤ 100%`` — pure redistribution; ``100% < ICR < MCR`` — as in normal mode;
  ``MCR ≤ ICR < TCR`` with the pool able to absorb the whole debt — a **capped offset**: the pool
  takes the debt and collateral worth exactly ``debt·MCR`` (less the 0.5% gas compensation of that
  capped amount), the rest of the collateral is a surplus the borrower can claim; otherwise the
  trove is not liquidated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput
from ...core.numbers import to_int
from . import from_units, to_units

DECIMAL_PRECISION = 10**18
ONE_HUNDRED_PERCENT = DECIMAL_PRECISION


def _e18(value: object, field: str) -> int:
    return to_units(value, 18, field)


@dataclass(frozen=True)
class LiquityConfig:
    """TroveManager constants (a preset's ``[trove_manager]`` table); ratios and LUSD at 1e18."""

    mcr: int = 11 * DECIMAL_PRECISION // 10
    ccr: int = 15 * DECIMAL_PRECISION // 10
    lusd_gas_compensation: int = 200 * DECIMAL_PRECISION
    min_net_debt: int = 1_800 * DECIMAL_PRECISION
    percent_divisor: int = 200  # coll / 200 = 0.5% to the liquidator

    def __post_init__(self) -> None:
        if self.mcr <= ONE_HUNDRED_PERCENT:
            raise InvalidInput("mcr", "must exceed 1")
        if self.ccr < self.mcr:
            raise InvalidInput("ccr", "must be at least the MCR")
        if self.percent_divisor <= 0:
            raise InvalidInput("percent_divisor", "must be positive")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "trove_manager") -> LiquityConfig:
        d = cls()
        return cls(
            mcr=_e18(table["mcr"], f"{where}.mcr") if "mcr" in table else d.mcr,
            ccr=_e18(table["ccr"], f"{where}.ccr") if "ccr" in table else d.ccr,
            lusd_gas_compensation=(_e18(table["lusd_gas_compensation"], f"{where}.lusd_gas_compensation")
                                   if "lusd_gas_compensation" in table else d.lusd_gas_compensation),
            min_net_debt=_e18(table["min_net_debt"], f"{where}.min_net_debt") if "min_net_debt" in table
            else d.min_net_debt,
            percent_divisor=to_int(table.get("percent_divisor", d.percent_divisor), f"{where}.percent_divisor"),
        )


def compute_cr(coll: int, debt: int, price: int) -> int:
    """``coll·price/debt`` (1e18); the contract's ``2**256 − 1`` when there is no debt."""
    return coll * price // debt if debt > 0 else 2**256 - 1


def icr(coll: object, debt: object, price: object) -> Decimal:
    """A trove's individual collateral ratio (decimal), truncated at 18 decimals like the contract."""
    debt_units = _e18(debt, "debt")
    if debt_units == 0:
        raise InvalidInput("debt", "must be positive")
    return from_units(compute_cr(_e18(coll, "coll"), debt_units, _e18(price, "price")), 18)


@dataclass(frozen=True)
class TroveLiquidation:
    """Where a liquidated trove's debt and collateral go (1e18 integers; decimals via ``outputs``).

    ``rule`` names the branch taken: ``offset`` (normal or recovery 100%–MCR), ``redistribution``
    (recovery, ICR ≤ 100%), ``capped_offset`` (recovery, MCR ≤ ICR < TCR) or ``none`` (not
    liquidatable: everything is zero).
    """

    rule: str
    icr: int
    gas_comp_coll: int
    gas_comp_lusd: int
    offset_debt: int
    coll_to_sp: int
    redistributed_debt: int
    redistributed_coll: int
    surplus_coll: int

    @property
    def liquidated(self) -> bool:
        return self.rule != "none"

    def outputs(self) -> dict[str, Any]:
        names = ("gas_comp_coll", "gas_comp_lusd", "offset_debt", "coll_to_sp", "redistributed_debt",
                 "redistributed_coll", "surplus_coll")
        result: dict[str, Any] = {name: from_units(getattr(self, name), 18) for name in names}
        result.update(icr=from_units(self.icr, 18), liquidated=self.liquidated, rule=self.rule)
        return result


def offset_and_redistribution(debt: int, coll: int, lusd_in_pool: int) -> tuple[int, int, int, int]:
    """Split (debt, coll) between the stability pool and redistribution:
    ``(debt_to_offset, coll_to_sp, debt_to_redistribute, coll_to_redistribute)``."""
    if lusd_in_pool <= 0:
        return 0, 0, debt, coll
    offset = min(debt, lusd_in_pool)
    coll_to_sp = coll * offset // debt
    return offset, coll_to_sp, debt - offset, coll - coll_to_sp


def liquidate_units(coll: int, debt: int, price: int, lusd_in_pool: int, *, recovery_mode: bool, tcr: int = 0,
                    config: LiquityConfig = LiquityConfig(), last_trove: bool = False) -> TroveLiquidation:
    """Liquidate one trove (§4.2), in 1e18 integers. ``debt`` is the entire (composite) debt."""
    if min(coll, debt, price, lusd_in_pool, tcr) < 0:
        raise InvalidInput("trove", "coll, debt, price, stability_pool and tcr must not be negative")
    if debt == 0:
        raise InvalidInput("debt", "must be positive")
    if price == 0:
        raise InvalidInput("price", "must be positive")
    ratio = compute_cr(coll, debt, price)
    nothing = TroveLiquidation("none", ratio, 0, 0, 0, 0, 0, 0, 0)
    gas = coll // config.percent_divisor
    rest = coll - gas

    def offset_rule() -> TroveLiquidation:
        values = offset_and_redistribution(debt, rest, lusd_in_pool)
        return TroveLiquidation("offset", ratio, gas, config.lusd_gas_compensation, *values, 0)

    if not recovery_mode:
        return offset_rule() if ratio < config.mcr else nothing
    if last_trove:
        return nothing
    if ratio <= ONE_HUNDRED_PERCENT:
        return TroveLiquidation("redistribution", ratio, gas, config.lusd_gas_compensation, 0, 0, debt, rest, 0)
    if ratio < config.mcr:
        return offset_rule()
    if ratio < tcr and debt <= lusd_in_pool:
        capped = debt * config.mcr // price  # collateral worth exactly debt × MCR
        capped_gas = capped // config.percent_divisor
        return TroveLiquidation("capped_offset", ratio, capped_gas, config.lusd_gas_compensation, debt,
                                capped - capped_gas, 0, 0, coll - capped)
    return nothing


def liquidate(coll: object, debt: object, price: object, stability_pool: object, *, mode: str | None = None,
              tcr: object | None = None, config: LiquityConfig = LiquityConfig(),
              last_trove: bool = False) -> TroveLiquidation:
    """Liquidate one trove from decimals (ETH, LUSD, LUSD per ETH). ``mode`` is ``normal`` or
    ``recovery``; when omitted it follows from ``tcr`` (recovery iff ``TCR < CCR``). Recovery-mode
    rules compare the ICR with ``tcr``, which is then required."""
    tcr_units = None if tcr is None else _e18(tcr, "tcr")
    if mode is None:
        if tcr_units is None:
            raise InvalidInput("mode", "give the mode or the system's TCR")
        recovery = tcr_units < config.ccr
    else:
        name = str(mode).strip().lower()
        if name not in ("normal", "recovery"):
            raise InvalidInput("mode", f"expected 'normal' or 'recovery', got {mode!r}")
        recovery = name == "recovery"
    if recovery and tcr_units is None:
        raise InvalidInput("tcr", "required in recovery mode (troves with MCR ≤ ICR < TCR are liquidatable)")
    return liquidate_units(_e18(coll, "coll"), _e18(debt, "debt"), _e18(price, "price"),
                           _e18(stability_pool, "stability_pool"), recovery_mode=recovery,
                           tcr=tcr_units or 0, config=config, last_trove=last_trove)
