"""Aave v3 liquidations: health factor, close factor, liquidation call, deficit.

Reference: ../shared/reference/lending-protocols.md §1 (``GenericLogic``, ``LiquidationLogic``,
``PercentageMath`` of aave/aave-v3-core and aave-dao/aave-v3-origin). Units are the pool's own:

- an asset amount is an integer count of its smallest unit (``10**-decimals``);
- a price and every value "in base currency" is an integer of ``10**-8`` USD (the oracle's unit);
- LTV, liquidation threshold (LT), liquidation bonus (LB, 10500 = a 5% bonus) and the protocol
  fee (a share of the bonus) are basis points; the health factor is a wad (1e18).

Health factor (§1.1): ``HF = percentMul(Σ value_i, avgLT) / Σ debt_j`` with
``avgLT = ⌊Σ value_i·LT_i / Σ value_i⌋``; values are ``⌊amount·price/unit⌋``. From v3.5 a debt's
value rounds up and the average is no longer truncated first (``Σ value_i·LT_i / debt / 1e4``).
``percentMul``/``percentDiv``/``wadDiv`` round half up. Liquidatable iff ``HF < 1`` (strict).

How much may be repaid (§1.3), per version:

- 3.0–3.2: 50% of the debt reserve's balance while ``HF > 0.95``, else 100%;
- 3.3+: 100% of the reserve's debt, unless the reserve's collateral *and* debt are both worth at
  least $2,000 and ``HF > 0.95``; then at most 50% of the account's *total* debt (in base
  currency), which limits only a reserve holding more than that.

Collateral (§1.4): ``base = ⌊debtPrice·repay·collUnit / (collPrice·debtUnit)⌋``, seized
``percentMul(base, LB)``; when that exceeds the balance, the whole balance is seized and the
repay shrinks to ``percentDiv(balance value in debt units, LB)``. The protocol takes
``percentMul(bonus, fee)`` of the bonus ``seized − percentDiv(seized, LB)``; the liquidator gets
the rest. v3.5 rounds that reduced repay up; v3.7 floors the seized amount and the bonus base
and ceils the fee, so that the liquidator absorbs every rounding.

From v3.3 (§1.3, §1.5): a call that leaves both some of the reserve's debt and some of the
collateral must leave at least $1,000 of each (``MustNotLeaveDust``); and when the call takes
the account's last collateral, every remaining debt is burned and booked as the reserve's
``deficit``.

A liquidation raises an account's HF only while its LTV (debt / collateral value) is below
``1/LB``: above it each unit repaid removes more than its share of collateral, and the account
spirals down (:func:`liquidation_worsens_health`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput, UnknownName
from ...core.numbers import non_negative, to_decimal, to_int
from . import WAD, ProtocolRevert, ceil_div, from_units, half_up_div, to_units

PERCENTAGE_FACTOR = 10_000  # basis points
UINT256_MAX = 2**256 - 1
BPS_DECIMALS = 4


# --------------------------------------------------------------------------------------------
# PercentageMath, in its variants
# --------------------------------------------------------------------------------------------


def percent_mul(value: int, bps: int, rounding: str = "half_up") -> int:
    """``value × bps / 10,000``: half up (v3.0–3.6) or explicitly ``floor``/``ceil`` (v3.7)."""
    product = value * bps
    if rounding == "floor":
        return product // PERCENTAGE_FACTOR
    if rounding == "ceil":
        return ceil_div(product, PERCENTAGE_FACTOR)
    return half_up_div(product, PERCENTAGE_FACTOR)


def percent_div(value: int, bps: int, rounding: str = "half_up") -> int:
    """``value × 10,000 / bps`` with the same rounding choices."""
    numerator = value * PERCENTAGE_FACTOR
    if rounding == "floor":
        return numerator // bps
    if rounding == "ceil":
        return ceil_div(numerator, bps)
    return half_up_div(numerator, bps)


# --------------------------------------------------------------------------------------------
# Versions and protocol constants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AaveVersion:
    """A v3 release (``"3.0"`` … ``"3.7"``) and the rules that changed along the way."""

    minor: int

    @classmethod
    def parse(cls, value: object, field: str = "version") -> AaveVersion:
        text = str(value).strip().lower().removeprefix("v")
        parts = text.split(".")
        if len(parts) < 2 or parts[0] != "3" or not parts[1].isdigit():
            raise InvalidInput(field, f"expected an Aave v3 version such as '3.0' or '3.3', got {value!r}")
        return cls(int(parts[1]))

    def __str__(self) -> str:
        return f"3.{self.minor}"

    @property
    def position_close_factor(self) -> bool:
        """3.3+: 100% by default, 50% of the *total* debt only for large, mildly unhealthy positions."""
        return self.minor >= 3

    @property
    def books_deficit(self) -> bool:
        """3.3+: debt left on an account without collateral is burned into ``reserve.deficit``."""
        return self.minor >= 3

    @property
    def dust_rule(self) -> bool:
        """3.3+: a partial call must leave at least ``min_leftover_base`` of debt and of collateral."""
        return self.minor >= 3

    @property
    def pessimistic_valuation(self) -> bool:
        """3.5+: debt values round up, and HF divides ``Σ value·LT`` without truncating avgLT first."""
        return self.minor >= 5

    @property
    def explicit_liquidation_rounding(self) -> bool:
        """3.7+: seized amount and bonus base floored, protocol fee ceiled."""
        return self.minor >= 7


@dataclass(frozen=True)
class AaveConfig:
    """Pool-wide liquidation constants (a preset's ``[liquidation]`` table), base-currency units.

    Values are the contracts' constants: close factors in bps, HF threshold in wad, amounts in
    ``10**-base_currency_decimals`` (USD with 8 decimals on Ethereum).
    """

    version: AaveVersion = AaveVersion(3)
    base_currency_decimals: int = 8
    default_close_factor_bps: int = 5_000
    max_close_factor_bps: int = 10_000
    close_factor_hf_threshold: int = 95 * WAD // 100
    min_base_max_close_factor_threshold: int = 2_000 * 10**8
    min_leftover_base: int = 1_000 * 10**8

    def __post_init__(self) -> None:
        for name in ("default_close_factor_bps", "max_close_factor_bps"):
            if not 0 < getattr(self, name) <= PERCENTAGE_FACTOR:
                raise InvalidInput(name.removesuffix("_bps"), "must be within (0, 1]")
        if self.close_factor_hf_threshold > WAD:
            raise InvalidInput("close_factor_hf_threshold", "must be at most 1")
        if self.base_currency_decimals < 0:
            raise InvalidInput("base_currency_decimals", "must not be negative")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "liquidation") -> AaveConfig:
        """Build from decimal strings: rates as fractions, thresholds in base currency (USD)."""
        defaults = cls()
        base = to_int(table.get("base_currency_decimals", defaults.base_currency_decimals),
                      f"{where}.base_currency_decimals")

        def bps(key: str, default: int) -> int:
            return default if key not in table else to_units(table[key], BPS_DECIMALS, f"{where}.{key}")

        def base_value(key: str, default: int) -> int:
            return default if key not in table else to_units(table[key], base, f"{where}.{key}")

        return cls(
            version=AaveVersion.parse(table.get("version", str(defaults.version)), f"{where}.version"),
            base_currency_decimals=base,
            default_close_factor_bps=bps("default_close_factor", defaults.default_close_factor_bps),
            max_close_factor_bps=bps("max_close_factor", defaults.max_close_factor_bps),
            close_factor_hf_threshold=(defaults.close_factor_hf_threshold if "close_factor_hf_threshold" not in table
                                       else to_units(table["close_factor_hf_threshold"], 18,
                                                     f"{where}.close_factor_hf_threshold")),
            min_base_max_close_factor_threshold=base_value("min_base_max_close_factor_threshold",
                                                           defaults.min_base_max_close_factor_threshold),
            min_leftover_base=base_value("min_leftover_base", defaults.min_leftover_base),
        )

    def with_version(self, version: object) -> AaveConfig:
        return replace(self, version=version if isinstance(version, AaveVersion) else AaveVersion.parse(version))

    def price_units(self, value: object, field: str) -> int:
        return to_units(value, self.base_currency_decimals, field)

    def base_to_decimal(self, units: int) -> Decimal:
        return from_units(units, self.base_currency_decimals)


# --------------------------------------------------------------------------------------------
# Reserves and accounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AaveReserve:
    """A reserve's risk parameters, in bps: LTV, LT, LB (10500 = +5%), protocol fee (of the bonus)."""

    asset: str
    decimals: int = 18
    ltv_bps: int = 0
    liquidation_threshold_bps: int = 0
    liquidation_bonus_bps: int = PERCENTAGE_FACTOR
    protocol_fee_bps: int = 0

    def __post_init__(self) -> None:
        where = f"reserves[{self.asset}]"
        if not 0 <= self.decimals <= 77:
            raise InvalidInput(f"{where}.decimals", f"must be within 0..77, got {self.decimals}")
        if not 0 <= self.liquidation_threshold_bps <= PERCENTAGE_FACTOR:
            raise InvalidInput(f"{where}.liquidation_threshold", "must be within [0, 1]")
        if not 0 <= self.ltv_bps <= PERCENTAGE_FACTOR:
            raise InvalidInput(f"{where}.ltv", "must be within [0, 1]")
        if self.liquidation_bonus_bps < PERCENTAGE_FACTOR:
            raise InvalidInput(f"{where}.liquidation_bonus", "must be at least 1 (it multiplies the repaid value)")
        if not 0 <= self.protocol_fee_bps <= PERCENTAGE_FACTOR:
            raise InvalidInput(f"{where}.protocol_fee", "must be within [0, 1]")

    @classmethod
    def from_values(cls, asset: str, where: str | None = None, *, decimals: object = 18, ltv: object = "0",
                    liquidation_threshold: object = "0", liquidation_bonus: object = "1",
                    protocol_fee: object = "0") -> AaveReserve:
        """From fractions as the docs write them (LT ``0.83``, LB ``1.05``, fee ``0.1``)."""
        at = where or f"reserves[{asset}]"
        values = {name: to_units(value, BPS_DECIMALS, f"{at}.{name}") for name, value in (
            ("ltv", ltv), ("liquidation_threshold", liquidation_threshold), ("liquidation_bonus", liquidation_bonus),
            ("protocol_fee", protocol_fee))}
        for name in ("ltv", "liquidation_threshold", "protocol_fee"):
            if values[name] > PERCENTAGE_FACTOR:
                raise InvalidInput(f"{at}.{name}", f"must be at most 1, got {from_units(values[name], BPS_DECIMALS)}")
        if values["liquidation_bonus"] < PERCENTAGE_FACTOR:
            raise InvalidInput(f"{at}.liquidation_bonus", "must be at least 1 (it multiplies the repaid value)")
        count = to_int(decimals, f"{at}.decimals")
        if not 0 <= count <= 77:
            raise InvalidInput(f"{at}.decimals", f"must be within 0..77, got {count}")
        return cls(
            asset=asset,
            decimals=count,
            ltv_bps=values["ltv"],
            liquidation_threshold_bps=values["liquidation_threshold"],
            liquidation_bonus_bps=values["liquidation_bonus"],
            protocol_fee_bps=values["protocol_fee"],
        )

    @classmethod
    def from_table(cls, asset: str, table: Mapping[str, Any], where: str | None = None) -> AaveReserve:
        """A preset's ``[reserves.<asset>]`` table."""
        keys = ("decimals", "ltv", "liquidation_threshold", "liquidation_bonus", "protocol_fee")
        return cls.from_values(asset, where, **{key: table[key] for key in keys if key in table})

    def with_overrides(self, values: Mapping[str, Any], where: str) -> AaveReserve:
        """A copy with any of ``decimals``, ``ltv``, ``liquidation_threshold``, ``liquidation_bonus``,
        ``protocol_fee`` replaced by ``values`` (fractions); other keys are ignored."""
        current = {
            "decimals": self.decimals,
            "ltv": from_units(self.ltv_bps, BPS_DECIMALS),
            "liquidation_threshold": from_units(self.liquidation_threshold_bps, BPS_DECIMALS),
            "liquidation_bonus": from_units(self.liquidation_bonus_bps, BPS_DECIMALS),
            "protocol_fee": from_units(self.protocol_fee_bps, BPS_DECIMALS),
        }
        current.update({key: values[key] for key in current if key in values})
        return AaveReserve.from_values(self.asset, where, **current)

    def check_configuration(self) -> None:
        """PoolConfigurator's invariants: ``LTV ≤ LT``; with LT ≠ 0, ``LB > 100%`` and ``LT·LB ≤ 100%``."""
        where = f"reserves[{self.asset}]"
        if self.ltv_bps > self.liquidation_threshold_bps:
            raise InvalidInput(f"{where}.ltv", "must not exceed the liquidation threshold")
        if self.liquidation_threshold_bps:
            if self.liquidation_bonus_bps <= PERCENTAGE_FACTOR:
                raise InvalidInput(f"{where}.liquidation_bonus", "must exceed 100% when the threshold is set")
            if percent_mul(self.liquidation_threshold_bps, self.liquidation_bonus_bps) > PERCENTAGE_FACTOR:
                raise InvalidInput(f"{where}.liquidation_bonus",
                                   "threshold × bonus must not exceed 100% (the seized collateral must exist)")


@dataclass(frozen=True)
class AaveHolding:
    """An account's balance in one reserve: ``amount`` in asset units, ``price`` in base units."""

    reserve: AaveReserve
    amount: int
    price: int
    collateral_enabled: bool = True

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise InvalidInput(f"{self.reserve.asset}.amount", "must not be negative")
        if self.price <= 0:  # AaveOracle falls back when a source answers <= 0
            raise InvalidInput(f"{self.reserve.asset}.price", "must be positive")

    @property
    def unit(self) -> int:
        return 10**self.reserve.decimals

    def value(self, *, round_up: bool = False) -> int:
        """The balance in base currency: floored (collateral) or, for debt from v3.5, rounded up."""
        product = self.amount * self.price
        return ceil_div(product, self.unit) if round_up else product // self.unit

    def with_amount(self, amount: int) -> AaveHolding:
        return replace(self, amount=amount)


@dataclass(frozen=True)
class AaveAccount:
    """Collateral and debt holdings of one user (one holding per asset and side)."""

    collateral: tuple[AaveHolding, ...] = ()
    debt: tuple[AaveHolding, ...] = ()

    def __post_init__(self) -> None:
        for side in ("collateral", "debt"):
            seen: set[str] = set()
            for holding in getattr(self, side):
                if holding.reserve.asset in seen:
                    raise InvalidInput(f"{side}.{holding.reserve.asset}", "listed twice")
                seen.add(holding.reserve.asset)

    def holding(self, side: str, asset: str) -> AaveHolding:
        for holding in getattr(self, side):
            if holding.reserve.asset == asset:
                return holding
        raise UnknownName(f"{side} asset", asset, [h.reserve.asset for h in getattr(self, side)])

    def replaced(self, side: str, holding: AaveHolding) -> AaveAccount:
        rows = tuple(holding if h.reserve.asset == holding.reserve.asset else h for h in getattr(self, side))
        return replace(self, **{side: rows})


@dataclass(frozen=True)
class AaveEMode:
    """An efficiency-mode category: its LTV, LT and LB replace those of its member assets for a
    user who entered it (bps, like :class:`AaveReserve`)."""

    category: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    assets: frozenset[str]

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> AaveEMode:
        for key in ("id", "liquidation_threshold", "liquidation_bonus"):
            if key not in table:
                raise InvalidInput(f"{where}.{key}", "missing")
        assets = table.get("assets", [])
        if not isinstance(assets, list):
            raise InvalidInput(f"{where}.assets", "expected a list of asset symbols")
        return cls(
            category=to_int(table["id"], f"{where}.id"),
            ltv_bps=to_units(table.get("ltv", "0"), BPS_DECIMALS, f"{where}.ltv"),
            liquidation_threshold_bps=to_units(table["liquidation_threshold"], BPS_DECIMALS,
                                               f"{where}.liquidation_threshold"),
            liquidation_bonus_bps=to_units(table["liquidation_bonus"], BPS_DECIMALS, f"{where}.liquidation_bonus"),
            assets=frozenset(str(asset) for asset in assets),
        )

    def applied_to(self, reserve: AaveReserve) -> AaveReserve:
        if reserve.asset not in self.assets:
            return reserve
        return replace(reserve, ltv_bps=self.ltv_bps, liquidation_threshold_bps=self.liquidation_threshold_bps,
                       liquidation_bonus_bps=self.liquidation_bonus_bps)


@dataclass(frozen=True)
class AaveMarket:
    """A pool: its constants, its reserves' parameters and e-modes (from a preset), to build
    accounts with."""

    config: AaveConfig
    reserves: Mapping[str, AaveReserve] = field(default_factory=dict)
    emodes: Mapping[int, AaveEMode] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, liquidation: Mapping[str, Any], reserves: Mapping[str, Any],
                    assets: Mapping[str, Any] | None = None, emodes: Mapping[str, Any] | None = None,
                    where: str = "preset") -> AaveMarket:
        """From a preset's ``[liquidation]``, ``[reserves.*]``, ``[assets]`` (decimals) and
        ``[emodes.*]`` tables."""
        config = AaveConfig.from_table(liquidation, f"{where}.liquidation")
        decimals = dict(assets or {})
        parsed = {}
        for asset, table in reserves.items():
            if not isinstance(table, Mapping):
                raise InvalidInput(f"{where}.reserves.{asset}", "expected a table")
            merged = {"decimals": decimals.get(asset, 18), **table}
            reserve = AaveReserve.from_table(asset, merged, f"{where}.reserves.{asset}")
            reserve.check_configuration()
            parsed[asset] = reserve
        categories = {}
        for name, table in dict(emodes or {}).items():
            if not isinstance(table, Mapping):
                raise InvalidInput(f"{where}.emodes.{name}", "expected a table")
            emode = AaveEMode.from_table(table, f"{where}.emodes.{name}")
            categories[emode.category] = emode
        return cls(config, parsed, categories)

    def with_version(self, version: object) -> AaveMarket:
        return replace(self, config=self.config.with_version(version))

    def reserve(self, asset: str, overrides: Mapping[str, Any] | None = None, where: str | None = None,
                emode: int = 0) -> AaveReserve:
        """The reserve of ``asset`` (under e-mode ``emode`` when non-zero) with ``overrides``; an
        asset the pool does not list gets 18 decimals and whatever the overrides state."""
        at = where or f"reserves[{asset}]"
        base = self.reserves.get(asset) or AaveReserve(asset)
        if emode:
            if emode not in self.emodes:
                raise UnknownName("e-mode category", emode, [str(c) for c in self.emodes])
            base = self.emodes[emode].applied_to(base)
        return base.with_overrides(overrides or {}, at) if overrides else base

    def holding(self, row: Mapping[str, Any], where: str, emode: int = 0) -> AaveHolding:
        """A holding from ``{asset, amount, price, [decimals, liquidation_threshold, ...]}``."""
        if "asset" not in row:
            raise InvalidInput(f"{where}.asset", "missing")
        reserve = self.reserve(str(row["asset"]), row, where, emode)
        for key in ("amount", "price"):
            if key not in row:
                raise InvalidInput(f"{where}.{key}", "missing")
        enabled = row.get("collateral_enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInput(f"{where}.collateral_enabled", "expected true or false")
        return AaveHolding(
            reserve=reserve,
            amount=to_units(row["amount"], reserve.decimals, f"{where}.amount"),
            price=self.config.price_units(row["price"], f"{where}.price"),
            collateral_enabled=enabled,
        )

    def account(self, collateral: Iterable[Mapping[str, Any]], debt: Iterable[Mapping[str, Any]],
                emode: int = 0) -> AaveAccount:
        """An account from rows; the preset's reserve parameters fill what a row does not state."""
        return AaveAccount(
            tuple(self.holding(row, f"collateral[{i}]", emode) for i, row in enumerate(collateral)),
            tuple(self.holding(row, f"debt[{i}]", emode) for i, row in enumerate(debt)),
        )


# --------------------------------------------------------------------------------------------
# Health factor and close factor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountData:
    """``calculateUserAccountData``: totals in base units, avg LT in bps, HF in wad (max = no debt)."""

    total_collateral_base: int
    total_debt_base: int
    average_liquidation_threshold_bps: int
    health_factor_wad: int

    @property
    def health_factor(self) -> Decimal | None:
        """The HF as a decimal; ``None`` when there is no debt (the contract's ``uint256.max``)."""
        return None if self.health_factor_wad == UINT256_MAX else from_units(self.health_factor_wad, 18)

    @property
    def liquidatable(self) -> bool:
        return self.health_factor_wad < WAD


def _counts_as_collateral(holding: AaveHolding) -> bool:
    return holding.collateral_enabled and holding.reserve.liquidation_threshold_bps != 0


def account_data(account: AaveAccount, config: AaveConfig = AaveConfig()) -> AccountData:
    """Totals and health factor as ``GenericLogic.calculateUserAccountData`` computes them (§1.1)."""
    pessimistic = config.version.pessimistic_valuation
    total_collateral = weighted = 0
    for holding in account.collateral:
        if _counts_as_collateral(holding):
            value = holding.value()
            total_collateral += value
            weighted += value * holding.reserve.liquidation_threshold_bps
    total_debt = sum(holding.value(round_up=pessimistic) for holding in account.debt)
    average = weighted // total_collateral if total_collateral else 0
    if total_debt == 0:
        health = UINT256_MAX
    elif pessimistic:
        health = half_up_div(weighted * WAD, total_debt) // PERCENTAGE_FACTOR
    else:
        health = half_up_div(percent_mul(total_collateral, average) * WAD, total_debt)
    return AccountData(total_collateral, total_debt, average, health)


def close_factor(health_factor: object, collateral_value: object = "0", debt_value: object = "0",
                 config: AaveConfig = AaveConfig()) -> Decimal:
    """The share of debt one call may repay (§1.3), for the version in ``config``.

    3.0–3.2: 50% of the reserve's debt above HF 0.95, else 100%. 3.3+: 100%, except 50% (of the
    account's total debt) when the collateral and debt reserves concerned are each worth at least
    the $2,000 threshold and HF > 0.95. Values in base currency (USD), HF as a decimal.
    """
    # Compared exactly as given: an HF or a value is often the quotient of a division and may be
    # written with more places than the pool's wad / base unit (each threshold sits on that grid,
    # so the comparison agrees with the pool's on its floored values).
    health = non_negative(health_factor, "health_factor")
    above = health > from_units(config.close_factor_hf_threshold, 18)
    if not config.version.position_close_factor:
        bps = config.default_close_factor_bps if above else config.max_close_factor_bps
    else:
        threshold = config.base_to_decimal(config.min_base_max_close_factor_threshold)
        collateral = non_negative(collateral_value, "collateral_value")
        debt = non_negative(debt_value, "debt_value")
        large = collateral >= threshold and debt >= threshold
        bps = config.default_close_factor_bps if (large and above) else PERCENTAGE_FACTOR
    return from_units(bps, BPS_DECIMALS)


# --------------------------------------------------------------------------------------------
# Liquidation call
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiquidationCall:
    """What one ``liquidationCall`` does, in asset units (ints) with decimal views.

    ``collateral_seized`` leaves the borrower: ``liquidator_received`` to the liquidator and
    ``protocol_fee`` to the treasury (as aTokens). ``deficits`` maps each debt asset whose
    remaining debt was burned (v3.3+, no collateral left) to the amount booked as deficit.
    """

    collateral_asset: str
    debt_asset: str
    debt_repaid: int
    collateral_seized: int
    protocol_fee: int
    max_liquidatable_debt: int
    deficits: Mapping[str, int]
    before: AccountData
    after: AccountData
    account_after: AaveAccount
    collateral_decimals: int
    debt_decimals: int
    base_currency_decimals: int = 8

    @property
    def liquidator_received(self) -> int:
        return self.collateral_seized - self.protocol_fee

    def decimals_of(self, asset: str) -> int:
        for holding in (*self.account_after.collateral, *self.account_after.debt):
            if holding.reserve.asset == asset:
                return holding.reserve.decimals
        return 18

    def outputs(self) -> dict[str, Any]:
        """Amounts as decimals in the assets' own units; ``deficit`` is the liquidated debt
        reserve's, ``deficits`` every reserve's; ``None`` for an HF means no debt is left."""
        return {
            "debt_repaid": from_units(self.debt_repaid, self.debt_decimals),
            "collateral_seized": from_units(self.collateral_seized, self.collateral_decimals),
            "protocol_fee": from_units(self.protocol_fee, self.collateral_decimals),
            "liquidator_received": from_units(self.liquidator_received, self.collateral_decimals),
            "deficit": from_units(self.deficits.get(self.debt_asset, 0), self.debt_decimals),
            "deficits": {asset: from_units(amount, self.decimals_of(asset)) for asset, amount in self.deficits.items()},
            "health_factor_before": self.before.health_factor,
            "health_factor_after": self.after.health_factor,
        }


def _max_liquidatable_debt(debt: AaveHolding, collateral: AaveHolding, data: AccountData, config: AaveConfig) -> int:
    """The most of ``debt`` one call may repay (§1.3), in debt units."""
    version = config.version
    above = data.health_factor_wad > config.close_factor_hf_threshold
    if not version.position_close_factor:
        bps = config.default_close_factor_bps if above else config.max_close_factor_bps
        return percent_mul(debt.amount, bps)
    debt_value = debt.value(round_up=version.pessimistic_valuation)
    threshold = config.min_base_max_close_factor_threshold
    if collateral.value() >= threshold and debt_value >= threshold and above:
        half_of_total = percent_mul(data.total_debt_base, config.default_close_factor_bps)
        if debt_value > half_of_total:
            return half_of_total * debt.unit // debt.price
    return debt.amount


def _collateral_for(debt_to_liquidate: int, debt: AaveHolding, collateral: AaveHolding,
                    bonus_bps: int, fee_bps: int, version: AaveVersion) -> tuple[int, int, int]:
    """``_calculateAvailableCollateralToLiquidate`` (§1.4): (seized incl. fee, repay, fee)."""
    explicit = version.explicit_liquidation_rounding
    base = (debt.price * debt_to_liquidate * collateral.unit) // (collateral.price * debt.unit)
    maximum = percent_mul(base, bonus_bps, "floor" if explicit else "half_up")
    if maximum > collateral.amount:
        seized = collateral.amount
        worth = (collateral.price * seized * debt.unit) // (debt.price * collateral.unit)
        repay = percent_div(worth, bonus_bps, "ceil" if version.pessimistic_valuation else "half_up")
    else:
        seized, repay = maximum, debt_to_liquidate
    fee = 0
    if fee_bps:
        bonus = seized - percent_div(seized, bonus_bps, "floor" if explicit else "half_up")
        fee = percent_mul(bonus, fee_bps, "ceil" if explicit else "half_up")
    return seized, repay, fee


def liquidation_call(account: AaveAccount, collateral_asset: str, debt_asset: str,
                     debt_to_cover: object = None, config: AaveConfig = AaveConfig()) -> LiquidationCall:
    """Execute ``liquidationCall`` on ``account`` (§1.2–1.5). ``debt_to_cover`` is an amount of the
    debt asset (a decimal); ``None`` or ``"max"`` asks for the most allowed (``type(uint256).max``).

    Raises :class:`ProtocolRevert` where the pool would revert: HF not below 1, a collateral the
    user has not enabled (or with LT 0), no debt in ``debt_asset``, or a v3.3+ call that would
    leave dust.
    """
    version = config.version
    collateral = account.holding("collateral", collateral_asset)
    debt = account.holding("debt", debt_asset)
    before = account_data(account, config)
    if not before.liquidatable:
        raise ProtocolRevert("HEALTH_FACTOR_NOT_BELOW_THRESHOLD",
                             f"health factor {before.health_factor} is not below 1")
    if not _counts_as_collateral(collateral):
        raise ProtocolRevert("COLLATERAL_CANNOT_BE_LIQUIDATED",
                             f"{collateral_asset} is not enabled as collateral or has threshold 0")
    if debt.amount == 0:
        raise ProtocolRevert("SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER", f"no {debt_asset} debt")
    if debt_to_cover is None or (isinstance(debt_to_cover, str) and debt_to_cover.strip().lower() == "max"):
        cover = UINT256_MAX
    else:
        cover = to_units(debt_to_cover, debt.reserve.decimals, "debt_to_cover")

    maximum = _max_liquidatable_debt(debt, collateral, before, config)
    wanted = min(cover, maximum)
    seized, repay, fee = _collateral_for(wanted, debt, collateral, collateral.reserve.liquidation_bonus_bps,
                                         collateral.reserve.protocol_fee_bps, version)

    if version.dust_rule and repay < debt.amount and seized < collateral.amount:
        debt_left = (debt.amount - repay) * debt.price
        debt_left_value = ceil_div(debt_left, debt.unit) if version.pessimistic_valuation else debt_left // debt.unit
        collateral_left_value = (collateral.amount - seized) * collateral.price // collateral.unit
        if debt_left_value < config.min_leftover_base or collateral_left_value < config.min_leftover_base:
            raise ProtocolRevert(
                "MUST_NOT_LEAVE_DUST",
                f"would leave {config.base_to_decimal(debt_left_value)} of debt and "
                f"{config.base_to_decimal(collateral_left_value)} of collateral (base currency); "
                f"each must be at least {config.base_to_decimal(config.min_leftover_base)} "
                "unless all of either is taken")

    after = account.replaced("collateral", collateral.with_amount(collateral.amount - seized))
    after = after.replaced("debt", debt.with_amount(debt.amount - repay))
    deficits: dict[str, int] = {}
    seized_value = seized * collateral.price // collateral.unit
    if version.books_deficit and before.total_collateral_base == seized_value:
        for holding in after.debt:  # every remaining debt is burned and booked as deficit
            if holding.amount:
                deficits[holding.reserve.asset] = holding.amount
                after = after.replaced("debt", holding.with_amount(0))

    return LiquidationCall(
        collateral_asset=collateral_asset,
        debt_asset=debt_asset,
        debt_repaid=repay,
        collateral_seized=seized,
        protocol_fee=fee,
        max_liquidatable_debt=maximum,
        deficits=deficits,
        before=before,
        after=account_data(after, config),
        account_after=after,
        collateral_decimals=collateral.reserve.decimals,
        debt_decimals=debt.reserve.decimals,
        base_currency_decimals=config.base_currency_decimals,
    )


# --------------------------------------------------------------------------------------------
# The toxic-spiral condition
# --------------------------------------------------------------------------------------------


def toxic_ltv(liquidation_bonus: object) -> Decimal:
    """The LTV (debt / collateral value) above which a liquidation lowers the health factor: ``1/LB``."""
    bonus = to_decimal(liquidation_bonus, "liquidation_bonus")
    if bonus < 1:
        raise InvalidInput("liquidation_bonus", f"must be at least 1, got {bonus}")
    return 1 / bonus


def liquidation_worsens_health(collateral_value: object, debt_value: object, liquidation_bonus: object) -> bool:
    """True when repaying debt at bonus ``LB`` leaves the account *less* healthy (a toxic spiral).

    Repaying ``x`` of value removes ``x·LB`` of collateral: ``LT(C − x·LB)/(D − x)`` falls below
    ``LT·C/D`` exactly when ``D·LB > C``, i.e. when the LTV exceeds ``1/LB``. At equality the HF
    is unchanged. Each further liquidation then makes the next one more necessary and less
    covered, until the collateral runs out and the rest is bad debt.
    """
    collateral = to_decimal(collateral_value, "collateral_value")
    debt = to_decimal(debt_value, "debt_value")
    bonus = to_decimal(liquidation_bonus, "liquidation_bonus")
    if collateral < 0:
        raise InvalidInput("collateral_value", "must not be negative")
    if debt < 0:
        raise InvalidInput("debt_value", "must not be negative")
    if bonus < 1:
        raise InvalidInput("liquidation_bonus", f"must be at least 1, got {bonus}")
    return debt * bonus > collateral
