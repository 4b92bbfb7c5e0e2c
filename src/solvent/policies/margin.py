"""Margin models: how much margin a position of a given size and notional requires.

Every model answers the same questions so that the ledger, the liquidation-price solver and the
screen can use any of them:

- ``maintenance_margin(notional, size)`` and ``initial_margin(notional, size, ...)``;
- ``maintenance_line(notional, size)``: the (rate, deduction) pair such that, around that
  notional, ``MM = notional·rate − deduction``. Every venue's maintenance requirement is piecewise
  linear in notional, which is what makes liquidation prices solvable in closed form and the
  screen vectorizable;
- ``maintenance_table(size)``: the whole piecewise-linear schedule as (floor, rate, deduction)
  rows, for the vectorized screen.

Models (each cited in ../shared/reference/perp-venues.md):

- :class:`TieredMargin`: Binance leverage brackets, Bybit risk-limit tiers, Hyperliquid margin
  tiers. ``MM = N·MMR_tier − deduction_tier``; the deduction (Binance's ``cum``) is derived from
  the bracket floors so that MM is continuous: ``cum_n = cum_{n−1} + floor_n·(MMR_n − MMR_{n−1})``.
- :class:`RiskLimitSteps`: BitMEX; every step of the risk limit above the base adds the base MM to
  both maintenance and initial rates.
- :class:`LiquidityTier`: dYdX v4; IMF scaled by open interest, MMF = IMF·maintenance fraction, in
  parts per million, requirements rounded up to the quantum.
- :class:`SizePremium`: Drift v2; the margin ratio grows with the square root of the size.
- :class:`MinCollateralFactor`: GMX v2; the position must keep collateral above size·factor.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from ..core.errors import InvalidInput
from ..core.numbers import (
    ONE,
    ZERO,
    floor_int,
    fraction,
    isqrt_floor,
    non_negative,
    positive,
    to_decimal,
)

# (floor, rate, deduction): MM = notional·rate − deduction for notional >= floor.
TableRow = tuple[Decimal, Decimal, Decimal]


class MarginModel(Protocol):
    """What every margin model answers. Notionals are absolute position values."""

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal: ...

    def initial_margin(
        self,
        notional: Decimal,
        size: Decimal | None = None,
        leverage: Decimal | None = None,
        open_interest: Decimal | None = None,
    ) -> Decimal: ...

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]: ...

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]: ...

    def max_leverage(self, notional: Decimal) -> Decimal | None: ...


def _leveraged(notional: Decimal, leverage: Decimal | None, fallback_rate: Decimal, where: str) -> Decimal:
    if leverage is None:
        return notional * fallback_rate
    leverage = positive(leverage, f"{where}.leverage")
    return notional / leverage


# --------------------------------------------------------------------------------------------
# Tiered brackets: Binance, Bybit, Hyperliquid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """One bracket: applies from ``floor`` (inclusive) to the next tier's floor."""

    floor: Decimal
    maintenance_rate: Decimal
    deduction: Decimal
    max_leverage: Decimal | None = None

    @property
    def initial_rate(self) -> Decimal | None:
        return None if self.max_leverage is None else ONE / self.max_leverage


