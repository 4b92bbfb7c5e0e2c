"""The engine's candidate filter on big books: which holders to value exactly after a price update.

After a price update the engine must find every account whose margin call or liquidation status
may have changed. Valuing every holder exactly is what a small book does; a big one asks this
screen, which splits the accounts in two:

- **single-position pools** (the bulk of a retail book): a cross pool with one position, and
  every isolated position (a pool of its own, its isolated margin for cash), changes status only
  where its price crosses one of a few breakpoints (:mod:`solvent.screening.thresholds`). They
  are kept sorted per market, so a move from ``P0`` to ``P1`` returns the pools with a breakpoint
  in between at the cost of a ``searchsorted``: accounts nowhere near a threshold cost nothing,
  however many there are, and accounts already in a margin call are not re-valued while the price
  stays between their warning and their liquidation price. An isolated pool is screened under
  the convention of the venue listing its market: the brackets at the price, or a maintenance
  margin fixed at the entry value (Bybit);
- **everything else** (several positions in one cross pool): screened by the vectorized float
  valuation (:class:`~solvent.screening.Screener`) over a columnar copy of those accounts, or
  valued exactly when they are few. One that also holds isolated positions (which the columnar
  copy does not value) is valued at every update.

Every account the ledger touched since the last update has its entries redone from the ledger,
and is valued when floats put it at risk at the current marks or the engine holds one of its pools
in a margin call; the accounts in liquidation are always valued. Floats decide what to look at;
the exact path decides what happens.

The breakpoints depend only on what the ledger holds, not on prices; they rely on the engine's
invariant that after every command each account's margin-call and liquidation status matches the
current marks (every command that changes an account evaluates it, or leaves it touched).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from ..core.domain import ContractKind, MarginMode
from ..core.errors import InvalidInput
from ..screening import ColumnarBook, Screener
from ..screening.thresholds import MarketSchedule, ThresholdIndex, at_risk, breakpoints
from .pipeline import isolated_pool_id

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

EXACT_COMPLEX_UP_TO = 256  # below this many multi-position accounts, value them all exactly


class SinglePositionPools:
    """Single-position pools of one market as float columns: ``base_units`` (the pool's cash,
    the wallet's for a cross pool and the isolated margin for an isolated one, less the signed
    cost, in units of the settle asset), signed ``lots`` and each pool's warning ratio.

    ``fixed_maintenance``: each pool's maintenance margin (settle asset) where it does not move
    with the price (an isolated pool valued at its entry price, as Bybit does); the pools are then
    screened against it instead of the market's brackets."""

    def __init__(self, engine: Engine, key: str, base_units: list[int], lots: list[int], warning: list[float],
                 fixed_maintenance: list[float] | None = None):
        ledger = engine.ledger
        market = ledger.markets[key]
        self.engine, self.key = engine, key
        self.schedule = engine.schedule(key)
        self.deductions: np.ndarray | None = None
        self.rates: np.ndarray | None
        if fixed_maintenance is not None:
            self.schedule = MarketSchedule.fixed(self.schedule.inverse)
            self.rates = np.zeros(len(lots))
            self.deductions = -np.array(fixed_maintenance, dtype=np.float64)
        elif self.schedule.size_dependent:
            self.rates = self.schedule.size_rates([abs(market.size_of(units)) for units in lots])
        else:
            self.rates = None
        self.base = np.array(base_units, dtype=np.float64) / 10.0 ** ledger.assets[market.settle].decimals
        self.quantity = np.array(lots, dtype=np.float64) / 10.0 ** market.size_decimals * float(market.contract_size)
        self.warning = np.array(warning, dtype=np.float64)

    def breakpoints(self) -> tuple[np.ndarray, np.ndarray]:
        return breakpoints(self.schedule, self.base, self.quantity, self.warning, self.rates, self.deductions)

    def at_risk_now(self) -> list[int]:
        """Rows at (or within a float margin of) a margin call or liquidation at the current mark."""
        mark = float(self.engine.marks[self.key])
        risky = at_risk(self.schedule, self.base, self.quantity, np.minimum(self.warning, 1.0),
                        1.0 / mark if self.schedule.inverse else mark, self.rates, deductions=self.deductions)
        return np.flatnonzero(risky).tolist()


