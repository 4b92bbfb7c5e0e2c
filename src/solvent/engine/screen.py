"""The engine's candidate filter on big books: which holders to value exactly after a price update.

After a price update the engine must find every account whose margin call or liquidation status
may have changed. Valuing every holder exactly is what a small book does; a big one asks this
screen, which splits the accounts in two:

- **single-position pools** (the bulk of a retail book): a pool with one cross position changes
  status only where its price crosses one of a few breakpoints (:mod:`solvent.screening.thresholds`).
  They are kept sorted per market, so a move from ``P0`` to ``P1`` returns the pools with a
  breakpoint in between at the cost of a ``searchsorted``: accounts nowhere near a threshold cost
  nothing, however many there are, and accounts already in a margin call are not re-valued while
  the price stays between their warning and their liquidation price;
- **accounts with an isolated position** (``engine.isolated_accounts``): always candidates. An
  isolated pool is valued under its venue's own convention (Bybit's maintenance at the entry
  price), which the float schedules do not model, so none of them is left to floats;
- **everything else** (several positions in one cross pool): screened by the vectorized float
  valuation (:class:`~solvent.screening.Screener`) over a columnar copy of those accounts, or
  valued exactly when they are few.

Plus, always: every account the ledger touched since the last update (its entries are redone from
the ledger here, and it is valued exactly this time), and the accounts in liquidation. Floats
decide what to look at; the exact path decides what happens.

The breakpoints depend only on what the ledger holds, not on prices; they rely on the engine's
invariant that after every command each account's margin-call and liquidation status matches the
current marks (every command that changes an account evaluates it, or leaves it touched).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..core.domain import ContractKind, MarginMode
from ..core.errors import InvalidInput
from ..screening import ColumnarBook, Screener
from ..screening.thresholds import ThresholdIndex, at_risk, breakpoints

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

EXACT_COMPLEX_UP_TO = 256  # below this many multi-position accounts, value them all exactly


class SinglePositionPools:
    """Single-position cross pools of one market as float columns: ``base_units`` (cash less the
    signed cost, in units of the settle asset), signed ``lots`` and each pool's warning ratio."""

    def __init__(self, engine: "Engine", key: str, base_units: list[int], lots: list[int], warning: list[float]):
        ledger = engine.ledger
        market = ledger.markets[key]
        self.engine, self.key = engine, key
        self.schedule = engine.schedule(key)
        self.rates = self.schedule.size_rates([abs(market.size_of(units)) for units in lots]) \
            if self.schedule.size_dependent else None
        self.base = np.array(base_units, dtype=np.float64) / 10.0 ** ledger.assets[market.settle].decimals
        self.quantity = np.array(lots, dtype=np.float64) / 10.0 ** market.size_decimals * float(market.contract_size)
        self.warning = np.array(warning, dtype=np.float64)

    def at_risk_now(self) -> list[int]:
        """Rows at (or within a float margin of) a margin call or liquidation at the current mark."""
        mark = float(self.engine.marks[self.key])
        risky = at_risk(self.schedule, self.base, self.quantity, np.minimum(self.warning, 1.0),
                        1.0 / mark if self.schedule.inverse else mark, self.rates)
        return np.flatnonzero(risky).tolist()