@dataclass(frozen=True)
class TieredMargin:
    """``MM = N·MMR_tier − deduction_tier`` over notional brackets.

    Build it with :meth:`from_rows`, which accepts the shapes venues publish:

    - Binance ``leverageBracket`` / Bybit risk limits: rows with ``floor`` and ``mmr``
      (``maintenance_rate``), optionally ``max_leverage`` and a published ``cum``/``deduction``;
    - Hyperliquid margin tables: rows with ``floor`` and ``max_leverage`` only, with
      ``rates="half_initial_at_max_leverage"``: MMR = (1 / max leverage) / 2.
    """

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise InvalidInput("tiers", "at least one tier is required")
        if self.tiers[0].floor != 0:
            raise InvalidInput("tiers[0].floor", f"the first tier must start at 0, got {self.tiers[0].floor}")
        for index in range(1, len(self.tiers)):
            if self.tiers[index].floor <= self.tiers[index - 1].floor:
                raise InvalidInput(f"tiers[{index}].floor", "tier floors must increase strictly")
        object.__setattr__(self, "_floors", [tier.floor for tier in self.tiers])

    @staticmethod
    def derive_deductions(floors: Sequence[Decimal], rates: Sequence[Decimal]) -> list[Decimal]:
        """``cum_0 = 0``, ``cum_n = cum_{n−1} + floor_n·(rate_n − rate_{n−1})``: MM continuous in N."""
        deductions = [ZERO]
        for index in range(1, len(floors)):
            deductions.append(deductions[-1] + floors[index] * (rates[index] - rates[index - 1]))
        return deductions

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, object]],
        *,
        rates: str = "explicit",
        field_name: str = "tiers",
    ) -> TieredMargin:
        """Parse tier rows. ``rates`` is ``explicit`` or ``half_initial_at_max_leverage``."""
        if rates not in ("explicit", "half_initial_at_max_leverage"):
            raise InvalidInput(f"{field_name}.rates", f"unknown rate rule {rates!r}")
        floors: list[Decimal] = []
        mmrs: list[Decimal] = []
        leverages: list[Decimal | None] = []
        given: list[Decimal | None] = []
        rows = list(rows)
        if not rows:
            raise InvalidInput(field_name, "at least one tier is required")
        for index, row in enumerate(rows):
            where = f"{field_name}[{index}]"
            if not isinstance(row, Mapping):
                raise InvalidInput(where, "each tier must be a table with floor and rate")
            floors.append(non_negative(row.get("floor", "0" if index == 0 else None), f"{where}.floor"))
            leverage = row.get("max_leverage")
            leverages.append(None if leverage is None else positive(leverage, f"{where}.max_leverage"))
            if rates == "half_initial_at_max_leverage":
                if leverages[-1] is None:
                    raise InvalidInput(f"{where}.max_leverage", "required when MMR is half the IMR at max leverage")
                mmrs.append(ONE / leverages[-1] / 2)
            else:
                rate = row.get("mmr", row.get("maintenance_rate"))
                if rate is None:
                    raise InvalidInput(f"{where}.mmr", "missing maintenance margin rate")
                mmrs.append(fraction(rate, f"{where}.mmr"))
            deduction = row.get("cum", row.get("deduction"))
            given.append(None if deduction is None else to_decimal(deduction, f"{where}.cum"))
        derived = cls.derive_deductions(floors, mmrs)
        # A published deduction is used as published (venues round theirs); missing ones are derived.
        deductions = [derived[i] if (published := given[i]) is None else published for i in range(len(rows))]
        return cls(tuple(Tier(floors[i], mmrs[i], deductions[i], leverages[i]) for i in range(len(rows))))

    @classmethod
    def flat(cls, maintenance_rate: Decimal, deduction: Decimal = ZERO, max_leverage: Decimal | None = None) -> TieredMargin:
        """A single bracket with a fixed rate (and deduction), e.g. a position's current bracket."""
        return cls((Tier(ZERO, maintenance_rate, deduction, max_leverage),))

    def tier_index(self, notional: Decimal) -> int:
        return max(bisect_right(self._floors, abs(notional)) - 1, 0)  # type: ignore[attr-defined]

    def tier(self, notional: Decimal) -> Tier:
        return self.tiers[self.tier_index(notional)]

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]:
        tier = self.tier(notional)
        return tier.maintenance_rate, tier.deduction

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal:
        rate, deduction = self.maintenance_line(notional)
        return abs(notional) * rate - deduction

    def initial_margin(self, notional, size=None, leverage=None, open_interest=None) -> Decimal:
        tier = self.tier(notional)
        if leverage is None:
            fallback = tier.initial_rate if tier.max_leverage is not None else 2 * tier.maintenance_rate
            return abs(notional) * fallback
        if leverage is not tier.max_leverage:  # the bracket's own maximum needs no checking
            leverage = positive(leverage, "initial_margin.leverage" if tier.max_leverage is None else "leverage")
            if tier.max_leverage is not None and leverage > tier.max_leverage:
                raise InvalidInput("leverage", f"{leverage}x exceeds the bracket's maximum {tier.max_leverage}x "
                                   f"at notional {notional}")
        return abs(notional) / leverage

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]:
        return [(tier.floor, tier.maintenance_rate, tier.deduction) for tier in self.tiers]

    def max_leverage(self, notional: Decimal) -> Decimal | None:
        return self.tier(notional).max_leverage

    @property
    def deductions(self) -> list[Decimal]:
        return [tier.deduction for tier in self.tiers]