class EngineScreen:
    def __init__(self, engine: Engine, *, stale_fraction: float = 0.05):
        self.engine = engine
        self.stale_fraction = stale_fraction
        self.index: ThresholdIndex | None = None
        self.complex: set[str] = set()  # accounts the index cannot hold
        self.always: set[str] = set()  # ... nor the columnar screen (isolated positions beside a complex cross pool)
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
        """(Re-)enter accounts: their single-position pools (a cross pool with one position, each
        isolated position) into the index, the accounts with a several-position cross pool to
        ``complex`` (or, if they also hold isolated positions, to ``always``).

        Returns those whose status may differ from what the engine recorded: every complex one,
        the ones with a pool at risk at the current marks (by floats, with a margin), and the
        ones with a pool the engine has in a margin call or in liquidation.
        """
        engine, ledger, index = self.engine, self.engine.ledger, self.index
        assert index is not None
        settles = ledger.settle_assets
        margin_called, liquidating = engine.margin_called, engine.liquidating
        recorded = margin_called or liquidating  # anyone in a margin call or liquidation
        found: set[str] = set()
        # (market, fixed maintenance?) → owners, base units, lots, warning ratios, fixed maintenance
        rows: dict[tuple[str, bool], tuple[list, list, list, list, list]] = {}
        warnings: dict[str, float] = {}  # venue → its warning ratio
        accounts_of, home_venue, markets = ledger.accounts, engine.home_venue, ledger.markets
        complex_accounts, always = self.complex, self.always

        def enter(market: str, account: str, base_units: int, lots: int, warning: float, fixed: float | None) -> None:
            entry = rows.get((market, fixed is not None))
            if entry is None:
                entry = rows[(market, fixed is not None)] = ([], [], [], [], [])
            entry[0].append(account)
            entry[1].append(base_units)
            entry[2].append(lots)
            entry[3].append(warning)
            entry[4].append(fixed)

        for account in accounts:
            index.remove(account)
            complex_accounts.discard(account)
            always.discard(account)
            holder = accounts_of.get(account)
            venue_name = home_venue.get(account)
            if holder is None or venue_name is None or engine.is_protocol(account):
                continue
            by_settle: dict[str, list] = {}
            isolated = []
            for position in holder.positions.values():
                if position.margin_mode is MarginMode.ISOLATED:
                    isolated.append(position)
                elif position.lots:
                    by_settle.setdefault(markets[position.market].settle, []).append(position)
            if recorded:  # a pool recorded as called or in liquidation: look again
                pools = [*settles, *(isolated_pool_id(position.market, position.hedge_side) for position in isolated)]
                if any((account, pool) in margin_called or (account, pool) in liquidating for pool in pools):
                    found.add(account)
            if any(len(positions) > 1 for positions in by_settle.values()):
                found.add(account)
                if isolated:  # the columnar screen values cross pools only: value the account every time
                    always.add(account)
                else:
                    complex_accounts.add(account)
                    self.complex_stale.add(account)
                continue
            if not by_settle and not any(position.lots for position in isolated):
                index.replace(account, [])
            warning = warnings.get(venue_name)
            if warning is None:
                warning = warnings[venue_name] = float(engine.venues[venue_name].rules.warning_ratio)
            for settle, (position,) in by_settle.items():
                enter(position.market, account, holder.balance(settle) - ledger.signed_cost(position),
                      position.lots, warning, None)
            for position in isolated:
                if position.lots:
                    enter(position.market, account, position.isolated_margin - ledger.signed_cost(position),
                          position.lots, *self._isolated_terms(position))
        for (key, is_fixed), (owners, units, sizes, ratios, maintenance) in rows.items():
            columns = SinglePositionPools(engine, key, units, sizes, ratios, maintenance if is_fixed else None)
            points, which = columns.breakpoints()
            index.add_many(key, owners, points, which, merge=len(owners) > index.merge_above)
            found.update(owners[row] for row in columns.at_risk_now())
        return found

    def _isolated_terms(self, position) -> tuple[float, float | None]:
        """(warning ratio, fixed maintenance margin or None) of an isolated position's pool, under
        the venue listing its market (see :func:`~solvent.engine.pipeline.isolated_pool`)."""
        engine = self.engine
        venue = engine.venue_of_market(position.market)
        warning = float(venue.rules.warning_ratio)
        if venue.preset.liquidation_price_rule.maintenance_at != "entry":
            return warning, None
        market = engine.ledger.markets[position.market]
        entry_value = engine.ledger.amount(market.settle, position.cost)
        return warning, float(engine.model(position.market).maintenance_margin(
            entry_value, market.size_of(abs(position.lots))))

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

    def _build(self, leave_out: frozenset[str] = frozenset()) -> set[str]:
        """A new index of every account of the ledger (but ``leave_out``); returns what
        :meth:`_enter` found."""
        ledger = self.engine.ledger
        self.index = ThresholdIndex()
        self.complex, self.complex_stale, self.always = set(), set(), set()
        self.book = self.screener = None
        ledger.touched.clear()
        self.rebuilds += 1
        return self._enter([account for account in ledger.accounts if account not in leave_out])

    def enter_opened(self, key: str, accounts: tuple[str, ...], pools: SinglePositionPools) -> set[str]:
        """Accounts that ``OpenPositions`` just created, each holding one cross position on ``key``,
        entered in bulk from the ``pools`` the command built (instead of one by one at the next
        price update); the index is built first if there is none. Returns the accounts that build
        found to value (the command values the new ones its pools put at risk)."""
        found = self._build(frozenset(accounts)) if self.index is None else set()
        assert self.index is not None
        points, which = pools.breakpoints()
        self.index.add_many(key, list(accounts), points, which, merge=len(accounts) > self.index.merge_above)
        self.engine.ledger.touched.difference_update(accounts)
        return found

    def candidates(self, moved: Iterable[str]) -> set[str] | None:
        """Accounts that may have changed status now that the markets ``moved`` have new marks
        (their previous marks are the engine's ``previous_marks``); None when the screen cannot
        tell (a market without a previous mark): the engine then values every holder exactly."""
        engine = self.engine
        ledger = engine.ledger
        moved = list(moved)
        if any(key not in engine.previous_marks for key in moved):
            return None
        found = self._build() if self.index is None else set()
        index = self.index
        assert index is not None  # built above
        touched = sorted(ledger.touched)
        ledger.touched.clear()
        found |= self._enter(touched)
        for key in moved:
            before, after = float(engine.previous_marks[key]), float(engine.marks[key])
            if ledger.markets[key].kind is ContractKind.INVERSE:  # breakpoints are in x = 1/P
                before, after = 1.0 / before, 1.0 / after
            found |= index.crossed(key, before, after)
        complex_found = self._complex_candidates()
        if complex_found is None:
            return None
        found |= complex_found
        return found | self.always
