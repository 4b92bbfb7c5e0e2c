"""The vectorized screen as the engine's candidate filter on big books.

On a price update the engine must find the accounts that crossed a warning ratio or maintenance.
With many holders it asks the screen (:mod:`solvent.screening`): floats over a columnar copy of
the ledger pick the pools at risk, and the engine then values exactly only those, plus every
account the ledger touched since the copy was made (its row is stale), plus the accounts already
in a margin call or in liquidation. Floats decide what to look at; the exact path decides what
happens. The copy is rebuilt when too many rows have gone stale.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..core.errors import InvalidInput
from ..screening import ColumnarBook, Screener

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine


class EngineScreen:
    def __init__(self, engine: "Engine", *, stale_fraction: float = 0.05):
        self.engine = engine
        self.stale_fraction = stale_fraction
        self.book: ColumnarBook | None = None
        self.screener: Screener | None = None
        self.rebuilds = 0

    def _prices(self) -> dict[str, Decimal]:
        # Markets without a mark hold no position (fills need a mark): any positive price will do.
        return {key: self.engine.marks.get(key, Decimal(1)) for key in self.engine.ledger.markets}

    def _warning_ratio(self) -> Decimal:
        # The lowest warning ratio of any venue: everything a venue may call or liquidate is at risk.
        ratios = [venue.rules.warning_ratio for venue in self.engine.venues.values()]
        return min(min(ratios, default=Decimal("0.8")), Decimal(1))

    def rebuild(self) -> None:
        ledger = self.engine.ledger
        self.book = ColumnarBook.from_ledger(ledger, {key: self.engine.model(key) for key in ledger.markets})
        self.screener = Screener(self.book, warning_ratio=self._warning_ratio())
        ledger.touched.clear()
        self.rebuilds += 1

    def candidates(self) -> set[str] | None:
        """Accounts whose pools the screen finds at risk, plus every account with a stale row;
        None when the ledger cannot be screened (a balance beyond the columns' int64 range): the
        engine then values every holder exactly."""
        ledger = self.engine.ledger
        stale = len(ledger.touched) > self.stale_fraction * max(len(ledger.accounts), 1)
        if self.book is None or stale or len(self.book.markets) != len(ledger.markets):
            try:
                self.rebuild()
            except InvalidInput:
                self.book = self.screener = None
                return None
        assert self.screener is not None and self.book is not None
        result = self.screener.update(self._prices())
        at_risk = {self.book.pool_account[int(pool)] for pool in result.at_risk}
        return at_risk | set(ledger.touched)