# --------------------------------------------------------------------------------------------
# BitMEX risk-limit steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskLimitSteps:
    """BitMEX: base rates up to the base risk limit, then +``step_rate`` per step of ``step``.

    A position value below the base risk limit uses the base rates; at or above it, the number of
    steps is ``floor((value − base_limit) / step) + 1`` (the doc's table: <200 base, <350 one step,
    <500 two steps for XBTUSD). Each step raises both maintenance and initial rates by the base MM.
    """

    base_maintenance_rate: Decimal
    base_initial_rate: Decimal
    base_risk_limit: Decimal
    step: Decimal
    step_rate: Decimal | None = None  # defaults to the base maintenance rate
    max_steps: int = 200

    def __post_init__(self) -> None:
        fraction(self.base_maintenance_rate, "base_mm")
        fraction(self.base_initial_rate, "base_im")
        positive(self.base_risk_limit, "base_risk_limit")
        positive(self.step, "step")
        if self.step_rate is None:
            object.__setattr__(self, "step_rate", self.base_maintenance_rate)

    def steps(self, position_value: Decimal) -> int:
        value = abs(position_value)
        if value < self.base_risk_limit:
            return 0
        return floor_int((value - self.base_risk_limit) / self.step) + 1

    def rates(self, position_value: Decimal) -> tuple[Decimal, Decimal]:
        """(maintenance rate, initial rate) at this position value."""
        bump = self.steps(position_value) * self.step_rate  # type: ignore[operator]
        return self.base_maintenance_rate + bump, self.base_initial_rate + bump

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]:
        return self.rates(notional)[0], ZERO

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal:
        return abs(notional) * self.rates(notional)[0]

    def initial_margin(self, notional, size=None, leverage=None, open_interest=None) -> Decimal:
        return _leveraged(abs(notional), leverage, self.rates(notional)[1], "initial_margin")

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]:
        rows: list[TableRow] = [(ZERO, self.base_maintenance_rate, ZERO)]
        for step in range(1, self.max_steps + 1):
            floor = self.base_risk_limit + (step - 1) * self.step
            rows.append((floor, self.base_maintenance_rate + step * self.step_rate, ZERO))  # type: ignore[operator]
        return rows

    def max_leverage(self, notional: Decimal) -> Decimal | None:
        return ONE / self.rates(notional)[1]


# --------------------------------------------------------------------------------------------
# dYdX v4 liquidity tiers
# --------------------------------------------------------------------------------------------

PPM = 1_000_000


def to_ppm(value: object, field_name: str) -> int:
    """A rate in parts per million, exactly (dYdX stores every rate as ppm)."""
    rate = fraction(value, field_name)
    scaled = rate * PPM
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field_name, f"{rate} is finer than one part per million")
    return int(scaled)


