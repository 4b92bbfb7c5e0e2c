"""A columnar book: every position of every margin pool as NumPy columns.

Rows are margin pools (an account's cross pool in one settle asset, or one isolated position);
entries are positions, stored pool-major (CSR: ``indptr`` delimits each pool's entries) so that a
pool's equity and maintenance margin are sparse matrix–vector products over the price vector.

The trick that makes that possible: in every market, a position's value is linear in
``g = P`` (linear contracts) or ``g = −1/P`` (inverse, valued in the coin), and its notional in
``|g|``. So per pool

    equity = base + Σ quantity·g          base = cash + isolated margin − Σ signed cost
    MM     = Σ |quantity|·rate_tier·|g| − Σ deduction_tier

which is two products ``S @ g`` and ``W @ |g|`` of a pools × markets matrix, in one C loop each.
Tier assignments only change when a market's ``|g|`` leaves the band in which no position of
that market changes bracket; the screener re-tiers just those markets.

Exact columns (lots and cost bases in integer units, per-pool base in integer units) are kept
next to the float ones: floats decide what to look at, integers decide what happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from ..core.domain import ContractKind, MarginMode, Market
from ..core.errors import InvalidInput, UnknownName
from ..core.ledger import Ledger
from ..policies.margin import MarginModel

COLLATERAL_PREFIX = "collateral:"  # pseudo-market of a non-settle collateral asset


@dataclass
class MarketColumns:
    """Per-market data: kind, decimals and the maintenance schedule as arrays."""

    symbol: str
    kind: ContractKind
    size_decimals: int
    contract_size: Decimal
    model: MarginModel | None  # None for a collateral pseudo-market (no requirement)
    floors: np.ndarray  # notional floors of the brackets (float64)
    rates: np.ndarray
    deductions: np.ndarray
    haircut: Decimal = Decimal(0)  # collateral pseudo-markets only


@dataclass
class ColumnarBook:
    markets: list[MarketColumns]
    pool_account: list[str]
    pool_label: list[str]  # settle asset (cross pool) or market symbol (isolated pool)
    pool_decimals: np.ndarray  # settle-asset decimals per pool (int8)
    base_units: np.ndarray  # int64 per pool: cash (+ isolated margin) − Σ signed cost, in units
    indptr: np.ndarray  # int64, len pools + 1
    entry_market: np.ndarray  # int32 per entry
    entry_lots: np.ndarray  # int64 per entry, signed (collateral: units of the asset)
    entry_quantity: np.ndarray  # float64 per entry, signed quantity multiplying g
    market_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.market_index = {column.symbol: index for index, column in enumerate(self.markets)}
        self.entry_pool = np.repeat(np.arange(self.pools, dtype=np.int32), np.diff(self.indptr))
        self.base = self.base_units.astype(np.float64) / np.power(10.0, self.pool_decimals.astype(np.float64))

    @property
    def pools(self) -> int:
        return len(self.pool_account)

    @property
    def entries(self) -> int:
        return len(self.entry_market)

    def nbytes(self) -> int:
        arrays = (self.base_units, self.base, self.indptr, self.entry_market, self.entry_lots,
                  self.entry_quantity, self.entry_pool, self.pool_decimals)
        return sum(array.nbytes for array in arrays)

    # ------------------------------------------------------------------ prices

    def price_vector(self, prices: Mapping[str, Decimal | float]) -> np.ndarray:
        """Float prices per market, in book order; every market must be priced."""
        vector = np.empty(len(self.markets), dtype=np.float64)
        for index, column in enumerate(self.markets):
            if column.symbol not in prices:
                raise InvalidInput(f"prices.{column.symbol}", "missing price for a market in the book")
            vector[index] = float(prices[column.symbol])
        return vector

    def g_of(self, prices: np.ndarray) -> np.ndarray:
        """``g`` per market: P for linear markets and collateral, −1/P for inverse ones."""
        inverse = np.array([column.kind is ContractKind.INVERSE for column in self.markets])
        return np.where(inverse, -1.0 / prices, prices)

    # ------------------------------------------------------------------ exact

    def exact_pool(self, pool: int, prices: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
        """Exact (equity, maintenance margin) of one pool from the integer columns."""
        decimals = int(self.pool_decimals[pool])
        equity = Decimal(int(self.base_units[pool])).scaleb(-decimals)
        maintenance = Decimal(0)
        for entry in range(int(self.indptr[pool]), int(self.indptr[pool + 1])):
            column = self.markets[int(self.entry_market[entry])]
            price = prices[column.symbol]
            lots = int(self.entry_lots[entry])
            if column.model is None:  # collateral: units of the asset at price × (1 − haircut)
                equity += Decimal(lots).scaleb(-column.size_decimals) * price * (1 - column.haircut)
                continue
            quantity = Decimal(lots).scaleb(-column.size_decimals) * column.contract_size
            if column.kind is ContractKind.LINEAR:
                equity += quantity * price
                notional = abs(quantity) * price
            else:
                equity -= quantity / price
                notional = abs(quantity) / price
            maintenance += column.model.maintenance_margin(notional, abs(quantity) / column.contract_size)
        return equity, maintenance

    # ------------------------------------------------------------------ building

    @classmethod
    def from_ledger(
        cls,
        ledger: Ledger,
        models: Mapping[str, MarginModel],
        *,
        haircuts: Mapping[str, Decimal] | None = None,
        accounts: Iterable[str] | None = None,
    ) -> ColumnarBook:
        """Columns of every pool of every account in a ledger (or of ``accounts`` only).

        ``models`` maps each market to its margin model; ``haircuts`` lists non-settle assets
        accepted as cross collateral (valued at price × (1 − haircut)).
        """
        haircuts = dict(haircuts or {})
        columns: list[MarketColumns] = []
        index: dict[str, int] = {}
        for symbol, market in ledger.markets.items():
            if symbol not in models:
                raise UnknownName("margin model for market", symbol, list(models))
            index[symbol] = len(columns)
            columns.append(market_columns(market, models[symbol]))
        for asset, haircut in haircuts.items():
            if asset in ledger.assets:
                index[COLLATERAL_PREFIX + asset] = len(columns)
                columns.append(collateral_columns(asset, ledger.assets[asset].decimals, haircut))
        settle_assets = {market.settle for market in ledger.markets.values()}

        pool_account, pool_label, decimals, base, indptr = [], [], [], [], [0]
        e_market, e_lots, e_quantity = [], [], []

        def add_entry(symbol: str, lots: int) -> None:
            column = columns[index[symbol]]
            e_market.append(index[symbol])
            e_lots.append(lots)
            quantity = Decimal(lots).scaleb(-column.size_decimals)
            if column.model is None:
                quantity *= 1 - column.haircut
            else:
                quantity *= column.contract_size
            e_quantity.append(float(quantity))

        chosen = ledger.accounts.values() if accounts is None else [ledger.accounts[a] for a in sorted(accounts)]
        for account in chosen:
            cross: dict[str, list] = {}
            for position in account.open_positions():
                if position.margin_mode is MarginMode.CROSS:
                    cross.setdefault(ledger.markets[position.market].settle, []).append(position)
            settles = set(cross) | {a for a, units in account.balances.items() if units and a in settle_assets}
            for settle in sorted(settles):
                units = account.balance(settle)
                for position in cross.get(settle, []):
                    units -= ledger.signed_cost(position)
                    add_entry(position.market, position.lots)
                for asset, held in sorted(account.balances.items()):
                    if asset != settle and asset in haircuts and held:
                        add_entry(COLLATERAL_PREFIX + asset, held)
                pool_account.append(account.id)
                pool_label.append(settle)
                decimals.append(ledger.assets[settle].decimals)
                base.append(units)
                indptr.append(len(e_market))
            for position in account.open_positions():
                if position.margin_mode is not MarginMode.ISOLATED:
                    continue
                settle = ledger.markets[position.market].settle
                add_entry(position.market, position.lots)
                pool_account.append(account.id)
                pool_label.append(position.market)
                decimals.append(ledger.assets[settle].decimals)
                base.append(position.isolated_margin - ledger.signed_cost(position))
                indptr.append(len(e_market))
        limit = 2**62  # int64 columns; a ledger's exact ints are unbounded
        for values, what in ((base, "pool balance"), (e_lots, "position size")):
            if values and max(abs(min(values)), abs(max(values))) >= limit:
                raise InvalidInput("ledger", f"a {what} exceeds the columnar book's int64 range")
        return cls(
            markets=columns,
            pool_account=pool_account,
            pool_label=pool_label,
            pool_decimals=np.asarray(decimals, dtype=np.int8),
            base_units=np.asarray(base, dtype=np.int64),
            indptr=np.asarray(indptr, dtype=np.int64),
            entry_market=np.asarray(e_market, dtype=np.int32),
            entry_lots=np.asarray(e_lots, dtype=np.int64),
            entry_quantity=np.asarray(e_quantity, dtype=np.float64),
        )


def market_columns(market: Market, model: MarginModel) -> MarketColumns:
    table = model.maintenance_table()
    return MarketColumns(
        symbol=market.symbol,
        kind=market.kind,
        size_decimals=market.size_decimals,
        contract_size=market.contract_size,
        model=model,
        floors=np.array([float(row[0]) for row in table]),
        rates=np.array([float(row[1]) for row in table]),
        deductions=np.array([float(row[2]) for row in table]),
    )


def collateral_columns(asset: str, decimals: int, haircut: Decimal) -> MarketColumns:
    return MarketColumns(
        symbol=COLLATERAL_PREFIX + asset,
        kind=ContractKind.LINEAR,
        size_decimals=decimals,
        contract_size=Decimal(1),
        model=None,
        floors=np.zeros(1),
        rates=np.zeros(1),
        deductions=np.zeros(1),
        haircut=haircut,
    )
