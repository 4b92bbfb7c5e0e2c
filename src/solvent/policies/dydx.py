"""dYdX v4 liquidations, in quote quantums (1e-6 USDC) with dYdX's own rounding.

Reference: ../shared/reference/perp-venues.md §5.1 and §5.3–5.5, restating
``protocol/x/clob/keeper/liquidations.go`` and ``protocol/x/perpetuals/lib/lib.go``.

A subaccount is a quote (USDC) balance and perpetual positions valued at the oracle price:

- a position's net notional ``NC = size·price`` in quantums, truncated toward zero (dYdX's
  ``BaseToQuoteQuantums``);
- its maintenance requirement ``MMR = ⌈⌈|NC|·IMF⌉·MF⌉``: the base initial margin rounded up, then
  the maintenance fraction of it rounded up again (dYdX computes MM from the base IMF, never the
  open-interest-scaled one);
- ``TNC = quote + ΣNC``, ``TMMR = ΣMMR``; liquidatable iff ``TMMR > 0`` and ``TNC < TMMR``.

Closing ``Δ`` of one position (a reduction: opposite sign, ``|Δ| ≤ |size|``):

- bankruptcy quote ``BQ = −ΔNC − ⌊TNC·|ΔMMR| / TMMR⌋``, where ``ΔNC`` and ``ΔMMR`` are the
  differences between the position's values after and before the close (not computed from Δ
  directly, so that rounding matches). Flooring the only division rounds BQ toward +∞: closing at
  BQ never needs insurance-fund money;
- fillable price ``(PNNV − ABR·SMMR·PMMR) / PS`` with ``ABR = clamp(BA·(1 − TNC/TMMR), 0, 1)``:
  exact rational arithmetic; dYdX rounds it to the order book's subticks only when it places the
  order (up for a sell closing a long, down for a buy closing a short), which :func:`fillable_price`
  does when given a ``tick``;
- insurance-fund delta for a fill: ``d = quote received − BQ``; ``d ≤ 0``: the fund pays ``−d``
  (a negative delta); otherwise the account pays ``min(d, ⌊|quote|·max_fee⌋)`` to the fund.

Parameters come from :class:`DydxLiquidationConfig`, built from a preset's ``[liquidation]``
table (``presets/dydx_v4.toml`` holds the mainnet genesis values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..core.domain import Side
from ..core.errors import InvalidInput, UnknownName
from ..core.numbers import non_negative, positive, to_decimal
from .margin import PPM, LiquidityTier

QUOTE_DECIMALS = 6  # USDC quantums
QUANTUMS_PER_USDC = 10**QUOTE_DECIMALS


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def rate_to_ppm(value: object, field: str, *, at_most: int | None = None) -> int:
    """A non-negative rate in exact parts per million (1.5 -> 1,500,000). ``at_most`` in ppm."""
    rate = non_negative(value, field)
    scaled = rate * PPM
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field, f"{rate} is finer than one part per million")
    ppm = int(scaled)
    if at_most is not None and ppm > at_most:
        raise InvalidInput(field, f"must be at most {Decimal(at_most) / PPM}, got {rate}")
    return ppm


def usdc_to_quantums(value: object, field: str) -> int:
    """A USDC amount (decimal string) as exact quote quantums; refuses a fraction of a quantum."""
    amount = to_decimal(value, field)
    scaled = amount.scaleb(QUOTE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field, f"{amount} is finer than one quote quantum (1e-6 USDC)")
    return int(scaled)


def quantums_to_usdc(quantums: int) -> Decimal:
    return Decimal(quantums).scaleb(-QUOTE_DECIMALS)


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _fraction_to_decimal(value: Fraction, *, round_up: bool, places: int = 18) -> Decimal:
    """Exact when the rational terminates; otherwise rounded at ``places`` in the given direction."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator == 1:  # p / (2^a·5^b) = p·2^(k−a)·5^(k−b) / 10^k exactly
        k = max(twos, fives)
        return Decimal(value.numerator * 2 ** (k - twos) * 5 ** (k - fives)).scaleb(-k)
    scaled = value * 10**places
    units = _ceil(scaled) if round_up else _floor(scaled)
    return Decimal(units).scaleb(-places)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DydxLiquidationConfig:
    """dYdX's ``LiquidationsConfig``: rates in ppm, amounts in quote quantums.

    ``bankruptcy_adjustment_ppm`` must be at least 1,000,000 (dYdX's own validation): it scales how
    fast the fillable price moves from the oracle toward the bankruptcy price.
    """

    max_liquidation_fee_ppm: int
    bankruptcy_adjustment_ppm: int
    spread_to_maintenance_margin_ratio_ppm: int
    min_position_notional_liquidated: int
    max_position_portion_liquidated_ppm: int
    max_notional_liquidated: int  # per subaccount per block
    max_quantums_insurance_lost: int  # per subaccount per block

    def __post_init__(self) -> None:
        if not 0 <= self.max_liquidation_fee_ppm <= PPM:
            raise InvalidInput("max_liquidation_fee", "must be within 0..1")
        if self.bankruptcy_adjustment_ppm < PPM:
            raise InvalidInput("bankruptcy_adjustment", "must be at least 1")
        if self.spread_to_maintenance_margin_ratio_ppm <= 0:
            raise InvalidInput("spread_to_maintenance_margin_ratio", "must be positive")
        if not 0 < self.max_position_portion_liquidated_ppm <= PPM:
            raise InvalidInput("max_position_portion_liquidated", "must be within (0, 1]")
        for name in ("min_position_notional_liquidated", "max_notional_liquidated", "max_quantums_insurance_lost"):
            if getattr(self, name) < 0:
                raise InvalidInput(name, "must not be negative")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "liquidation") -> DydxLiquidationConfig:
        """Build from a ``[liquidation]`` table: rates as decimals, amounts in USDC (kept for a
        table of the same entries: the engine asks for it at every liquidation)."""
        try:
            key = (tuple(sorted(table.items())), where)
            hash(key)
        except TypeError:  # entries that cannot be a key: build it every time
            return cls._from_table(table, where)
        config = _CONFIGS.get(key)
        if config is None:
            config = _CONFIGS[key] = cls._from_table(table, where)
            if len(_CONFIGS) > 256:
                _CONFIGS.pop(next(iter(_CONFIGS)))
        return config

    @classmethod
    def _from_table(cls, table: Mapping[str, Any], where: str) -> DydxLiquidationConfig:

        def get(key: str) -> Any:
            if key not in table:
                raise InvalidInput(f"{where}.{key}", "missing")
            return table[key]

        return cls(
            max_liquidation_fee_ppm=rate_to_ppm(get("max_liquidation_fee"), f"{where}.max_liquidation_fee", at_most=PPM),
            bankruptcy_adjustment_ppm=rate_to_ppm(get("bankruptcy_adjustment"), f"{where}.bankruptcy_adjustment"),
            spread_to_maintenance_margin_ratio_ppm=rate_to_ppm(
                get("spread_to_maintenance_margin_ratio"), f"{where}.spread_to_maintenance_margin_ratio"),
            min_position_notional_liquidated=usdc_to_quantums(
                get("min_position_notional_liquidated"), f"{where}.min_position_notional_liquidated"),
            max_position_portion_liquidated_ppm=rate_to_ppm(
                get("max_position_portion_liquidated"), f"{where}.max_position_portion_liquidated", at_most=PPM),
            max_notional_liquidated=usdc_to_quantums(get("max_notional_liquidated"), f"{where}.max_notional_liquidated"),
            max_quantums_insurance_lost=usdc_to_quantums(
                get("max_insurance_lost"), f"{where}.max_insurance_lost"),
        )

    def with_rates(self, **rates: object) -> DydxLiquidationConfig:
        """A copy with some rates replaced, given as decimals (``max_liquidation_fee="0.005"``)."""
        names = {
            "max_liquidation_fee": "max_liquidation_fee_ppm",
            "bankruptcy_adjustment": "bankruptcy_adjustment_ppm",
            "spread_to_maintenance_margin_ratio": "spread_to_maintenance_margin_ratio_ppm",
            "max_position_portion_liquidated": "max_position_portion_liquidated_ppm",
        }
        changes = {}
        for key, value in rates.items():
            if key not in names:
                raise InvalidInput(key, f"not a rate of the liquidations config (known: {', '.join(names)})")
            changes[names[key]] = rate_to_ppm(value, key)
        return replace(self, **changes)