@dataclass(frozen=True)
class LiquidityTier:
    """dYdX v4: IMF (ppm), maintenance fraction (ppm), open-interest caps (quote).

    ``IMF_eff = IMF + (1 − IMF)·(OI − lower)/(upper − lower)`` clamped to [IMF, 1] (in ppm, floored),
    disabled when ``upper`` is 0. ``IM = ⌈|quote|·IMF_eff⌉`` and ``MM = ⌈|quote|·IMF·MF⌉`` quantums:
    maintenance is computed from the base IMF, never the OI-scaled one.
    """

    initial_ppm: int
    maintenance_fraction_ppm: int
    oi_lower_cap: Decimal = ZERO
    oi_upper_cap: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("initial_ppm", "maintenance_fraction_ppm"):
            value = getattr(self, name)
            if not 0 <= value <= PPM:
                raise InvalidInput(name, f"must be in 0..1,000,000 ppm, got {value}")
        non_negative(self.oi_lower_cap, "oi_lower_cap")
        non_negative(self.oi_upper_cap, "oi_upper_cap")
        if self.oi_upper_cap and self.oi_upper_cap < self.oi_lower_cap:
            raise InvalidInput("oi_upper_cap", "must not be below oi_lower_cap")

    @classmethod
    def from_rates(cls, imf: object, mmf: object | None = None, maintenance_fraction: object | None = None,
                   oi_lower_cap: object = "0", oi_upper_cap: object = "0") -> LiquidityTier:
        initial = to_ppm(imf, "imf")
        if maintenance_fraction is not None:
            fraction_ppm = to_ppm(maintenance_fraction, "maintenance_fraction")
        elif mmf is not None:
            mmf_ppm = to_ppm(mmf, "mmf")
            if initial == 0:
                raise InvalidInput("mmf", "needs a positive imf")
            fraction_ppm = mmf_ppm * PPM // initial
            if fraction_ppm * initial // PPM != mmf_ppm:
                raise InvalidInput("mmf", f"{mmf} is not a whole-ppm fraction of imf {imf}")
        else:
            raise InvalidInput("mmf", "either mmf or maintenance_fraction is required")
        return cls(initial, fraction_ppm, non_negative(oi_lower_cap, "oi_lower_cap"), non_negative(oi_upper_cap, "oi_upper_cap"))

    @property
    def maintenance_rate(self) -> Decimal:
        """IMF·MF exactly (a product of two ppm rates)."""
        return Decimal(self.initial_ppm * self.maintenance_fraction_ppm) / PPM**2

    def adjusted_initial_ppm(self, open_interest: Decimal | None) -> int:
        if open_interest is None or self.oi_upper_cap == 0 or open_interest <= self.oi_lower_cap:
            return self.initial_ppm
        if open_interest >= self.oi_upper_cap:
            return PPM
        span = self.oi_upper_cap - self.oi_lower_cap
        bump = floor_int((open_interest - self.oi_lower_cap) * (PPM - self.initial_ppm) / span)
        return min(self.initial_ppm + bump, PPM)

    def initial_margin_quantums(self, quote_quantums: int, open_interest: Decimal | None = None) -> int:
        return -((-abs(quote_quantums) * self.adjusted_initial_ppm(open_interest)) // PPM)

    def maintenance_margin_quantums(self, quote_quantums: int) -> int:
        """``⌈⌈|quote|·IMF⌉·MF⌉``: dYdX rounds the base initial margin up, then its fraction up."""
        initial = -((-abs(quote_quantums) * self.initial_ppm) // PPM)
        return -((-initial * self.maintenance_fraction_ppm) // PPM)

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]:
        return self.maintenance_rate, ZERO

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal:
        return abs(notional) * self.maintenance_rate

    def initial_margin(self, notional, size=None, leverage=None, open_interest=None) -> Decimal:
        rate = Decimal(self.adjusted_initial_ppm(open_interest)) / PPM
        required = abs(notional) * rate
        if leverage is not None:  # a user's own leverage setting can only raise the requirement
            required = max(required, abs(notional) / positive(leverage, "leverage"))
        return required

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]:
        return [(ZERO, self.maintenance_rate, ZERO)]

    def max_leverage(self, notional: Decimal) -> Decimal | None:
        return None if self.initial_ppm == 0 else Decimal(PPM) / self.initial_ppm


# --------------------------------------------------------------------------------------------
# Drift v2 size premium
# --------------------------------------------------------------------------------------------

DRIFT_BASE_PRECISION = 10**9  # base asset amounts
DRIFT_IMF_PRECISION = 10**6  # imf factors
DRIFT_WEIGHT_PRECISION = 10**4  # margin ratios and spot weights (MARGIN_PRECISION)


def _drift_fixed(value: object, precision: int, field_name: str) -> int:
    amount = non_negative(value, field_name) * precision
    if amount != amount.to_integral_value():
        raise InvalidInput(field_name, f"{value} is finer than Drift's precision 1/{precision}")
    return int(amount)


def drift_size_premium_weight(weight: object, imf_factor: object, size: object, kind: str) -> Decimal:
    """Drift's size-scaled weight, in Drift's own fixed-point integer arithmetic.

    Liability (margin ratio / liability weight): ``max(w, 0.8·w + imf·√size)``.
    Asset weight: ``min(w, 1.1 / (1 + imf·√size))``. The square root is taken of the size in
    base precision ×10 (+1), floored, as on chain.
    """
    w = _drift_fixed(weight, DRIFT_WEIGHT_PRECISION, "weight")
    imf = _drift_fixed(imf_factor, DRIFT_IMF_PRECISION, "imf_factor")
    base = abs(_drift_fixed(size, DRIFT_BASE_PRECISION, "size"))
    if kind not in ("liability", "asset"):
        raise InvalidInput("kind", f"expected 'liability' or 'asset', got {kind!r}")
    if imf == 0:
        return Decimal(w) / DRIFT_WEIGHT_PRECISION
    size_sqrt = isqrt_floor(base * 10 + 1)  # 1e9 base -> 1e10 -> sqrt in 1e5
    if kind == "liability":
        denominator = 100_000 * DRIFT_IMF_PRECISION // DRIFT_WEIGHT_PRECISION
        premium = (w - w // 5) + size_sqrt * imf // denominator
        result = max(w, premium)
    else:
        numerator = DRIFT_WEIGHT_PRECISION + DRIFT_WEIGHT_PRECISION // 10
        discounted = numerator * DRIFT_IMF_PRECISION // (DRIFT_IMF_PRECISION + size_sqrt * imf // 100_000)
        result = min(w, discounted)
    return Decimal(result) / DRIFT_WEIGHT_PRECISION


@lru_cache(maxsize=1 << 16)
def _liability_weight(weight: Decimal, imf_factor: Decimal, size: Decimal) -> Decimal:
    """:func:`drift_size_premium_weight` of a liability, remembered: the engine asks it for the same
    few positions' sizes at every valuation (a pure function of the values, whatever their form)."""
    return drift_size_premium_weight(weight, imf_factor, size, "liability")


@dataclass(frozen=True)
class SizePremium:
    """Drift v2 perp margin: liability value × margin ratio, the ratio raised by the size premium."""

    initial_ratio: Decimal
    maintenance_ratio: Decimal
    imf_factor: Decimal = ZERO

    def __post_init__(self) -> None:
        fraction(self.initial_ratio, "initial_ratio")
        fraction(self.maintenance_ratio, "maintenance_ratio")
        non_negative(self.imf_factor, "imf_factor")

    def ratio(self, base_ratio: Decimal, size: Decimal | None) -> Decimal:
        if size is None or self.imf_factor == 0:
            return base_ratio
        return _liability_weight(base_ratio, self.imf_factor, abs(size))

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]:
        return self.ratio(self.maintenance_ratio, size), ZERO

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal:
        return abs(notional) * self.ratio(self.maintenance_ratio, size)

    def initial_margin(self, notional, size=None, leverage=None, open_interest=None) -> Decimal:
        required = abs(notional) * self.ratio(self.initial_ratio, size)
        if leverage is not None:
            required = max(required, abs(notional) / positive(leverage, "leverage"))
        return required

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]:
        return [(ZERO, self.ratio(self.maintenance_ratio, size), ZERO)]

    def max_leverage(self, notional: Decimal) -> Decimal | None:
        return None if self.initial_ratio == 0 else ONE / self.initial_ratio


