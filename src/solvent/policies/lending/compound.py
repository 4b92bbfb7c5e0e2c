"""Compound v3 (Comet): liquidation check, absorb, and the collateral store front.

Reference: ../shared/reference/lending-protocols.md §2 (``Comet.sol`` of compound-finance/comet).
Units are Comet's: factors at ``FACTOR_SCALE = 1e18`` (asset factors configured with 4 decimals),
prices at 8 decimals, amounts in each token's own unit; every ``mulFactor``/``mulPrice``/
``divPrice`` truncates. Principal and present value are taken equal (indices of 1): a debt is the
account's negative base balance.

- liquidatable iff ``−debt·P_base + Σ ⌊⌊coll_i·P_i⌋·liquidateCF_i⌋ < 0`` (borrowing uses the
  lower ``borrowCF``);
- :func:`absorb` seizes *all* collateral into the protocol and credits the account with
  ``Σ ⌊value_i·liquidationFactor_i⌋`` converted to base at ``P_base``; the balance is floored at 0
  (reserves absorb what the collateral did not cover) and a surplus stays with the account as a
  supply balance. Reserves fall by ``new balance − old balance``. No partial absorb, no reward;
- :func:`quote_collateral` sells seized collateral at ``P_asset·(1 − SFPF·(1 − LF))``: the
  buyer gets part of the liquidation penalty ``1 − LF`` as a discount, the protocol keeps the rest;
  buying is allowed only while reserves are below the target (:func:`buy_collateral`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput, UnknownName
from ...core.numbers import to_int
from . import ProtocolRevert, from_units, to_units

FACTOR_SCALE = 10**18
FACTOR_DECIMALS = 18
ASSET_FACTOR_DECIMALS = 4  # asset factors are packed as uint16 with 4 decimals
PRICE_DECIMALS = 8  # Comet requires 8-decimal price feeds
PRICE_SCALE = 10**PRICE_DECIMALS


def _factor(value: object, field: str, *, decimals: int = FACTOR_DECIMALS) -> int:
    """A factor as Comet stores it (1e18), refusing precision Comet cannot hold; at most 1."""
    units = to_units(value, decimals, field) * 10 ** (FACTOR_DECIMALS - decimals)
    if units > FACTOR_SCALE:
        raise InvalidInput(field, "must be at most 1")
    return units


def mul_factor(n: int, factor: int) -> int:
    return n * factor // FACTOR_SCALE


def mul_price(n: int, price: int, from_scale: int) -> int:
    """An amount (in ``from_scale`` units) times a price: a value in price units, truncated."""
    return n * price // from_scale


def div_price(n: int, price: int, to_scale: int) -> int:
    """A value in price units back to an amount in ``to_scale`` units, truncated."""
    return n * to_scale // price


def price_units(value: object, field: str) -> int:
    units = to_units(value, PRICE_DECIMALS, field)
    if units <= 0:  # Comet's getPrice requires a positive answer
        raise InvalidInput(field, "must be positive")
    return units


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CometAsset:
    """A collateral asset's configuration; factors at 1e18."""

    asset: str
    decimals: int = 18
    borrow_collateral_factor: int = 0
    liquidate_collateral_factor: int = 0
    liquidation_factor: int = FACTOR_SCALE

    def __post_init__(self) -> None:
        where = f"assets[{self.asset}]"
        if not 0 <= self.decimals <= 77:
            raise InvalidInput(f"{where}.decimals", f"must be within 0..77, got {self.decimals}")
        if self.liquidate_collateral_factor and self.borrow_collateral_factor >= self.liquidate_collateral_factor:
            raise InvalidInput(f"{where}.borrow_collateral_factor",
                               "must be below the liquidate collateral factor (Comet BorrowCFTooLarge)")

    @property
    def scale(self) -> int:
        return 10**self.decimals

    @classmethod
    def from_values(cls, asset: str, where: str | None = None, *, decimals: object = 18,
                    borrow_collateral_factor: object = "0", liquidate_collateral_factor: object = "0",
                    liquidation_factor: object = "1") -> CometAsset:
        at = where or f"assets[{asset}]"
        return cls(
            asset=asset,
            decimals=to_int(decimals, f"{at}.decimals"),
            borrow_collateral_factor=_factor(borrow_collateral_factor, f"{at}.borrow_collateral_factor",
                                             decimals=ASSET_FACTOR_DECIMALS),
            liquidate_collateral_factor=_factor(liquidate_collateral_factor, f"{at}.liquidate_collateral_factor",
                                                decimals=ASSET_FACTOR_DECIMALS),
            liquidation_factor=_factor(liquidation_factor, f"{at}.liquidation_factor",
                                       decimals=ASSET_FACTOR_DECIMALS),
        )

    def with_overrides(self, values: Mapping[str, Any], where: str) -> CometAsset:
        current: dict[str, Any] = {
            "decimals": self.decimals,
            "borrow_collateral_factor": from_units(self.borrow_collateral_factor, FACTOR_DECIMALS),
            "liquidate_collateral_factor": from_units(self.liquidate_collateral_factor, FACTOR_DECIMALS),
            "liquidation_factor": from_units(self.liquidation_factor, FACTOR_DECIMALS),
        }
        current.update({key: values[key] for key in current if key in values})
        return CometAsset.from_values(self.asset, where, **current)


