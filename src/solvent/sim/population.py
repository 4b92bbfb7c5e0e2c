"""A synthetic book of leveraged traders for the cascade simulator, drawn from a seed.

One position per trader, as columns: side (+1 long, −1 short), notional in USD at the starting
price, leverage (notional / margin) and the index of its market. The simulator turns these into
engine commands (deposits and fills) under a preset; the engine, not this module, decides who
is liquidated.

Defaults, and how much of each is sourced (reference/simulation.md):

- Leverage: log-normal with median 5× and log-sd 0.7 (p95 ≈ 16×), clipped to [1×, 100×].
  **Assumption**, chosen to match the repository's synthetic screening book
  (``solvent.screening.synthetic``). What is published describes *other* slices: the accounts
  Hyperliquid auto-deleveraged on 10 Oct 2025 had median leverage 0.20× and p95 5.10× (§3.2,
  HyperMultiAssetedADL) — winners, often hedged, not the liquidated; DeFi aggregate leverage is
  1.4–1.9 with the largest users more levered (§2.2 item 10, BIS WP 1171). The 100× cap is an
  assumption; Hyperliquid's first BTC tier allows 40× (presets/hyperliquid.toml).
- Notional: log-normal with median $2,000 and log-sd 1.3 (mean ≈ $4.7k, p99 ≈ $41k), clipped to
  [$10, $50M]. **Assumption** (again the screening book's median). For scale: Hyperliquid's BTC
  ADL fills averaged $106,428 on 10 Oct 2025 (§3.2).
- Long share 0.6: **assumption** of a long-leaning book before a crash. Liquidated notional on
  10 Oct 2025 was 91% longs on Hyperliquid (§3.1) and 83.9% across venues (Amberdata), but those
  shares are of what the fall liquidated, which over-weights longs.
- Markets uniformly at random unless ``market_weights`` is given (e.g. by open interest).
- Entry prices: the position was opened before the scenario starts, at ``opening · exp(−r)``
  with ``r`` normal, sd 0.03 (``entry_sigma``; **assumption**: about a day of BTC moves at 50–60%
  annualised volatility). Traders' equity at the opening is still ``notional / leverage``: what
  they gained or lost since entry is part of it. Winners and losers of the same side then hold
  different PnL, which is what makes auto-deleveraging rules differ from one another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import InvalidInput

MIN_LEVERAGE = 1.0
MIN_NOTIONAL_USD = 10.0
MAX_NOTIONAL_USD = 50_000_000.0


@dataclass(frozen=True)
class Population:
    """Columns of one position per trader; ``market`` indexes into ``markets``."""

    markets: tuple[str, ...]
    side: np.ndarray  # int8, +1 long / −1 short
    notional_usd: np.ndarray  # float64
    leverage: np.ndarray  # float64, notional / margin
    market: np.ndarray  # int32 index into markets
    entry_return: np.ndarray  # float64, log return from the entry price to the opening price

    def __len__(self) -> int:
        return int(self.side.shape[0])

    @property
    def margin_usd(self) -> np.ndarray:
        """Margin posted per trader: notional / leverage."""
        return self.notional_usd / self.leverage

    def in_market(self, name: str) -> np.ndarray:
        """Boolean mask of the traders positioned in market ``name``."""
        return self.market == self.markets.index(name)


def sample_population(accounts: int, markets: Sequence[str], rng: Any, median_leverage: float = 5.0,
                      leverage_sigma: float = 0.7, max_leverage: float = 100.0, median_notional: float = 2_000.0,
                      notional_sigma: float = 1.3, long_share: float = 0.6,
                      market_weights: Sequence[float] | None = None, entry_sigma: float = 0.03) -> Population:
    """Draw ``accounts`` traders. ``rng`` is a ``numpy.random.Generator`` or a seed.

    Draw order, fixed so that one seed gives one book: leverage, notional, side, market, entry.
    """
    if accounts <= 0:
        raise InvalidInput("accounts", "must be positive")
    if not markets:
        raise InvalidInput("markets", "at least one market is needed")
    if not 0.0 <= long_share <= 1.0:
        raise InvalidInput("long_share", "must be within [0, 1]")
    if not MIN_LEVERAGE <= median_leverage <= max_leverage:
        raise InvalidInput("median_leverage", f"must be within [{MIN_LEVERAGE}, max_leverage]")
    if leverage_sigma < 0 or notional_sigma < 0 or entry_sigma < 0:
        raise InvalidInput("sigma", "log standard deviations must be non-negative")
    if not median_notional > 0:
        raise InvalidInput("median_notional", "must be positive")
    weights = None
    if market_weights is not None:
        weights = np.asarray(market_weights, dtype=np.float64)
        if weights.shape != (len(markets),) or (weights < 0).any() or weights.sum() <= 0:
            raise InvalidInput("market_weights", "one non-negative weight per market, not all zero")
        weights = weights / weights.sum()

    rng = np.random.default_rng(rng)
    leverage = np.clip(rng.lognormal(math.log(median_leverage), leverage_sigma, accounts), MIN_LEVERAGE, max_leverage)
    notional = np.clip(rng.lognormal(math.log(median_notional), notional_sigma, accounts),
                       MIN_NOTIONAL_USD, MAX_NOTIONAL_USD)
    side = np.where(rng.random(accounts) < long_share, 1, -1).astype(np.int8)
    market = rng.choice(len(markets), size=accounts, p=weights).astype(np.int32)
    entry_return = rng.normal(0.0, entry_sigma, accounts) if entry_sigma > 0 else np.zeros(accounts)
    return Population(markets=tuple(markets), side=side, notional_usd=notional, leverage=leverage, market=market,
                      entry_return=entry_return)