# --------------------------------------------------------------------------------------------
# GMX v2 minimum collateral factor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinCollateralFactor:
    """GMX v2: a position needs remaining collateral ≥ size·minCollateralFactorForLiquidation.

    To open or increase, the factor is ``max(minCollateralFactor, OI·multiplier)``.
    """

    min_collateral_factor: Decimal
    min_collateral_factor_for_liquidation: Decimal
    open_interest_multiplier: Decimal = ZERO
    min_collateral_usd: Decimal = ZERO

    def maintenance_line(self, notional: Decimal, size: Decimal | None = None) -> tuple[Decimal, Decimal]:
        return self.min_collateral_factor_for_liquidation, ZERO

    def maintenance_margin(self, notional: Decimal, size: Decimal | None = None) -> Decimal:
        return abs(notional) * self.min_collateral_factor_for_liquidation

    def initial_margin(self, notional, size=None, leverage=None, open_interest=None) -> Decimal:
        factor = self.min_collateral_factor
        if open_interest is not None:
            factor = max(factor, open_interest * self.open_interest_multiplier)
        required = abs(notional) * factor
        if leverage is not None:
            required = max(required, abs(notional) / positive(leverage, "leverage"))
        return required

    def maintenance_table(self, size: Decimal | None = None) -> list[TableRow]:
        return [(ZERO, self.min_collateral_factor_for_liquidation, ZERO)]

    def max_leverage(self, notional: Decimal) -> Decimal | None:
        return None if self.min_collateral_factor == 0 else ONE / self.min_collateral_factor

    @staticmethod
    def remaining_collateral(collateral_amount: Decimal, collateral_price: Decimal, side: int, size_usd: Decimal,
                             entry_price: Decimal, price: Decimal, close_fee_rate: Decimal) -> Decimal:
        """Collateral left after PnL at ``price`` and the fee to close (GMX's liquidation check).

        PnL is on the size in tokens bought at entry; the position fee is on the size in USD.
        Price impact, borrowing and funding are left out (zero in the published case).
        """
        size_in_tokens = size_usd / entry_price
        pnl = side * (size_in_tokens * price - size_usd)
        return collateral_amount * collateral_price + pnl - size_usd * close_fee_rate

    def is_liquidatable(self, remaining_collateral_usd: Decimal, size_usd: Decimal) -> bool:
        """GMX ``isPositionLiquidatable`` on remaining collateral (after PnL and close costs)."""
        if remaining_collateral_usd <= 0:
            return True
        if self.min_collateral_usd and remaining_collateral_usd < self.min_collateral_usd:
            return True
        return remaining_collateral_usd < abs(size_usd) * self.min_collateral_factor_for_liquidation


