"""Benchmark of the vectorized screen against a naive loop and the memory-bandwidth floor.

All three are measured on the same seeded synthetic book in the same run:

- ``screen``: one price update moving every market (the worst case: nothing incremental),
  including re-tiering and the exact re-check of close calls;
- ``naive``: a per-account Python loop computing the same equity and maintenance margin; on big
  books it runs on a sample of accounts and is extrapolated by entries (and says so);
- ``memory pass``: one plain NumPy pass copying every column the screen reads — the floor no
  screen can beat on one core.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np

from ..presets import load_preset
from ..screening.screen import Screener
from ..screening.synthetic import synthetic_book


@dataclass(frozen=True)
class ScreeningBenchmark:
    accounts: int
    positions: int
    markets: int
    screen_seconds: float
    incremental_one_market_seconds: float
    naive_seconds: float
    naive_extrapolated: bool
    naive_sample_accounts: int
    memory_pass_seconds: float
    screen_vs_memory_pass: float
    naive_vs_screen: float
    below_maintenance: int
    at_risk: int
    rechecked_exactly: int
    build_seconds: float
    book_megabytes: float

    def as_dict(self) -> dict:
        return asdict(self)


def _best_of(repeat: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def naive_screen(book, prices: np.ndarray, tables, pools: range, warning: float) -> tuple[int, int]:
    """What one would write without columns: a loop over accounts and their positions."""
    below = at_risk = 0
    indptr = book.indptr.tolist()
    market = book.entry_market
    quantity = book.entry_quantity
    base = book.base
    for pool in pools:
        equity = float(base[pool])
        maintenance = 0.0
        for entry in range(indptr[pool], indptr[pool + 1]):
            m = int(market[entry])
            price = float(prices[m])
            q = float(quantity[entry])
            equity += q * price
            notional = abs(q) * price
            floors, rates, deductions = tables[m]
            tier = max(bisect_right(floors, notional) - 1, 0)
            maintenance += notional * rates[tier] - deductions[tier]
        if maintenance > 0 and equity < maintenance:
            below += 1
        if maintenance > 0 and maintenance >= warning * equity:
            at_risk += 1
    return below, at_risk


def run_screening_benchmark(accounts: int, positions: int, *, markets: int = 20, seed: int = 7,
                            preset: str = "binance", market: str = "BTCUSDT", shock: str = "-0.03",
                            naive_budget_seconds: float = 20.0, repeat: int = 3,
                            progress: Callable[[str], None] | None = None) -> ScreeningBenchmark:
    say = progress or (lambda message: None)
    model = load_preset(preset).margin_model(market)
    say(f"building a synthetic book of {accounts:,} accounts and {positions:,} positions")
    start = time.perf_counter()
    synthetic = synthetic_book(accounts, positions, model=model, markets=markets, seed=seed)
    book = synthetic.book
    screener = Screener(book)
    screener.update(synthetic.prices)  # first update: tiers assigned, everything computed
    build_seconds = time.perf_counter() - start

    factor = 1 + Decimal(shock)
    shocked = [{k: (v * factor**(i + 1)).quantize(Decimal("0.01")) for k, v in synthetic.prices.items()}
               for i in range(repeat)]
    say("timing the vectorized screen (every market moves)")
    results = []
    timings = []
    for prices in shocked:
        began = time.perf_counter()
        results.append(screener.update(prices))
        timings.append(time.perf_counter() - began)
    screen_seconds = min(timings)
    result = results[-1]

    say("timing an update that moves one market (incremental path)")
    one = dict(shocked[-1])
    first_market = book.markets[0].symbol
    increments = []
    for step in range(repeat):
        one[first_market] = (one[first_market] * Decimal("1.0001")).quantize(Decimal("0.01"))
        began = time.perf_counter()
        screener.update(one)
        increments.append(time.perf_counter() - began)

    say("timing the memory pass (copying the columns the screen reads)")
    columns = [book.entry_quantity, screener._w.data, screener._s.indices, book.indptr, book.base,
               screener._pool_deduction, screener.equity, screener.maintenance]
    buffers = [np.empty_like(column) for column in columns]

    def memory_pass() -> None:
        for column, buffer in zip(columns, buffers):
            np.copyto(buffer, column)

    memory_seconds = _best_of(repeat, memory_pass)

    say("timing the naive per-account loop")
    price_vector = book.price_vector(shocked[-1])
    tables = [(column.floors.tolist(), column.rates.tolist(), column.deductions.tolist()) for column in book.markets]
    sample = book.pools
    probe = min(book.pools, 2_000)
    began = time.perf_counter()
    naive_screen(book, price_vector, tables, range(probe), 0.8)
    per_entry = (time.perf_counter() - began) / max(int(book.indptr[probe]), 1)
    if per_entry * book.entries > naive_budget_seconds:
        sample = max(probe, int(naive_budget_seconds / 4 / per_entry / max(book.entries / book.pools, 1)))
        sample = min(sample, book.pools)
    began = time.perf_counter()
    naive_screen(book, price_vector, tables, range(sample), 0.8)
    elapsed = time.perf_counter() - began
    extrapolated = sample < book.pools
    naive_seconds = elapsed * book.entries / int(book.indptr[sample]) if extrapolated else elapsed

    return ScreeningBenchmark(
        accounts=accounts,
        positions=positions,
        markets=len(book.markets),
        screen_seconds=screen_seconds,
        incremental_one_market_seconds=min(increments),
        naive_seconds=naive_seconds,
        naive_extrapolated=extrapolated,
        naive_sample_accounts=sample,
        memory_pass_seconds=memory_seconds,
        screen_vs_memory_pass=screen_seconds / memory_seconds,
        naive_vs_screen=naive_seconds / screen_seconds,
        below_maintenance=len(result.below_maintenance),
        at_risk=len(result.at_risk),
        rechecked_exactly=result.rechecked,
        build_seconds=build_seconds,
        book_megabytes=book.nbytes() / 2**20,
    )