@dataclass(frozen=True)
class CometMarket:
    """One Comet deployment: its base asset, store front and collateral assets (a preset table)."""

    name: str
    base: str = "USDC"
    base_decimals: int = 6
    store_front_price_factor: int = FACTOR_SCALE // 2
    target_reserves: int = 0  # base units
    base_borrow_min: int = 0  # base units
    assets: Mapping[str, CometAsset] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.store_front_price_factor <= FACTOR_SCALE:
            raise InvalidInput(f"{self.name}.store_front_price_factor", "must be within [0, 1]")

    @property
    def base_scale(self) -> int:
        return 10**self.base_decimals

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any], where: str | None = None) -> CometMarket:
        """A preset's ``[comets.<name>]`` table with ``[comets.<name>.assets.<asset>]`` sub-tables."""
        at = where or name
        base_decimals = to_int(table.get("base_decimals", 6), f"{at}.base_decimals")
        assets = {}
        for asset, spec in dict(table.get("assets", {})).items():
            if not isinstance(spec, Mapping):
                raise InvalidInput(f"{at}.assets.{asset}", "expected a table")
            keys = ("decimals", "borrow_collateral_factor", "liquidate_collateral_factor", "liquidation_factor")
            assets[asset] = CometAsset.from_values(asset, f"{at}.assets.{asset}",
                                                   **{key: spec[key] for key in keys if key in spec})
        return cls(
            name=name,
            base=str(table.get("base", "USDC")),
            base_decimals=base_decimals,
            store_front_price_factor=_factor(table.get("store_front_price_factor", "0.5"),
                                             f"{at}.store_front_price_factor"),
            target_reserves=to_units(table.get("target_reserves", "0"), base_decimals, f"{at}.target_reserves"),
            base_borrow_min=to_units(table.get("base_borrow_min", "0"), base_decimals, f"{at}.base_borrow_min"),
            assets=assets,
        )

    def asset(self, name: str, overrides: Mapping[str, Any] | None = None, where: str | None = None) -> CometAsset:
        """A collateral asset's configuration with ``overrides``; one the market does not list
        gets 18 decimals and what the overrides state."""
        base = self.assets.get(name) or CometAsset(name)
        return base.with_overrides(overrides, where or f"assets[{name}]") if overrides else base

    def holding(self, row: Mapping[str, Any], where: str) -> CometHolding:
        """A collateral balance from ``{asset, amount, price, [liquidation_factor, ...]}``."""
        if "asset" not in row:
            raise InvalidInput(f"{where}.asset", "missing")
        asset = self.asset(str(row["asset"]), row, where)
        for key in ("amount", "price"):
            if key not in row:
                raise InvalidInput(f"{where}.{key}", "missing")
        return CometHolding(asset, to_units(row["amount"], asset.decimals, f"{where}.amount"),
                            price_units(row["price"], f"{where}.price"))

    def holdings(self, rows: Iterable[Mapping[str, Any]], field: str = "collateral") -> tuple[CometHolding, ...]:
        result = tuple(self.holding(row, f"{field}[{i}]") for i, row in enumerate(rows))
        names = [h.asset.asset for h in result]
        for name in names:
            if names.count(name) > 1:
                raise InvalidInput(f"{field}.{name}", "listed twice")
        return result

    def absorb(self, debt: object, base_price: object, collateral: Iterable[Mapping[str, Any]]) -> Absorb:
        """:func:`absorb` from decimals: ``debt`` in base tokens, rows ``{asset, amount, price, ...}``
        whose stated factors override the market's."""
        return absorb(to_units(debt, self.base_decimals, "debt"), price_units(base_price, "base_price"),
                      self.holdings(collateral), self.base_decimals)

    def quote(self, asset_price: object, base_price: object, base_amount: object, *, asset: str | None = None,
              liquidation_factor: object = None, store_front_price_factor: object = None,
              asset_decimals: object = None) -> Decimal:
        """:func:`quote_collateral` with this market's store-front factor, base decimals and (when
        ``asset`` is named) the asset's liquidation factor and decimals, each overridable."""
        config = self.asset(asset) if asset else CometAsset(asset or "collateral")
        if liquidation_factor is None:
            if asset is None:
                raise InvalidInput("liquidation_factor", "missing (or name an asset of the market)")
            liquidation_factor = from_units(config.liquidation_factor, FACTOR_DECIMALS)
        sfpf = (from_units(self.store_front_price_factor, FACTOR_DECIMALS)
                if store_front_price_factor is None else store_front_price_factor)
        decimals = config.decimals if asset_decimals is None else to_int(asset_decimals, "asset_decimals")
        return quote_collateral(asset_price, base_price, liquidation_factor, sfpf, base_amount,
                                asset_decimals=decimals, base_decimals=self.base_decimals)


