"""The screener: on each price update, every pool's equity and maintenance margin in NumPy.

Per update:

1. ``g`` per market from the prices (P, or −1/P for inverse markets);
2. for markets whose price left their tier band, re-tier their entries (vectorized per market);
3. equity and maintenance margin of every pool, either in full (two sparse products over all
   entries) or, when few markets moved, incrementally from those markets' entries only;
4. classify: below maintenance (equity < MM), at risk (MM/equity >= warning ratio);
5. re-check exactly (Decimal, from the integer columns) every pool whose float result lies
   within a relative ``margin`` of either threshold, and let the exact answer decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..core.numbers import positive
from ..policies.margin import SizePremium
from .book import ColumnarBook

# Float sums of a pool's entries carry a relative error far below this; anything this close to
# a threshold is decided by the exact path.
DEFAULT_RECHECK_MARGIN = 1e-9


@dataclass(frozen=True)
class ScreenResult:
    below_maintenance: np.ndarray  # pool indices, exact
    at_risk: np.ndarray  # pool indices at or above the warning margin ratio (includes the above)
    equity: np.ndarray  # float64 per pool
    maintenance: np.ndarray  # float64 per pool
    rechecked: int  # pools decided by the exact path
    retiered_markets: int
    incremental: bool


class Screener:
    """Keeps a book's per-pool equity and maintenance margin current as prices move.

    Each market's entries are kept ordered by size (largest first). At a given ``|g|`` the
    entries in bracket ``k`` or above are a prefix of that order, found by one ``searchsorted``
    per bracket floor; when the price moves, only the entries between the old and the new
    boundaries change bracket, so re-tiering costs the crossings, not the market.
    """

    def __init__(self, book: ColumnarBook, *, warning_ratio: Decimal | str = "0.8",
                 recheck_margin: float = DEFAULT_RECHECK_MARGIN, incremental_threshold: float = 0.35,
                 full_every: int = 64):
        self.book = book
        self.warning_ratio = positive(warning_ratio, "warning_ratio")
        self._warning = float(self.warning_ratio)
        self.recheck_margin = recheck_margin
        self.incremental_threshold = incremental_threshold
        self.full_every = full_every  # bound the float drift of incremental updates
        self._since_full = 0
        from scipy import sparse  # imported when a screen is built: it costs a third of a second

        n_markets = len(book.markets)
        indices = book.entry_market
        shape = (book.pools, n_markets)
        self._abs_quantity = np.abs(book.entry_quantity)
        self._entry_deduction = np.zeros(book.entries, dtype=np.float64)
        # The two matrices share the index arrays; only their values differ.
        self._s = sparse.csr_matrix((book.entry_quantity, indices, book.indptr), shape=shape, copy=False)
        self._w = sparse.csr_matrix((np.zeros(book.entries), indices, book.indptr), shape=shape, copy=False)
        # Market-major index, each market's entries ordered by |quantity| descending.
        order = np.lexsort((-self._abs_quantity, indices))
        bounds = np.searchsorted(indices[order], np.arange(n_markets + 1))
        self._market_entries = [order[bounds[m]:bounds[m + 1]] for m in range(n_markets)]
        self._market_pools = [book.entry_pool[entries] for entries in self._market_entries]
        self._neg_sorted_quantity = [-self._abs_quantity[entries] for entries in self._market_entries]
        self._boundaries: list[np.ndarray | None] = [None] * n_markets
        self._size_rates = {
            m: self._size_premium_rates(m) for m, column in enumerate(book.markets)
            if isinstance(column.model, SizePremium) and column.model.imf_factor
        }
        self._pool_deduction = np.zeros(book.pools)
        self._g: np.ndarray | None = None
        self.equity = np.zeros(book.pools)
        self.maintenance = np.zeros(book.pools)

    def _size_premium_rates(self, market: int) -> np.ndarray:
        column = self.book.markets[market]
        entries = self._market_entries[market]
        rates = np.empty(len(entries))
        for i, entry in enumerate(entries):  # a size-dependent rate only changes with the size
            size = abs(Decimal(int(self.book.entry_lots[entry])).scaleb(-column.size_decimals))
            rates[i] = float(column.model.maintenance_line(Decimal(0), size)[0])  # type: ignore[union-attr]
        return rates

    # ------------------------------------------------------------------ tiers

    def _tier_boundaries(self, market: int, abs_g: float) -> np.ndarray:
        """For each floor above the first: how many entries (largest first) reach it."""
        floors = self.book.markets[market].floors[1:]
        return np.searchsorted(self._neg_sorted_quantity[market], -(floors / abs_g), side="right")

    def _retier(self, market: int, abs_g: float, old_abs_g: float | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Bring the market's entries to their brackets at ``abs_g``.

        Returns the entries that changed bracket with the change of their maintenance at the
        old price (for incremental updates), or None when nothing changed.
        """
        column = self.book.markets[market]
        entries = self._market_entries[market]
        new = self._tier_boundaries(market, abs_g)
        old = self._boundaries[market]
        self._boundaries[market] = new
        if old is None:  # first assignment: every entry of the market
            low, high = 0, len(entries)
        else:
            changed = np.flatnonzero(old != new)
            if len(changed) == 0:
                return None
            low = int(min(old[changed].min(), new[changed].min()))
            high = int(max(old[changed].max(), new[changed].max()))
        span = entries[low:high]
        if len(span) == 0:
            return None
        # Bracket of the entry at sorted position i: the number of boundaries beyond i.
        positions = np.arange(low, high)
        tier = (positions[:, None] < new[None, :]).sum(axis=1) if len(new) else np.zeros(len(span), dtype=np.int64)
        rate = self._size_rates[market][low:high] if market in self._size_rates else column.rates[tier]
        w_new = self._abs_quantity[span] * rate
        d_new = column.deductions[tier]
        w_old = self._w.data[span].copy()
        d_old = self._entry_deduction[span]
        self._w.data[span] = w_new
        self._entry_deduction[span] = d_new
        pools = self._market_pools[market][low:high]
        if old is None:
            self._pool_deduction += np.bincount(pools, weights=d_new, minlength=self.book.pools)
            return None
        np.add.at(self._pool_deduction, pools, d_new - d_old)
        correction = (w_new - w_old) * (old_abs_g or 0.0) - (d_new - d_old)
        return pools, correction

    # ------------------------------------------------------------------ update

    def update(self, prices: Mapping[str, Decimal]) -> ScreenResult:
        """Screen the whole book at these prices (every market of the book must be priced)."""
        exact_prices = {symbol: positive(price, f"prices.{symbol}") for symbol, price in prices.items()}
        g = self.book.g_of(self.book.price_vector(exact_prices))
        abs_g = np.abs(g)
        previous = self._g
        moved = np.arange(len(g)) if previous is None else np.flatnonzero(g != previous)
        moved_entries = sum(len(self._market_entries[m]) for m in moved)
        incremental = (previous is not None and self._since_full < self.full_every
                       and moved_entries < self.incremental_threshold * self.book.entries)
        self._since_full = self._since_full + 1 if incremental else 0
        retiered = 0
        corrections = []
        for market in moved:
            old_abs = None if previous is None else float(abs(previous[market]))
            change = self._retier(int(market), float(abs_g[market]), old_abs)
            if change is not None:
                retiered += 1
                corrections.append(change)
        if incremental:
            for market in moved:
                entries = self._market_entries[market]
                pools = self._market_pools[market]
                dg = g[market] - previous[market]  # type: ignore[index]
                dabs = abs_g[market] - abs(previous[market])  # type: ignore[index]
                self.equity += np.bincount(pools, weights=self.book.entry_quantity[entries] * dg, minlength=self.book.pools)
                self.maintenance += np.bincount(pools, weights=self._w.data[entries] * dabs, minlength=self.book.pools)
            for pools, correction in corrections:
                np.add.at(self.maintenance, pools, correction)
        else:
            np.add(self.book.base, self._s @ g, out=self.equity)
            np.subtract(self._w @ abs_g, self._pool_deduction, out=self.maintenance)
        self._g = g
        return self._classify(exact_prices, retiered, incremental)

    def _classify(self, prices: Mapping[str, Decimal], retiered: int, incremental: bool) -> ScreenResult:
        equity, maintenance = self.equity, self.maintenance
        has_requirement = maintenance > 0
        below = has_requirement & (equity < maintenance)
        at_risk = has_requirement & (maintenance >= self._warning * equity)
        # Close calls on either threshold go to the exact path.
        scale = np.abs(equity) + np.abs(maintenance) + 1.0
        tolerance = self.recheck_margin * scale
        near = (np.abs(equity - maintenance) <= tolerance) | (np.abs(maintenance - self._warning * equity) <= tolerance)
        near_pools = np.flatnonzero(near)
        for pool in near_pools:
            exact_equity, exact_maintenance = self.book.exact_pool(int(pool), prices)
            requirement = exact_maintenance > 0
            below[pool] = requirement and exact_equity < exact_maintenance
            at_risk[pool] = requirement and exact_maintenance >= self.warning_ratio * exact_equity
        return ScreenResult(
            below_maintenance=np.flatnonzero(below),
            at_risk=np.flatnonzero(at_risk),
            equity=equity,
            maintenance=maintenance,
            rechecked=len(near_pools),
            retiered_markets=retiered,
            incremental=incremental,
        )