_CONFIGS: dict[tuple, DydxLiquidationConfig] = {}


# --------------------------------------------------------------------------------------------
# Positions and subaccounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DydxPosition:
    """A perpetual position: signed size in base units (long > 0), oracle price in USDC."""

    market: str
    size: Decimal
    oracle_price: Decimal
    tier: LiquidityTier

    def __post_init__(self) -> None:
        if self.size == 0:
            raise InvalidInput(f"positions[{self.market}].size", "must not be zero")
        positive(self.oracle_price, f"positions[{self.market}].oracle_price")

    @classmethod
    def parse(cls, row: Mapping[str, Any], where: str = "position") -> DydxPosition:
        """From ``{market, side, size, oracle_price, imf, mmf | maintenance_fraction}``."""
        if not isinstance(row, Mapping):
            raise InvalidInput(where, "expected an object")
        market = row.get("market")
        if not market:
            raise InvalidInput(f"{where}.market", "missing")
        side = Side.parse(row.get("side"), f"{where}.side")
        size = positive(row.get("size"), f"{where}.size")
        price = positive(row.get("oracle_price"), f"{where}.oracle_price")
        try:
            tier = LiquidityTier.from_rates(imf=row.get("imf"), mmf=row.get("mmf"),
                                            maintenance_fraction=row.get("maintenance_fraction"))
        except InvalidInput as error:
            raise InvalidInput(f"{where}.{error.field}", error.message) from None
        return cls(str(market), side * size, price, tier)

    @property
    def side(self) -> Side:
        return Side.LONG if self.size > 0 else Side.SHORT

    def net_notional(self, size: Decimal | None = None) -> int:
        """Signed notional in quantums at the oracle price, truncated toward zero (Go's big.Int
        Quo), computed on the exact integer ratios of the two decimals."""
        size_num, size_den = (self.size if size is None else size).as_integer_ratio()
        price_num, price_den = self.oracle_price.as_integer_ratio()
        numerator = size_num * price_num * QUANTUMS_PER_USDC
        quotient = abs(numerator) // (size_den * price_den)
        return quotient if numerator >= 0 else -quotient

    def maintenance_margin(self, size: Decimal | None = None) -> int:
        """``⌈⌈|NC|·IMF⌉·MF⌉`` quantums, from the base IMF."""
        notional = abs(self.net_notional(self.size if size is None else size))
        initial = -((-notional * self.tier.initial_ppm) // PPM)
        return -((-initial * self.tier.maintenance_fraction_ppm) // PPM)

    def check_reduction(self, delta_size: Decimal, field: str = "delta_size") -> None:
        """dYdX accepts only a delta that reduces the position without flipping it."""
        if delta_size == 0 or (delta_size > 0) == (self.size > 0) or abs(delta_size) > abs(self.size):
            raise InvalidInput(field, f"{delta_size} does not reduce the position {self.size} of {self.market} "
                                      "(needs the opposite sign and at most its size)")


@dataclass(frozen=True)
class Subaccount:
    """A quote balance (quantums, may be negative) and perpetual positions, one per market."""

    quote_balance: int
    positions: tuple[DydxPosition, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for position in self.positions:
            if position.market in seen:
                raise InvalidInput("positions", f"market {position.market} appears twice")
            seen.add(position.market)

    @classmethod
    def parse(cls, positions: Iterable[Mapping[str, Any]], quote_balance: object,
              field: str = "positions") -> Subaccount:
        """From position rows and a quote balance in USDC (a decimal string)."""
        if isinstance(positions, (str, bytes)) or not isinstance(positions, Iterable):
            raise InvalidInput(field, "expected a list of positions")
        parsed = tuple(DydxPosition.parse(row, f"{field}[{index}]") for index, row in enumerate(positions))
        return cls(usdc_to_quantums(quote_balance, "quote_balance"), parsed)

    def position(self, market: str) -> DydxPosition:
        for position in self.positions:
            if position.market == market:
                return position
        raise UnknownName("position", market, [position.market for position in self.positions])

    def net_collateral(self) -> int:
        """TNC: quote balance plus every position's net notional, in quantums."""
        return self.quote_balance + sum(position.net_notional() for position in self.positions)

    def maintenance_requirement(self) -> int:
        """TMMR: the sum of each position's maintenance margin (each rounded up), in quantums."""
        return sum(position.maintenance_margin() for position in self.positions)


def is_liquidatable(net_collateral: int, maintenance_requirement: int) -> bool:
    """dYdX's trigger: ``TMMR > 0`` and ``TNC < TMMR``."""
    return maintenance_requirement > 0 and net_collateral < maintenance_requirement


def _required_tmmr(subaccount: Subaccount) -> int:
    tmmr = subaccount.maintenance_requirement()
    if tmmr <= 0:
        raise InvalidInput("positions", "the subaccount has no maintenance requirement; there is nothing to liquidate")
    return tmmr


# --------------------------------------------------------------------------------------------
# Bankruptcy quote, fillable price, insurance-fund delta
# --------------------------------------------------------------------------------------------


def bankruptcy_quote(subaccount: Subaccount, market: str, delta_size: object) -> int:
    """Quote quantums at which closing ``delta_size`` (signed base units) leaves TNC at zero share.

    ``BQ = −ΔNC − ⌊TNC·|ΔMMR| / TMMR⌋``; signed (the account receives a positive BQ when closing a
    long), rounded toward +∞ so that a fill at BQ never draws on the insurance fund.
    """
    delta = to_decimal(delta_size, "delta_size")
    position = subaccount.position(market)
    position.check_reduction(delta)
    tnc = subaccount.net_collateral()
    tmmr = _required_tmmr(subaccount)
    after = position.size + delta
    delta_nc = position.net_notional(after) - position.net_notional()
    delta_mmr = position.maintenance_margin(after) - position.maintenance_margin()
    # |after| <= |before| and MM is monotone in size, so delta_mmr <= 0.
    share_of_collateral = (tnc * abs(delta_mmr)) // tmmr  # floor: the result rounds toward +inf
    return -delta_nc - share_of_collateral


def adjusted_bankruptcy_rating(subaccount: Subaccount, config: DydxLiquidationConfig) -> Fraction:
    """``ABR = clamp(BA·(1 − TNC/TMMR), 0, 1)``: 0 at TNC = TMMR, 1 at TNC <= 0 (BA = 1)."""
    tnc = subaccount.net_collateral()
    tmmr = _required_tmmr(subaccount)
    unbounded = (1 - Fraction(tnc, tmmr)) * Fraction(config.bankruptcy_adjustment_ppm, PPM)
    return min(max(unbounded, Fraction(0)), Fraction(1))


def fillable_price_exact(subaccount: Subaccount, market: str, config: DydxLiquidationConfig) -> Fraction:
    """The fillable price in USDC per base unit, as an exact rational."""
    position = subaccount.position(market)
    abr = adjusted_bankruptcy_rating(subaccount, config)
    max_spread = Fraction(position.maintenance_margin()) * Fraction(config.spread_to_maintenance_margin_ratio_ppm, PPM)
    quote_quantums = Fraction(position.net_notional()) - abr * max_spread
    price = quote_quantums / Fraction(position.size) / QUANTUMS_PER_USDC
    if price < 0:  # dYdX panics here; it cannot happen with SMMR·MMF < 1
        raise InvalidInput("spread_to_maintenance_margin_ratio", f"gives a negative fillable price for {market}")
    return price


def fillable_price(subaccount: Subaccount, market: str, config: DydxLiquidationConfig, *,
                   tick: object | None = None) -> Decimal:
    """Limit price of the liquidation order: ``(PNNV − ABR·SMMR·PMMR) / PS``.

    Without ``tick`` the exact value (rounded at 1e-18 only if it does not terminate, up for a
    long and down for a short). With ``tick`` it is aligned as dYdX does when placing the order:
    up to a multiple of the tick for a sell closing a long, down for a buy closing a short, never
    below one tick.
    """
    price = fillable_price_exact(subaccount, market, config)
    liquidating_long = subaccount.position(market).size > 0
    if tick is None:
        return _fraction_to_decimal(price, round_up=liquidating_long)
    step = positive(tick, "tick")
    ticks = price / Fraction(step)
    count = _ceil(ticks) if liquidating_long else _floor(ticks)
    return max(count, 1) * step


def fill_quote_quantums(position: DydxPosition, fill_price: object, fill_size: object) -> tuple[Decimal, int]:
    """The signed base delta and quote quantums of a fill closing ``fill_size`` of ``position``.

    The quote amount is rounded down in magnitude (dYdX's ``FillAmountToQuoteQuantums``), positive
    when the account sells (closing a long) and negative when it buys (closing a short).
    ``fill_size`` is the size filled, or the signed delta of the close (negative for a long),
    like the ``delta_size`` of :func:`bankruptcy_quote`.
    """
    price = positive(fill_price, "fill_price")
    signed = to_decimal(fill_size, "fill_size")
    if signed < 0 and position.size < 0:
        raise InvalidInput("fill_size", f"{signed} would increase the short, not close it")
    size = positive(abs(signed), "fill_size")
    magnitude = _floor(Fraction(price) * Fraction(size) * QUANTUMS_PER_USDC)
    if position.size > 0:
        return -size, magnitude
    return size, -magnitude


def insurance_fund_delta(subaccount: Subaccount, market: str, fill_price: object, fill_size: object,
                         config: DydxLiquidationConfig) -> int:
    """Quote quantums paid to (positive) or by (negative) the insurance fund for one fill.

    ``d = quote − BQ``: when the fill beats the bankruptcy price the account pays the fee
    ``min(d, ⌊|quote|·max_liquidation_fee⌋)``, 100% to the fund; otherwise the fund covers ``−d``.
    """
    position = subaccount.position(market)
    delta, quote = fill_quote_quantums(position, fill_price, fill_size)
    position.check_reduction(delta, "fill_size")
    difference = quote - bankruptcy_quote(subaccount, market, delta)
    if difference <= 0:
        return difference
    max_fee = abs(quote) * config.max_liquidation_fee_ppm // PPM
    return min(max_fee, difference)


# --------------------------------------------------------------------------------------------
# How much may be liquidated in one block
# --------------------------------------------------------------------------------------------


def position_notional_limits(position: DydxPosition, config: DydxLiquidationConfig) -> tuple[int, int]:
    """(min, max) notional of ``position`` liquidatable in one block, in quantums.

    min = min(min_position_notional_liquidated, |NC|); max = max(min, ⌊|NC|·max_portion⌋).
    """
    notional = abs(position.net_notional())
    smallest = min(config.min_position_notional_liquidated, notional)
    largest = max(smallest, notional * config.max_position_portion_liquidated_ppm // PPM)
    return smallest, largest


def liquidatable_size_delta(position: DydxPosition, config: DydxLiquidationConfig, *, step_size: object,
                            notional_liquidated_this_block: int = 0) -> Decimal:
    """Signed base delta the next liquidation order may close (dYdX ``GetLiquidatablePositionSizeDelta``).

    The limit is the smaller of the position's per-block maximum and what is left of the
    subaccount's per-block notional cap. The whole position is closed when its notional is within
    the limit or its size is at most one step; otherwise the limit in base units, rounded down to
    the step and kept within [one step, the position].
    """
    step = positive(step_size, "step_size")
    if notional_liquidated_this_block < 0:
        raise InvalidInput("notional_liquidated_this_block", "must not be negative")
    if notional_liquidated_this_block > config.max_notional_liquidated:
        raise InvalidInput("notional_liquidated_this_block",
                           "already exceeds the subaccount's per-block limit")
    _, position_limit = position_notional_limits(position, config)
    subaccount_limit = config.max_notional_liquidated - notional_liquidated_this_block
    limit = min(position_limit, subaccount_limit)
    notional = abs(position.net_notional())
    if notional <= limit or abs(position.size) <= step:
        return -position.size
    base = Fraction(limit) / (Fraction(position.oracle_price) * QUANTUMS_PER_USDC)
    steps = _floor(base / Fraction(step))
    magnitude = min(max(steps * step, step), abs(position.size))
    return -magnitude if position.size > 0 else magnitude


# --------------------------------------------------------------------------------------------
# Deleveraging candidates
# --------------------------------------------------------------------------------------------


def can_deleverage(subaccount: Subaccount) -> bool:
    """dYdX deleverages a position whose liquidation filled nothing only if TNC < 0 (§5.5)."""
    return subaccount.net_collateral() < 0


__all__ = [
    "DydxLiquidationConfig",
    "DydxPosition",
    "Subaccount",
    "adjusted_bankruptcy_rating",
    "bankruptcy_quote",
    "can_deleverage",
    "fill_quote_quantums",
    "fillable_price",
    "fillable_price_exact",
    "insurance_fund_delta",
    "is_liquidatable",
    "liquidatable_size_delta",
    "position_notional_limits",
    "quantums_to_usdc",
    "rate_to_ppm",
    "usdc_to_quantums",
]