# --------------------------------------------------------------------------------------------
# Building a model from a preset's data
# --------------------------------------------------------------------------------------------


def build_margin_model(spec: Mapping[str, object], where: str = "margin") -> MarginModel:
    """Build a margin model from its data (a preset's ``[margin]`` table merged with a market's).

    ``model`` selects the kind: ``tiered``, ``risk_limit_steps``, ``liquidity_tier``,
    ``size_premium`` or ``min_collateral_factor``.
    """
    kind = spec.get("model")
    if kind == "tiered":
        rows = spec.get("tiers")
        if not isinstance(rows, list):
            raise InvalidInput(f"{where}.tiers", "a tiered model needs a list of tiers")
        return TieredMargin.from_rows(rows, rates=str(spec.get("rates", "explicit")), field_name=f"{where}.tiers")
    if kind == "risk_limit_steps":
        return RiskLimitSteps(
            base_maintenance_rate=fraction(spec.get("base_mm"), f"{where}.base_mm"),
            base_initial_rate=fraction(spec.get("base_im"), f"{where}.base_im"),
            base_risk_limit=positive(spec.get("base_risk_limit"), f"{where}.base_risk_limit"),
            step=positive(spec.get("step"), f"{where}.step"),
            step_rate=None if spec.get("step_rate") is None else fraction(spec.get("step_rate"), f"{where}.step_rate"),
        )
    if kind == "liquidity_tier":
        return LiquidityTier.from_rates(
            imf=spec.get("imf"),
            mmf=spec.get("mmf"),
            maintenance_fraction=spec.get("maintenance_fraction"),
            oi_lower_cap=spec.get("oi_lower_cap", "0"),
            oi_upper_cap=spec.get("oi_upper_cap", "0"),
        )
    if kind == "size_premium":
        return SizePremium(
            initial_ratio=fraction(spec.get("initial_ratio"), f"{where}.initial_ratio"),
            maintenance_ratio=fraction(spec.get("maintenance_ratio"), f"{where}.maintenance_ratio"),
            imf_factor=non_negative(spec.get("imf_factor", "0"), f"{where}.imf_factor"),
        )
    if kind == "min_collateral_factor":
        return MinCollateralFactor(
            min_collateral_factor=fraction(spec.get("min_collateral_factor"), f"{where}.min_collateral_factor"),
            min_collateral_factor_for_liquidation=fraction(
                spec.get("min_collateral_factor_for_liquidation", spec.get("min_collateral_factor")),
                f"{where}.min_collateral_factor_for_liquidation",
            ),
            open_interest_multiplier=non_negative(spec.get("open_interest_multiplier", "0"), f"{where}.open_interest_multiplier"),
            min_collateral_usd=non_negative(spec.get("min_collateral_usd", "0"), f"{where}.min_collateral_usd"),
        )
    raise InvalidInput(f"{where}.model", f"unknown margin model {kind!r}")
