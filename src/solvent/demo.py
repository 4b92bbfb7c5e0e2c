"""The demo: a synthetic book traded through the ledger, screened after a price shock.

Every trader trades against one well-capitalized market maker per market, so open interest nets
to zero and the ledger's conservation check is meaningful. The book goes through the whole stack:
ledger → columnar book → vectorized screen → exact margin and liquidation prices of the pools
the screen flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .core.domain import MarginMode, Side
from .core.errors import InvalidInput
from .core.ledger import ConservationReport, Ledger
from .policies.account import PoolMargin, account_margin
from .presets import Preset
from .screening import ColumnarBook, Screener

# Illustrative marks for the demo's markets, by base asset (USD).
DEMO_MARKS = {"BTC": "65000", "XBT": "65000", "ETH": "2500", "SOL": "150", "DOGE": "0.12", "ZEC": "40"}


@dataclass(frozen=True)
class DemoResult:
    preset: Preset
    accounts: int
    positions: int
    marks: dict[str, Decimal]
    shocked: dict[str, Decimal]
    below_maintenance: list[PoolMargin]
    at_risk: list[PoolMargin]
    rechecked: int
    conservation: ConservationReport


def build_population(preset: Preset, accounts: int, seed: int = 1) -> tuple[Ledger, dict[str, Decimal]]:
    """A ledger of ``accounts`` leveraged traders (1–4 positions each) and their market makers."""
    if not preset.markets:
        raise InvalidInput("preset", f"{preset.name} has no perpetual markets to build a book on "
                           "(the demo screens perpetual venues)")
    ledger = Ledger()
    for asset in preset.assets.values():
        ledger.add_asset(asset)
    markets = [m for m in preset.markets.values()]
    for market in markets:
        ledger.add_market(market)
    marks = {m.symbol: Decimal(DEMO_MARKS.get(m.base, "100")) for m in markets}
    rng = np.random.default_rng(seed)
    for market in markets:
        maker = f"maker:{market.symbol}"
        ledger.open_account(maker)
        deposit = Decimal(10) ** 9 if market.kind.value == "linear" else Decimal(10) ** 5
        ledger.deposit(maker, market.settle, deposit)
    positions = 0
    for index in range(accounts):
        trader = f"trader{index:06d}"
        ledger.open_account(trader)
        chosen = rng.choice(len(markets), size=min(len(markets), int(rng.integers(1, 5))), replace=False)
        leverage = Decimal(str(round(float(np.clip(rng.lognormal(np.log(8), 0.6), 1.5, 45)), 1)))
        deposits: dict[str, Decimal] = {}
        trades = []
        for m in chosen:
            market = markets[int(m)]
            mark = marks[market.symbol]
            notional = Decimal(str(round(float(np.clip(rng.lognormal(np.log(3000), 1.1), 50, 2e6)), 2)))
            entry = (mark * Decimal(str(round(float(np.exp(rng.normal(0, 0.02))), 4)))).quantize(Decimal("0.01"))
            lot = Decimal(1).scaleb(-market.size_decimals)
            if market.kind.value == "linear":
                size = max((notional / entry).quantize(lot), lot)
                margin = size * entry * market.contract_size / leverage
            else:  # inverse: contracts of contract_size USD, margin in the coin
                size = max((notional / market.contract_size).quantize(lot), lot)
                margin = size * market.contract_size / entry / leverage
            deposits[market.settle] = deposits.get(market.settle, Decimal(0)) + margin
            trades.append((market, size, entry, Side.LONG if rng.random() < 0.55 else Side.SHORT))
        for settle, amount in deposits.items():
            unit = Decimal(1).scaleb(-ledger.assets[settle].decimals)
            ledger.deposit(trader, settle, max(amount.quantize(unit), unit))
        for market, size, entry, side in trades:
            maker = f"maker:{market.symbol}"
            buyer, seller = (trader, maker) if side is Side.LONG else (maker, trader)
            ledger.apply_trade(buyer, seller, market.symbol, size, entry,
                               buyer_mode=MarginMode.CROSS, seller_mode=MarginMode.CROSS)
            positions += 1
    return ledger, marks


def run_demo(preset: Preset, *, accounts: int = 20_000, shock: Decimal = Decimal("-0.08"), seed: int = 1,
             warning_ratio: str = "0.8") -> DemoResult:
    ledger, marks = build_population(preset, accounts, seed)
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    book = ColumnarBook.from_ledger(ledger, models)
    screener = Screener(book, warning_ratio=warning_ratio)
    screener.update(marks)
    shocked = {symbol: price * (1 + shock) for symbol, price in marks.items()}
    result = screener.update(shocked)

    def exact(pool: int) -> PoolMargin:
        pools = account_margin(ledger, book.pool_account[pool], models=models.__getitem__, marks=shocked,
                               rule=preset.liquidation_price_rule)
        return next(p for p in pools if (p.isolated_market or p.settle) == book.pool_label[pool])

    traders = [int(p) for p in result.at_risk if not book.pool_account[int(p)].startswith("maker:")]
    at_risk = [exact(pool) for pool in traders]
    below = [pool for pool in at_risk if pool.below_maintenance]
    return DemoResult(preset, accounts, book.entries, marks, shocked, below, at_risk, result.rechecked,
                      ledger.conservation())
