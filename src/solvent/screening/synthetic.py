"""A seeded synthetic book for demos and benchmarks, built straight into columns.

Accounts hold one cross pool in USDT; positions are spread over several linear markets under
one preset's bracket table; sizes are log-normal in notional, leverage log-normal around 5x
(clipped to 1–100x), entries within a few percent of the mark. Every number is exact: prices
in cents, sizes in lots, balances and cost bases in integer units.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..core.domain import ContractKind, Market
from ..core.errors import InvalidInput
from ..policies.margin import MarginModel
from .book import ColumnarBook, market_columns

SETTLE_DECIMALS = 8  # USDT units
SIZE_DECIMALS = 3  # lots of 0.001
PRICE_DECIMALS = 2  # prices in cents


@dataclass(frozen=True)
class SyntheticBook:
    book: ColumnarBook
    prices: dict[str, Decimal]
    markets: list[Market]


def synthetic_book(accounts: int, positions: int, *, model: MarginModel, markets: int | None = None,
                   seed: int = 7, median_leverage: float = 5.0, median_notional: float = 2_000.0) -> SyntheticBook:
    if accounts <= 0:
        raise InvalidInput("accounts", "must be positive")
    if positions < accounts:
        raise InvalidInput("positions", "must be at least the number of accounts (one position each)")
    per_account = -(-positions // accounts)
    n_markets = max(markets or 20, per_account)
    rng = np.random.default_rng(seed)

    cents = np.round(10 ** rng.uniform(0, 4.7, n_markets) * 100).astype(np.int64)
    cents = np.maximum(cents, 1)
    specs = [Market(f"SYN{m:02d}USDT", f"SYN{m:02d}", "USDT", "USDT", ContractKind.LINEAR, SIZE_DECIMALS)
             for m in range(n_markets)]
    prices = {spec.symbol: Decimal(int(c)).scaleb(-PRICE_DECIMALS) for spec, c in zip(specs, cents)}

    counts = np.full(accounts, positions // accounts, dtype=np.int64)
    counts[: positions % accounts] += 1
    indptr = np.zeros(accounts + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    pool = np.repeat(np.arange(accounts), counts)
    rank = np.arange(positions) - indptr[pool]  # position number inside its account
    offset = rng.integers(0, n_markets, accounts)
    market = ((offset[pool] + rank) % n_markets).astype(np.int32)  # distinct markets per account

    notional = np.clip(rng.lognormal(np.log(median_notional), 1.2, positions), 10.0, 5e7)
    mark = cents[market].astype(np.float64) / 100
    lots = np.maximum(np.round(notional / mark * 10**SIZE_DECIMALS), 1).astype(np.int64)
    side = np.where(rng.random(positions) < 0.5, 1, -1).astype(np.int64)
    entry_cents = np.maximum(np.round(cents[market] * np.exp(rng.normal(0, 0.04, positions))), 1).astype(np.int64)
    # cost in USDT units: lots·1e-3 × cents·1e-2 × 1e8 = lots × cents × 1e3
    unit_scale = 10 ** (SETTLE_DECIMALS - SIZE_DECIMALS - PRICE_DECIMALS)
    cost = lots * entry_cents * unit_scale
    signed_cost_sum = np.bincount(pool, weights=(side * cost).astype(np.float64), minlength=accounts)
    exact_signed = np.zeros(accounts, dtype=np.int64)
    np.add.at(exact_signed, pool, side * cost) if positions <= 2_000_000 else None
    if positions > 2_000_000:  # np.add.at is slow on big books; split to keep int64 exactness
        exact_signed = _segment_sums(side * cost, indptr)
    gross = np.bincount(pool, weights=(lots * entry_cents).astype(np.float64), minlength=accounts) * unit_scale
    leverage = np.clip(rng.lognormal(np.log(median_leverage), 0.7, accounts), 1.0, 100.0)
    cash = np.round(gross / leverage).astype(np.int64)
    del signed_cost_sum

    book = ColumnarBook(
        markets=[market_columns(spec, model) for spec in specs],
        pool_account=[f"acct{a}" for a in range(accounts)],
        pool_label=["USDT"] * accounts,
        pool_decimals=np.full(accounts, SETTLE_DECIMALS, dtype=np.int8),
        base_units=cash - exact_signed,
        indptr=indptr,
        entry_market=market,
        entry_lots=side * lots,
        entry_quantity=(side * lots).astype(np.float64) / 10**SIZE_DECIMALS,
    )
    return SyntheticBook(book, prices, specs)


def _segment_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Exact int64 sums of consecutive segments (pool-major entries)."""
    totals = np.cumsum(values, dtype=np.int64)
    ends = totals[indptr[1:] - 1]
    starts = np.concatenate(([0], ends[:-1]))
    return ends - starts