@dataclass(frozen=True)
class CometHolding:
    """An account's balance of one collateral asset (token units) and its price (8 decimals)."""

    asset: CometAsset
    amount: int
    price: int

    def value(self) -> int:
        return mul_price(self.amount, self.price, self.asset.scale)


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------


def liquidity(debt: int, base_price: int, holdings: Iterable[CometHolding], base_decimals: int = 6, *,
              borrow: bool = False) -> int:
    """Comet's signed liquidity in price units: collateral weighted by ``liquidateCF`` (or
    ``borrowCF`` when ``borrow``) minus the debt's value. ``debt`` in base units (≥ 0)."""
    if debt < 0:
        raise InvalidInput("debt", "must not be negative")
    total = -(debt * base_price // 10**base_decimals)  # Solidity's signed division truncates toward 0
    for holding in holdings:
        factor = holding.asset.borrow_collateral_factor if borrow else holding.asset.liquidate_collateral_factor
        total += mul_factor(holding.value(), factor)
    return total


def is_liquidatable(debt: int, base_price: int, holdings: Iterable[CometHolding], base_decimals: int = 6) -> bool:
    """``isLiquidatable``: liquidity at the liquidate collateral factors is negative (strict)."""
    return liquidity(debt, base_price, holdings, base_decimals) < 0


def is_borrow_collateralized(debt: int, base_price: int, holdings: Iterable[CometHolding],
                             base_decimals: int = 6) -> bool:
    """``isBorrowCollateralized``: liquidity at the borrow collateral factors is not negative."""
    return liquidity(debt, base_price, holdings, base_decimals, borrow=True) >= 0


# --------------------------------------------------------------------------------------------
# Absorb
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Absorb:
    """The result of absorbing one account. Amounts in base units unless named ``value`` (8 decimals).

    ``balance_after`` ≥ 0 is the account's new base balance (a surplus stays with it);
    ``reserves_delta`` ≤ 0 is how much the protocol's base reserves changed; the seized collateral
    becomes protocol inventory (``seized``, token units), sold later through the store front.
    """

    balance_before: int
    balance_after: int
    seized: Mapping[str, int]
    collateral_value: int  # Σ value_i, price units
    credited_value: int  # Σ value_i·LF_i, price units
    credit: int  # the same in base units
    base_decimals: int

    @property
    def reserves_delta(self) -> int:
        return -(self.balance_after - self.balance_before)

    @property
    def penalty_value(self) -> int:
        """What the liquidation factors withheld, in price units."""
        return self.collateral_value - self.credited_value

    def outputs(self) -> dict[str, Any]:
        scale = self.base_decimals
        return {
            "balance_after": from_units(self.balance_after, scale),
            "reserves_delta": from_units(self.reserves_delta, scale),
            "credit": from_units(self.credit, scale),
            "collateral_value": from_units(self.collateral_value, PRICE_DECIMALS),
            "penalty_value": from_units(self.penalty_value, PRICE_DECIMALS),
        }


def absorb(debt: int, base_price: int, holdings: Iterable[CometHolding], base_decimals: int = 6) -> Absorb:
    """``absorb`` one account (§2.2): seize all collateral, credit it at the liquidation factors.

    ``debt`` in base units (the negative balance, as a positive number). Whether the account may
    be absorbed at all is :func:`is_liquidatable`; this applies the absorb itself.
    """
    if debt < 0:
        raise InvalidInput("debt", "must not be negative")
    if base_price <= 0:
        raise InvalidInput("base_price", "must be positive")
    holdings = tuple(holdings)
    value = credited = 0
    seized = {}
    for holding in holdings:
        worth = holding.value()
        value += worth
        credited += mul_factor(worth, holding.asset.liquidation_factor)
        seized[holding.asset.asset] = holding.amount
    credit = div_price(credited, base_price, 10**base_decimals)
    old = -debt
    new = max(old + credit, 0)  # excess debt is absorbed by reserves
    return Absorb(old, new, seized, value, credited, credit, base_decimals)


# --------------------------------------------------------------------------------------------
# Store front
# --------------------------------------------------------------------------------------------


def discount_units(liquidation_factor: int, store_front_price_factor: int) -> int:
    """The buyer's discount on seized collateral, in Comet's factor units: ``SFPF × (1 − LF)``
    (§2.3); none for a liquidation factor of 0 (a delisted collateral, CometWithExtendedAssetList,
    is quoted at the market price)."""
    if liquidation_factor == 0:
        return 0
    return mul_factor(store_front_price_factor, FACTOR_SCALE - liquidation_factor)


def discounted_price_units(asset_price: int, liquidation_factor: int, store_front_price_factor: int) -> int:
    """The collateral's store-front price in Comet's price units."""
    return mul_factor(asset_price, FACTOR_SCALE - discount_units(liquidation_factor, store_front_price_factor))


def store_front_discount(liquidation_factor: object, store_front_price_factor: object) -> Decimal:
    """The buyer's discount on seized collateral, as a fraction (:func:`discount_units`)."""
    lf = _factor(liquidation_factor, "liquidation_factor", decimals=ASSET_FACTOR_DECIMALS)
    sfpf = _factor(store_front_price_factor, "store_front_price_factor")
    return from_units(discount_units(lf, sfpf), FACTOR_DECIMALS)


def quote_collateral_units(asset_price: int, base_price: int, liquidation_factor: int, store_front_price_factor: int,
                           base_amount: int, asset_decimals: int = 18, base_decimals: int = 6) -> int:
    """``quoteCollateral`` in Comet's integers: collateral units bought with ``base_amount`` base units.

    One truncating division chain, ``P_base·amount·assetScale / P_disc / baseScale``, as the
    current contract does (an older version divided earlier and lost precision).
    """
    discounted = discounted_price_units(asset_price, liquidation_factor, store_front_price_factor)
    if discounted <= 0:
        raise InvalidInput("asset_price", "the discounted price is zero")
    return base_price * base_amount * 10**asset_decimals // discounted // 10**base_decimals


def quote_collateral(asset_price: object, base_price: object, liquidation_factor: object,
                     store_front_price_factor: object, base_amount: object, *, asset_decimals: int = 18,
                     base_decimals: int = 6) -> Decimal:
    """Collateral (in asset units) that ``base_amount`` of base buys at the store front (§2.3)."""
    units = quote_collateral_units(
        price_units(asset_price, "asset_price"),
        price_units(base_price, "base_price"),
        _factor(liquidation_factor, "liquidation_factor", decimals=ASSET_FACTOR_DECIMALS),
        _factor(store_front_price_factor, "store_front_price_factor"),
        to_units(base_amount, base_decimals, "base_amount"),
        asset_decimals,
        base_decimals,
    )
    return from_units(units, asset_decimals)


def buy_collateral(quote: int, *, reserves: int, target_reserves: int, collateral_reserves: int,
                   min_amount: int = 0) -> int:
    """``buyCollateral``'s guards around a quote (all integers in their units): the store front is
    open only while reserves are below target, the buyer's minimum must be met and the protocol
    must hold that much collateral. Returns the collateral sold."""
    if reserves >= target_reserves:
        raise ProtocolRevert("NotForSale", "reserves have reached the target")
    if quote < min_amount:
        raise ProtocolRevert("TooMuchSlippage", f"quote {quote} is below the minimum {min_amount}")
    if quote > collateral_reserves:
        raise ProtocolRevert("InsufficientReserves", f"quote {quote} exceeds the collateral held {collateral_reserves}")
    return quote


def market_from_tables(comets: Mapping[str, Any], name: str, where: str = "comets") -> CometMarket:
    """The market ``name`` from a preset's ``[comets]`` table."""
    if name not in comets:
        raise UnknownName("Comet market", name, list(comets))
    return CometMarket.from_table(name, comets[name], f"{where}.{name}")