class EngineScreen:
    def __init__(self, engine: "Engine", *, stale_fraction: float = 0.05):
        self.engine = engine
        self.stale_fraction = stale_fraction
        self.index: ThresholdIndex | None = None
        self.complex: set[str] = set()  # accounts the index cannot hold
        self.complex_stale: set[str] = set()  # complex accounts changed since the columnar copy
        self.book: ColumnarBook | None = None  # columnar copy of the complex accounts
        self.screener: Screener | None = None
        self.rebuilds = 0

    def invalidate(self) -> None:
        """Margin tables or rules changed: start over on the next update."""
        self.index = None
        self.book = self.screener = None

    # ------------------------------------------------------------------ single-position pools

    def _enter(self, accounts: Iterable[str]) -> set[str]:
        """(Re-)enter accounts: single-position pools into the index, the others to ``complex``.

        Returns those whose status may differ from what the engine recorded: every complex one,
        the single-position ones that are at risk at the current marks (by floats, with a
        margin), and the ones the engine has in a margin call or in liquidation.
        """
        engine, ledger, index = self.engine, self.engine.ledger, self.index
        assert index is not None
        settles = ledger.settle_assets
        recorded = engine.margin_called or engine.liquidating  # anyone in a margin call or liquidation
        isolated = engine.isolated_accounts
        found: set[str] = set()
        rows: dict[str, tuple[list, list, list, list, list]] = {}  # market → owners, base, qty, w, sizes
        for account in accounts:
            index.remove(account)
            self.complex.discard(account)
            holder = ledger.accounts.get(account)
            if holder is None or engine.is_protocol(account) or account not in engine.home_venue:
                continue
            if account in isolated:  # a candidate at every update (see candidates)
                found.add(account)
                continue
            if recorded and any((account, settle) in engine.margin_called or (account, settle) in engine.liquidating
                                for settle in settles):  # recorded as called or in liquidation: look again
                found.add(account)
            by_settle: dict[str, list] = {}
            single = True
            for position in holder.positions.values():
                if not position.lots:
                    continue
                if position.margin_mode is not MarginMode.CROSS:
                    single = False
                    break
                settle = ledger.markets[position.market].settle
                by_settle.setdefault(settle, []).append(position)
                if len(by_settle[settle]) > 1:
                    single = False
                    break
            if not single:
                self.complex.add(account)
                self.complex_stale.add(account)
                found.add(account)
                continue
            warning = float(engine.venues[engine.home_venue[account]].rules.warning_ratio)
            if not by_settle:
                index.replace(account, [])
            for settle, (position,) in by_settle.items():
                entry = rows.setdefault(position.market, ([], [], [], []))
                entry[0].append(account)
                entry[1].append(holder.balance(settle) - ledger.signed_cost(position))  # units of the settle asset
                entry[2].append(position.lots)
                entry[3].append(warning)
        for key, (owners, base_units, lots, warning) in rows.items():
            pools = SinglePositionPools(engine, key, base_units, lots, warning)
            points, which = breakpoints(pools.schedule, pools.base, pools.quantity, pools.warning, pools.rates)
            index.add_many(key, owners, points, which, merge=len(owners) > index.merge_above)
            found.update(owners[row] for row in pools.at_risk_now())
        return found

    # ------------------------------------------------------------------ the rest

    def _complex_candidates(self) -> set[str] | None:
        engine = self.engine
        if len(self.complex) <= EXACT_COMPLEX_UP_TO:
            return set(self.complex)
        if self.book is None or len(self.complex_stale) > self.stale_fraction * len(self.complex):
            ledger = engine.ledger
            try:
                self.book = ColumnarBook.from_ledger(ledger, {key: engine.model(key) for key in ledger.markets},
                                                     accounts=self.complex)
            except InvalidInput:  # a balance beyond the columns' int64 range: value them all
                self.book = self.screener = None
                return set(self.complex)
            self.screener = Screener(self.book, warning_ratio=self._warning_ratio())
            self.complex_stale.clear()
        assert self.screener is not None and self.book is not None
        prices = {key: engine.marks.get(key, Decimal(1)) for key in engine.ledger.markets}
        result = self.screener.update(prices)
        called = {account for account, _ in engine.margin_called if account in self.complex}
        return {self.book.pool_account[int(pool)] for pool in result.at_risk} | called | self.complex_stale

    def _warning_ratio(self) -> Decimal:
        # The lowest warning ratio of any venue: everything a venue may call or liquidate is at risk.
        ratios = [venue.rules.warning_ratio for venue in self.engine.venues.values()]
        return min(min(ratios, default=Decimal("0.8")), Decimal(1))

    # ------------------------------------------------------------------ entry point

    def candidates(self, moved: Iterable[str]) -> set[str] | None:
        """Accounts that may have changed status now that the markets ``moved`` have new marks
        (their previous marks are the engine's ``previous_marks``); None when the screen cannot
        tell (a market without a previous mark): the engine then values every holder exactly."""
        engine = self.engine
        ledger = engine.ledger
        moved = list(moved)
        if any(key not in engine.previous_marks for key in moved):
            return None
        if self.index is None:
            self.index = ThresholdIndex()
            self.complex, self.complex_stale = set(), set()
            self.book = self.screener = None
            ledger.touched.clear()
            found = self._enter(list(ledger.accounts))
            self.rebuilds += 1
        else:
            found = set()
        touched = sorted(ledger.touched)
        ledger.touched.clear()
        found |= self._enter(touched)
        for key in moved:
            before, after = float(engine.previous_marks[key]), float(engine.marks[key])
            if ledger.markets[key].kind is ContractKind.INVERSE:  # breakpoints are in x = 1/P
                before, after = 1.0 / before, 1.0 / after
            found |= self.index.crossed(key, before, after)
        complex_found = self._complex_candidates()
        if complex_found is None:
            return None
        found |= complex_found
        if engine.isolated_accounts:
            found |= engine.isolated_accounts
        return found
