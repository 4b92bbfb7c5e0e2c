"""Where forced sales go: market models that turn a liquidation's notional into a price move.

Three models (reference/simulation.md §6, "Impact model options"):

- :class:`SqrtImpact`: the square-root law with a depth that thins as volatility rises and
  refills with a half-life, and an impact that decays with the same half-life (§2.1 item 1,
  §2.2 item 5, RiskDAO's recovery half-life in §1.5).
- :class:`L2Book`: a price-level book walked level by level, whose depth market makers can pull.
- :class:`ConstantProduct`: an x·y = k pool, RiskDAO's slippage curve (§2.1 item 3).

Conventions. Notionals are USD valued at the current mid (base quantity × mid) and prices are
returned as *factors* of the mid, so a model is independent of the price level: a sell with
``average_price_factor = 0.99`` filled on average 1% under mid. Results come back as
:class:`Fill`. Floats throughout: this is the simulator's exogenous world, not the ledger.

Default depths (reference §2.3, CoinDesk Research via quickfeed.io / pakinomist.com, average
per major venue) are below as constants. Whether a published "depth within 1%" counts one side
of the book or both is not stated in our sources [UNCONFIRMED]; we use it as the depth on the
side being hit, which is optimistic by up to a factor of two if the figure sums both sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.errors import InvalidInput
from .scenarios import SECONDS_PER_YEAR

# --------------------------------------------------------------------------- documented depths

DEPTH_SOURCES = (
    "CoinDesk Research via quickfeed.io / pakinomist.com: average depth per major venue, early Oct 2025 "
    "vs 11 Nov 2025 (reference/simulation.md §2.3)",
    "Kaiko, research.kaiko.com/insights/when-october-surprise-meets-crypto-liquidity-drought: on 10 Oct 2025 "
    "books 'appearing empty for several minutes'; only the 4% and 10% bands held meaningful bids",
    "Kaiko, marketing.kaiko.com/a-summer-of-uncertainty-ahead: BTC 1% depth on US exchanges at a $290M "
    "all-time high in early May 2025 (aggregate, not per venue)",
)

#: USD within 1% of mid per major venue, early October 2025 (CoinDesk; ETH figure of 9 Oct).
DEPTH_1PCT_USD: dict[str, float] = {"BTC": 20_000_000.0, "ETH": 8_000_000.0, "SOL": 2_500_000.0}

#: USD within 1% per major venue in the 11 Nov 2025 sell-off (CoinDesk: BTC ~$14M, ETH <$6M,
#: SOL/XRP/ATOM/ENS ~$1.3M "in the panic").
PANIC_DEPTH_1PCT_USD: dict[str, float] = {"BTC": 14_000_000.0, "ETH": 6_000_000.0, "SOL": 1_300_000.0}

#: Cumulative BTC depth bands (offset from mid, USD) per major venue, early Oct 2025 (CoinDesk:
#: 0.5% $15.5M, 1% ~$20M, 5% >$40M) and 11 Nov 2025 (<$10M, ~$14M, <$30M). Feed to
#: :meth:`L2Book.from_depth_bands`.
BTC_DEPTH_BANDS_EARLY_OCT_2025: tuple[tuple[float, float], ...] = (
    (0.005, 15_500_000.0), (0.01, 20_000_000.0), (0.05, 40_000_000.0))
BTC_DEPTH_BANDS_NOV_11_2025: tuple[tuple[float, float], ...] = (
    (0.005, 10_000_000.0), (0.01, 14_000_000.0), (0.05, 30_000_000.0))


@dataclass(frozen=True)
class Fill:
    """What a market model did with an order: prices as factors of the pre-trade mid.

    ``marginal_price_factor`` is the price of the last unit filled (where the mid sits after a
    book or pool is walked); ``unfilled_notional`` is what the book could not absorb.
    """

    notional: float
    filled_notional: float
    average_price_factor: float
    marginal_price_factor: float

    @property
    def unfilled_notional(self) -> float:
        return self.notional - self.filled_notional


def realized_volatility(prices: Sequence[float] | np.ndarray, step_seconds: float) -> float:
    """Annualised realised volatility of a price window: RMS log return × sqrt(steps per year).

    Uses the root mean square rather than the standard deviation: over the few minutes a
    cascade lasts the mean return is the crash itself, not noise to subtract. This is the
    number :meth:`SqrtImpact.step` expects.
    """
    prices = np.asarray(prices, dtype=np.float64)
    if prices.size < 2:
        raise InvalidInput("prices", "need at least two prices")
    returns = np.diff(np.log(prices))
    return float(np.sqrt(np.mean(returns**2) * SECONDS_PER_YEAR / step_seconds))


# --------------------------------------------------------------------------- square-root impact


@dataclass
class SqrtImpact:
    """Square-root impact with state-dependent depth (mutable: one instance per market per run).

    **Impact.** Selling notional ``Q`` into depth ``D`` moves the price by the fraction
    ``I(Q) = y · 0.01 · sqrt(Q / D)`` (:meth:`impact`). The square-root law ``I ≈ Y·σ·sqrt(Q/V)``
    (reference §2.1 item 1; Donier & Bonart find it on >1M bitcoin metaorders) is calibrated
    here to the published depth figure: with ``y = 1``, selling exactly the depth within 1%
    (``Q = D``) moves the price 1%, as walking a book holding ``D`` within 1% would; below that
    the square root is concave, above it it grows slower than a linear book. ``y`` is the
    prefactor "of order unity" (0.5–1 commonly quoted, [UNCONFIRMED] in the reference).
    Doubling ``Q`` multiplies the impact by sqrt(2).

    **Depth.** ``depth_usd = depth_1pct_usd × depth_fraction``. The depth market makers leave
    falls as volatility rises (Brunnermeier & Pedersen's requirement that liquidity be
    state-dependent, reference §2.2 item 5; Kaiko saw books within 1% empty for minutes on
    10 Oct 2025): for a realised annualised volatility ``σ``, the target fraction is
    ``clip((calm_volatility / σ) ** vol_sensitivity, min_depth_fraction, 1)``. Withdrawal is
    immediate; the refill is gradual: the gap to the target halves every
    ``recovery_half_life_steps``.

    **Permanent and temporary impact.** The price displacement of forced flow is kept in log
    terms (so prices stay positive; for small impacts a log move and a fraction coincide) and
    split: ``permanent_fraction`` of each trade's move stays (information the flow revealed);
    the rest is temporary and decays toward the exogenous path with the same half-life,
    RiskDAO's price recovery (reference §1.5). The default is fully temporary: Donier & Bonart
    find the impact of uninformed flow, which forced sales are, decays almost completely.
    Successive trades compose on the same square-root curve: a trade starts from the volume
    that would explain the current displacement, so two sales in one step move the price like
    one sale of their sum, and after the displacement decays the curve is steep again.

    Defaults other than the depth are assumptions, not sourced: ``calm_volatility = 0.5``
    (near crvUSDrisk's fitted Q4-2023 sigmas, WBTC 0.43 / WETH 0.46, reference §1.6),
    ``vol_sensitivity = 1``, a 10-step half-life (minutes at minute steps: "empty for several
    minutes"), and a floor of 5% of the base depth.
    """

    depth_1pct_usd: float
    y: float = 1.0
    vol_sensitivity: float = 1.0
    recovery_half_life_steps: float = 10.0
    min_depth_fraction: float = 0.05
    calm_volatility: float = 0.5
    permanent_fraction: float = 0.0
    depth_fraction: float = field(default=1.0)
    temporary_impact: float = field(default=0.0)
    permanent_impact: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.depth_1pct_usd > 0:
            raise InvalidInput("depth_1pct_usd", "must be positive")
        if not self.y > 0:
            raise InvalidInput("y", "must be positive")
        if not 0 < self.min_depth_fraction <= 1:
            raise InvalidInput("min_depth_fraction", "must be within (0, 1]")
        if not 0 <= self.permanent_fraction <= 1:
            raise InvalidInput("permanent_fraction", "must be within [0, 1]")
        if self.recovery_half_life_steps < 0:
            raise InvalidInput("recovery_half_life_steps", "must be non-negative")

    # ---- state read-outs

    @property
    def depth_usd(self) -> float:
        """The depth within 1% available now."""
        return self.depth_1pct_usd * self.depth_fraction

    @property
    def displacement(self) -> float:
        """Signed log displacement of the price from the exogenous path (negative after sales)."""
        return self.temporary_impact + self.permanent_impact

    @property
    def price_factor(self) -> float:
        """Multiply the exogenous price by this to get the price after forced flow."""
        return math.exp(self.displacement)

    @property
    def _recovery(self) -> float:
        """Per-step retention: the part of a gap left after one step, 2^(−1/half-life)."""
        if self.recovery_half_life_steps == 0:
            return 0.0
        return 0.5 ** (1.0 / self.recovery_half_life_steps)

    # ---- the model

    def impact(self, notional: float) -> float:
        """Impact fraction of trading ``|notional|`` at the current depth from a rested price."""
        return self.y * 0.01 * math.sqrt(abs(notional) / self.depth_usd)

    def target_depth_fraction(self, realized_vol: float) -> float:
        """The depth fraction market makers leave at an annualised realised volatility."""
        if realized_vol <= self.calm_volatility:
            return 1.0
        ratio = (self.calm_volatility / realized_vol) ** self.vol_sensitivity
        return min(1.0, max(self.min_depth_fraction, ratio))

    def step(self, realized_vol: float) -> float:
        """Advance one step: thin or refill the depth, decay the temporary impact.

        Returns the new depth fraction. Depth falls to the target at once when volatility is
        above what the current depth allows; otherwise the gap to the target shrinks by
        2^(−1/half-life), so it halves after one half-life.
        """
        target = self.target_depth_fraction(realized_vol)
        if target < self.depth_fraction:
            self.depth_fraction = target
        else:
            self.depth_fraction = target + (self.depth_fraction - target) * self._recovery
        self.temporary_impact *= self._recovery
        return self.depth_fraction

    def trade(self, signed_notional: float) -> Fill:
        """Execute ``signed_notional`` (negative sells, positive buys) and move the price.

        The price walks the square-root curve from the current displacement ``a`` to ``b``;
        the average price factor is the mean of ``exp(d)`` over the volume traded, closed form
        ``(G(b) − G(a)) / (sign(b)·b² − sign(a)·a²)`` with ``G(d) = 2·sign(d)·(d·e^d − e^d + 1)``
        (for a fresh sell of impact ``U`` this is ``2(1 − e^(−U)(1+U))/U² ≈ 1 − 2U/3``).
        """
        scale = self.y * 0.01
        depth = self.depth_usd
        a = self.displacement
        volume_before = math.copysign(depth * (a / scale) ** 2, a)
        volume_after = volume_before + signed_notional
        b = math.copysign(scale * math.sqrt(abs(volume_after) / depth), volume_after)
        moved = b - a
        self.permanent_impact += self.permanent_fraction * moved
        self.temporary_impact += (1.0 - self.permanent_fraction) * moved
        notional = abs(signed_notional)
        return Fill(notional, notional, _average_exp(a, b), math.exp(b))

    def sell(self, notional: float) -> Fill:
        return self.trade(-abs(notional))

    def buy(self, notional: float) -> Fill:
        return self.trade(abs(notional))


def _average_exp(a: float, b: float) -> float:
    """Mean of exp(d) over the volume ``q = sign(d)·d²`` traded while ``d`` goes from a to b."""
    span = math.copysign(b * b, b) - math.copysign(a * a, a)
    if abs(span) < 1e-18:
        return math.exp(0.5 * (a + b))

    def g(d: float) -> float:
        return math.copysign(2.0 * (d * math.exp(d) - math.expm1(d)), d)

    return (g(b) - g(a)) / span


# --------------------------------------------------------------------------- L2 book

Levels = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class L2Book:
    """A price-level book: per side, ``(offset_fraction, size_usd)`` levels from the mid outward.

    A bid level at offset 0.01 fills at 0.99 × mid, an ask at 0.01 at 1.01 × mid. Sizes are USD
    at mid (base quantity × mid), like the notionals walked against them. Immutable: pulling
    liquidity (:meth:`withdraw`) returns a new book.
    """

    bids: Levels
    asks: Levels = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bids", _levels(self.bids, "bids", below_mid=True))
        object.__setattr__(self, "asks", _levels(self.asks, "asks", below_mid=False))

    @classmethod
    def from_depth_bands(cls, bands: Sequence[tuple[float, float]], levels_per_band: int = 5) -> L2Book:
        """A symmetric book from cumulative depth bands ``((offset, usd_within_offset), ...)``.

        Each band's increment over the previous one is spread evenly over ``levels_per_band``
        levels at evenly spaced offsets up to the band's edge, e.g.
        ``L2Book.from_depth_bands(BTC_DEPTH_BANDS_EARLY_OCT_2025)``.
        """
        if levels_per_band <= 0:
            raise InvalidInput("levels_per_band", "must be positive")
        levels: list[tuple[float, float]] = []
        inner_offset, inner_size = 0.0, 0.0
        for i, (offset, cumulative) in enumerate(bands):
            if offset <= inner_offset or cumulative < inner_size:
                raise InvalidInput(f"bands[{i}]", "offsets must increase and cumulative sizes not decrease")
            piece = (cumulative - inner_size) / levels_per_band
            for k in range(1, levels_per_band + 1):
                levels.append((inner_offset + (offset - inner_offset) * k / levels_per_band, piece))
            inner_offset, inner_size = offset, cumulative
        return cls(bids=tuple(levels), asks=tuple(levels))

    def depth_within(self, offset: float, side: str = "bids") -> float:
        """USD resting within ``offset`` of the mid on one side."""
        return sum(size for level, size in self._side(side) if level <= offset)

    def sell(self, notional: float) -> Fill:
        """Walk the bids with a sell of ``notional`` USD."""
        return _walk(self.bids, notional, -1.0)

    def buy(self, notional: float) -> Fill:
        """Walk the asks with a buy of ``notional`` USD."""
        return _walk(self.asks, notional, 1.0)

    def withdraw(self, fraction: float, within: float | None = None) -> L2Book:
        """Market makers pull ``fraction`` of every level (only levels within ``within`` if given).

        ``withdraw(0.9, within=0.01)`` empties 90% of the first 1% on both sides and leaves the
        outer levels, the pattern Kaiko saw on 10 Oct 2025 (only the 4% and 10% bands held).
        """
        if not 0.0 <= fraction <= 1.0:
            raise InvalidInput("fraction", "must be within [0, 1]")

        def pulled(levels: Levels) -> Levels:
            return tuple((offset, size * (1.0 - fraction)) if within is None or offset <= within else (offset, size)
                         for offset, size in levels)

        return replace(self, bids=pulled(self.bids), asks=pulled(self.asks))

    def _side(self, side: str) -> Levels:
        if side not in ("bids", "asks"):
            raise InvalidInput("side", "must be 'bids' or 'asks'")
        return self.bids if side == "bids" else self.asks


def _levels(levels: Sequence[tuple[float, float]], field: str, below_mid: bool) -> Levels:
    result = tuple((float(offset), float(size)) for offset, size in levels)
    previous = -1.0
    for i, (offset, size) in enumerate(result):
        if offset < 0 or (below_mid and offset >= 1):
            raise InvalidInput(f"{field}[{i}]", "offset must be a fraction of the mid, >= 0 (and < 1 for bids)")
        if offset <= previous:
            raise InvalidInput(f"{field}[{i}]", "offsets must be strictly increasing from the mid")
        if size < 0:
            raise InvalidInput(f"{field}[{i}]", "size must be non-negative")
        previous = offset
    return result


def _walk(levels: Levels, notional: float, direction: float) -> Fill:
    if notional < 0:
        raise InvalidInput("notional", "must be non-negative")
    remaining, proceeds, marginal = float(notional), 0.0, 1.0
    for offset, size in levels:
        if remaining <= 0:
            break
        take = min(size, remaining)
        if take <= 0:
            continue
        price = 1.0 + direction * offset
        proceeds += take * price
        remaining -= take
        marginal = price
    filled = notional - remaining
    average = proceeds / filled if filled > 0 else 1.0
    return Fill(float(notional), filled, average, marginal)


# --------------------------------------------------------------------------- constant product


@dataclass(frozen=True)
class ConstantProduct:
    """An x·y = k pool: ``x`` units of the asset sold into it, ``y`` of the quote; spot = y/x.

    Selling ``v`` units moves reserves to ``(x + v, x·y/(x + v))``: the spot price falls by the
    factor ``x²/(x + v)²`` (:meth:`price_factor`, RiskDAO's ``get_slippage_for_volume``,
    reference §2.1 item 3) and the seller receives on average ``x/(x + v)`` of spot
    (:meth:`average_execution_factor`). With ``v = x``: 0.25 and 0.5. No fee.
    """

    x: float
    y: float

    def __post_init__(self) -> None:
        if not (self.x > 0 and self.y > 0):
            raise InvalidInput("reserves", "x and y must be positive")

    @classmethod
    def for_slippage(cls, volume: float, slippage: float, price: float = 1.0) -> ConstantProduct:
        """The pool in which selling ``volume`` units fills on average ``slippage`` under spot.

        RiskDAO parameterises pools by "volume for 10% slippage" (reference §1.5) and sets
        ``x = s·v/(1 − s)`` where its ``s`` is the execution ratio ``x/(x + v)``; with the
        slippage fraction ``σ = 1 − s`` that is ``x = (1 − σ)·v/σ``. So
        ``for_slippage(v, 0.10).average_execution_factor(v) == 0.9``.
        """
        if not 0 < slippage < 1:
            raise InvalidInput("slippage", "must be within (0, 1)")
        if not volume > 0:
            raise InvalidInput("volume", "must be positive")
        x = (1.0 - slippage) * volume / slippage
        return cls(x=x, y=x * price)

    @property
    def spot(self) -> float:
        return self.y / self.x

    def price_factor(self, v: float) -> float:
        """Spot after selling ``v`` units, as a factor of spot before: x²/(x + v)²."""
        return self.x**2 / (self.x + v) ** 2

    def average_execution_factor(self, v: float) -> float:
        """Average fill for selling ``v`` units, as a factor of spot: x/(x + v)."""
        return self.x / (self.x + v)

    def after_sell(self, v: float) -> ConstantProduct:
        """The pool once ``v`` units have been sold into it."""
        return ConstantProduct(self.x + v, self.x * self.y / (self.x + v))

    def sell(self, notional: float) -> Fill:
        """Sell ``notional`` USD worth at spot (``v = notional / spot``) without changing the pool."""
        v = notional / self.spot
        return Fill(float(notional), float(notional), self.average_execution_factor(v), self.price_factor(v))
