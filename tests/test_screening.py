"""Differential tests: the vectorized float screen against the exact Decimal path.

For ledgers built through the real ledger (``solvent.demo.build_population``) under several
presets, and for the synthetic columnar book, every pool's float equity and maintenance margin
must match ``ColumnarBook.exact_pool`` closely, ``exact_pool`` must match
``account_margin`` exactly, and the sets the screen reports (below maintenance, at risk) must be
exactly the sets the exact path gives, after full updates, incremental single-market updates
and moves large enough to change brackets.
"""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pytest

from solvent.core.domain import Asset, ContractKind, MarginMode
from solvent.core.ledger import Ledger
from solvent.demo import build_population
from solvent.policies.account import PoolMargin, account_margin
from solvent.presets import load_preset
from solvent.screening import ColumnarBook, Screener
from solvent.screening.book import COLLATERAL_PREFIX
from solvent.screening.synthetic import synthetic_book

WARNING = D("0.8")
PRESETS = ["binance", "hyperliquid", "bybit", "dydx_v4", "drift_v2", "bitmex"]


# ------------------------------------------------------------------------------------- helpers


def exact_sets(pools: list[tuple[D, D]]) -> tuple[set[int], set[int]]:
    """(below maintenance, at risk) from exact (equity, maintenance) per pool."""
    below, at_risk = set(), set()
    for index, (equity, maintenance) in enumerate(pools):
        if maintenance > 0:
            if equity < maintenance:
                below.add(index)
            if maintenance >= WARNING * equity:
                at_risk.add(index)
    return below, at_risk


def pool_scale(book: ColumnarBook, pool: int, prices: dict[str, D]) -> float:
    """Sum of magnitudes that enter a pool's float sums: the yardstick of its rounding error."""
    scale = abs(float(book.base[pool]))
    for entry in range(int(book.indptr[pool]), int(book.indptr[pool + 1])):
        column = book.markets[int(book.entry_market[entry])]
        price = float(prices[column.symbol])
        g = price if column.kind is ContractKind.LINEAR else 1.0 / price
        scale += abs(float(book.entry_quantity[entry])) * g
    return scale


def assert_float_matches_exact(book: ColumnarBook, result, prices: dict[str, D], exact: list[tuple[D, D]]) -> None:
    for pool, (equity, maintenance) in enumerate(exact):
        scale = pool_scale(book, pool, prices)
        for name, got, want in (("equity", result.equity[pool], equity), ("maintenance", result.maintenance[pool], maintenance)):
            assert math.isclose(got, float(want), rel_tol=1e-9, abs_tol=1e-12 * scale), (
                f"pool {pool} ({book.pool_account[pool]}/{book.pool_label[pool]}) {name}: float {got!r}, exact {want}")


def assert_sets_match(result, exact: list[tuple[D, D]]) -> None:
    below, at_risk = exact_sets(exact)
    assert set(result.below_maintenance.tolist()) == below
    assert set(result.at_risk.tolist()) == at_risk


def exact_account_pools(ledger: Ledger, book: ColumnarBook, preset, models, marks, *, prices=None, haircuts=None) -> list[PoolMargin]:
    """account_margin's pools, aligned with the book's pool order (same account, same label)."""
    aligned: list[PoolMargin] = []
    by_account: dict[str, list[PoolMargin]] = {}
    for pool in range(book.pools):
        account = book.pool_account[pool]
        if account not in by_account:
            by_account[account] = list(account_margin(
                ledger, account, models=models.__getitem__, marks=marks, prices=prices, haircuts=haircuts,
                rule=preset.liquidation_price_rule))
        candidates = by_account[account]
        match = candidates.pop(0)  # both list cross pools by settle asset, then isolated positions
        assert (match.isolated_market or match.settle) == book.pool_label[pool]
        aligned.append(match)
    assert all(not rest for rest in by_account.values()), "account_margin has pools the book lacks"
    return aligned


def assert_exact_agrees_with_account_margin(book, exact, account_pools) -> None:
    for pool, ((equity, maintenance), margin) in enumerate(zip(exact, account_pools)):
        assert maintenance == margin.maintenance_margin, (pool, maintenance, margin.maintenance_margin)
        # account_margin goes through a Decimal entry price (cost / size), exact to 28 digits;
        # the book adds integer cost bases. Equal to the last digits of that division.
        size = abs(margin.collateral) + sum(abs(p.notional) + abs(p.size * p.entry_price) for p in margin.positions) + 1
        assert abs(equity - margin.equity) <= size * D("1e-18"), (pool, equity, margin.equity)


def shocked(marks: dict[str, D], factor: str, only: str | None = None) -> dict[str, D]:
    return {symbol: (price * D(factor) if only in (None, symbol) else price) for symbol, price in marks.items()}


def check(book, screener, ledger, preset, models, prices, *, account_pools=True):
    result = screener.update(prices)
    exact = [book.exact_pool(pool, prices) for pool in range(book.pools)]
    assert_float_matches_exact(book, result, prices, exact)
    assert_sets_match(result, exact)
    if account_pools:
        assert_exact_agrees_with_account_margin(book, exact, exact_account_pools(ledger, book, preset, models, prices))
    # A fresh screener at the same prices reaches the same verdicts.
    fresh = Screener(book).update(prices)
    assert np.array_equal(fresh.below_maintenance, result.below_maintenance)
    assert np.array_equal(fresh.at_risk, result.at_risk)
    return result


# ------------------------------------------------------------------------------------- populations


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("preset_name", PRESETS)
def test_screen_matches_exact_path_on_ledger_populations(preset_name, seed):
    preset = load_preset(preset_name)
    ledger, marks = build_population(preset, accounts=300, seed=seed)
    assert ledger.conservation().holds
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    book = ColumnarBook.from_ledger(ledger, models)
    screener = Screener(book)
    symbols = sorted(marks)
    rng = np.random.default_rng(seed)

    first = check(book, screener, ledger, preset, models, marks)
    assert not first.incremental
    # Every market moves: a full update.
    down = check(book, screener, ledger, preset, models, shocked(marks, "0.93"))
    assert not down.incremental
    # One market moves: the incremental path when that market holds few enough entries.
    one = symbols[0]
    market_entries = int(np.sum(book.entry_market == book.market_index[one]))
    result = check(book, screener, ledger, preset, models, shocked(shocked(marks, "0.93"), "1.04", only=one))
    assert result.incremental == (market_entries < 0.35 * book.entries)
    # A string of single-market moves (incremental whenever the market is small), random sizes.
    prices = shocked(marks, "0.93")
    for step in range(6):
        symbol = symbols[step % len(symbols)]
        factor = D(str(round(float(np.exp(rng.normal(0, 0.05))), 6)))
        prices = shocked(prices, str(factor), only=symbol)
        check(book, screener, ledger, preset, models, prices, account_pools=step % 3 == 0)
    # Big moves that push positions across brackets, both ways, then back to the marks.
    for factor in ("2.5", "0.3", "1"):
        result = check(book, screener, ledger, preset, models, shocked(marks, factor))
        if preset_name == "binance" and factor != "1":
            assert result.retiered_markets >= 1


@pytest.mark.parametrize("preset_name", ["binance", "bybit", "bitmex", "drift_v2"])
def test_long_incremental_chain_with_bracket_changes_matches_exact(preset_name):
    """Force the incremental path on every update (and never a full resync): the re-tiering
    corrections must keep equity and MM exact to float precision through bracket changes."""
    preset = load_preset(preset_name)
    ledger, marks = build_population(preset, accounts=300, seed=21)
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    book = ColumnarBook.from_ledger(ledger, models)
    screener = Screener(book, incremental_threshold=2.0, full_every=10**6)
    rng = np.random.default_rng(21)
    prices = dict(marks)
    check(book, screener, ledger, preset, models, prices, account_pools=False)
    retiered = 0
    for step in range(30):
        if step % 5 == 4:  # a big move in every market
            factor = D(str(round(float(rng.choice([0.1, 0.4, 2.5, 8.0])), 2)))
            prices = shocked(marks, str(factor))
        else:
            symbol = sorted(prices)[int(rng.integers(len(prices)))]
            factor = D(str(round(float(np.exp(rng.normal(0, 0.3))), 6)))
            prices = shocked(prices, str(factor), only=symbol)
        result = check(book, screener, ledger, preset, models, prices, account_pools=False)
        assert result.incremental
        retiered += result.retiered_markets
    if preset_name == "binance":
        assert retiered >= 3


def test_big_moves_change_brackets_and_the_screen_follows():
    """Binance brackets: the market maker's position crosses several floors as BTC moves."""
    preset = load_preset("binance")
    ledger, marks = build_population(preset, accounts=300, seed=5)
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    book = ColumnarBook.from_ledger(ledger, models)
    screener = Screener(book)
    screener.update(marks)
    seen_tiers = set()
    maker = book.pool_account.index("maker:BTCUSDT")
    for factor in ("1", "0.05", "0.5", "3", "12", "40", "1.01", "0.2"):
        prices = shocked(marks, factor, only="BTCUSDT")
        result = check(book, screener, ledger, preset, models, prices, account_pools=False)
        entry = int(book.indptr[maker])
        lots = int(book.entry_lots[entry])
        notional = abs(D(lots).scaleb(-3)) * prices["BTCUSDT"]
        seen_tiers.add(models["BTCUSDT"].tier_index(notional))
        assert result.retiered_markets <= 1
    assert len(seen_tiers) >= 3


# ------------------------------------------------------------------------------------- isolated and haircut collateral


def mixed_ledger() -> tuple[Ledger, object, dict[str, object]]:
    """Binance markets, one cross account holding BTC as collateral, isolated positions."""
    preset = load_preset("binance")
    ledger = Ledger()
    for asset in preset.assets.values():
        ledger.add_asset(asset)
    for market in preset.markets.values():
        ledger.add_market(market)
    ledger.open_account("maker")
    ledger.deposit("maker", "USDT", "100000000")
    ledger.open_account("cross")
    ledger.deposit("cross", "USDT", "1000.12345678")
    ledger.deposit("cross", "BTC", "0.12345679")
    ledger.open_account("iso")
    ledger.deposit("iso", "USDT", "5000")
    ledger.move_isolated_margin("iso", "BTCUSDT", "1234.5")
    ledger.move_isolated_margin("iso", "ZECUSDT", "300")
    ledger.apply_trade("cross", "maker", "BTCUSDT", "0.25", "64000.1")
    ledger.apply_trade("maker", "cross", "ZECUSDT", "40", "41.37")
    ledger.apply_trade("iso", "maker", "BTCUSDT", "0.1", "65000", buyer_mode=MarginMode.ISOLATED)
    ledger.apply_trade("maker", "iso", "ZECUSDT", "50.5", "40.01", seller_mode=MarginMode.ISOLATED)
    ledger.apply_trade("maker", "iso", "BTCUSDT", "0.04", "65500", seller_mode=MarginMode.ISOLATED)  # partial close
    assert ledger.conservation().holds
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    return ledger, preset, models


def test_isolated_pools_and_haircut_collateral_are_exact():
    ledger, preset, models = mixed_ledger()
    haircuts = {"BTC": D("0.05")}
    book = ColumnarBook.from_ledger(ledger, models, haircuts=haircuts)
    assert COLLATERAL_PREFIX + "BTC" in book.market_index
    assert sorted(zip(book.pool_account, book.pool_label)) == sorted([
        ("maker", "USDT"), ("cross", "USDT"), ("iso", "USDT"), ("iso", "BTCUSDT"), ("iso", "ZECUSDT")])
    screener = Screener(book)
    for btc, zec in (("65000", "40"), ("60000.5", "44.4"), ("30000", "20"), ("90000", "60")):
        marks = {"BTCUSDT": D(btc), "ZECUSDT": D(zec)}
        prices = {**marks, COLLATERAL_PREFIX + "BTC": D(btc)}
        result = screener.update(prices)
        exact = [book.exact_pool(pool, prices) for pool in range(book.pools)]
        assert_float_matches_exact(book, result, prices, exact)
        assert_sets_match(result, exact)
        aligned = exact_account_pools(ledger, book, preset, models, marks, prices={"BTC": D(btc)}, haircuts=haircuts)
        assert_exact_agrees_with_account_margin(book, exact, aligned)

        # The cross pool by hand: USDT + BTC·price·0.95 + PnL of +0.25 BTCUSDT and −40 ZECUSDT.
        cross = book.pool_label.index("USDT", book.pool_account.index("cross"))
        assert book.pool_account[cross] == "cross"
        by_hand = (D("1000.12345678") + D("0.12345679") * D(btc) * D("0.95")
                   + D("0.25") * (D(btc) - D("64000.1")) - D(40) * (D(zec) - D("41.37")))
        assert exact[cross][0] == by_hand
        # The isolated BTCUSDT pool: its margin + PnL of the remaining 0.06 BTC, nothing else.
        iso = next(p for p in range(book.pools) if (book.pool_account[p], book.pool_label[p]) == ("iso", "BTCUSDT"))
        realized = D("0.04") * (D(65500) - D(65000))
        assert exact[iso][0] == D("1234.5") + realized + D("0.06") * (D(btc) - D(65000))
        assert exact[iso][1] == models["BTCUSDT"].maintenance_margin(D("0.06") * D(btc))

        # Only the collateral's price moves: the incremental path, equity changes by the haircut value.
        moved = {**prices, COLLATERAL_PREFIX + "BTC": D(btc) * D("1.1")}
        after = screener.update(moved)
        assert after.incremental
        exact_after = [book.exact_pool(pool, moved) for pool in range(book.pools)]
        assert_float_matches_exact(book, after, moved, exact_after)
        assert_sets_match(after, exact_after)
        assert exact_after[cross][0] - exact[cross][0] == D("0.12345679") * D(btc) * D("0.1") * D("0.95")
        assert [m for _, m in exact_after] == [m for _, m in exact]


def test_without_haircuts_non_settle_collateral_does_not_count():
    ledger, preset, models = mixed_ledger()
    book = ColumnarBook.from_ledger(ledger, models)
    assert COLLATERAL_PREFIX + "BTC" not in book.market_index
    prices = {"BTCUSDT": D(65000), "ZECUSDT": D(40)}
    cross = book.pool_account.index("cross")
    by_hand = D("1000.12345678") + D("0.25") * (D(65000) - D("64000.1")) - D(40) * (D(40) - D("41.37"))
    assert book.exact_pool(cross, prices)[0] == by_hand


# ------------------------------------------------------------------------------------- thresholds


def threshold_book(wallet: str) -> tuple[Ledger, ColumnarBook]:
    """One trader long 1 BTC at 10,000 with ``wallet`` USDT, against a maker."""
    preset = load_preset("binance")
    ledger = Ledger()
    ledger.add_asset(Asset("USDT", 8))
    ledger.add_market(preset.markets["BTCUSDT"])
    ledger.open_account("maker")
    ledger.deposit("maker", "USDT", "1000000")
    ledger.open_account("trader")
    ledger.deposit("trader", "USDT", wallet)
    ledger.apply_trade("trader", "maker", "BTCUSDT", "1", "10000")
    return ledger, ColumnarBook.from_ledger(ledger, {"BTCUSDT": preset.margin_model("BTCUSDT")})


def test_equity_equal_to_maintenance_is_decided_exactly_and_is_not_below():
    # At 9,000: equity = 1036 − 1000 = 36 and MM = 9000 × 0.4% = 36, exactly.
    ledger, book = threshold_book("1036")
    trader = book.pool_account.index("trader")
    prices = {"BTCUSDT": D(9000)}
    equity, maintenance = book.exact_pool(trader, prices)
    assert equity == maintenance == 36
    screener = Screener(book)
    screener.update({"BTCUSDT": D(10000)})
    result = screener.update(prices)
    assert result.rechecked >= 1
    assert trader not in result.below_maintenance  # equity < MM is strict
    assert trader in result.at_risk  # 36 >= 0.8 × 36
    # One cent lower it is below, one cent higher it is not at the threshold any more.
    below = screener.update({"BTCUSDT": D("8999.99")})
    assert trader in below.below_maintenance
    above = screener.update({"BTCUSDT": D("9000.01")})
    assert trader not in above.below_maintenance
    # A fresh screener decides the same (full path, no cached state).
    assert trader not in Screener(book).update(prices).below_maintenance


def test_margin_ratio_equal_to_warning_is_at_risk():
    # At 9,000: equity = 1045 − 1000 = 45 and MM = 36 = 0.8 × 45, exactly.
    ledger, book = threshold_book("1045")
    trader = book.pool_account.index("trader")
    prices = {"BTCUSDT": D(9000)}
    equity, maintenance = book.exact_pool(trader, prices)
    assert maintenance == WARNING * equity
    result = Screener(book).update(prices)
    assert result.rechecked >= 1
    assert trader in result.at_risk and trader not in result.below_maintenance
    just_safe = Screener(book).update({"BTCUSDT": D("9000.01")})
    assert trader not in just_safe.at_risk


# ------------------------------------------------------------------------------------- synthetic book


@pytest.fixture(scope="module")
def synthetic():
    model = load_preset("binance").margin_model("BTCUSDT")
    return synthetic_book(accounts=2000, positions=10000, model=model), model


def straightforward(book: ColumnarBook, model, pool: int, prices: dict[str, D]) -> tuple[D, D]:
    """Equity and MM of a synthetic pool from first principles (USDT units 1e-8, lots 1e-3)."""
    equity = D(int(book.base_units[pool])).scaleb(-8)
    maintenance = D(0)
    for entry in range(int(book.indptr[pool]), int(book.indptr[pool + 1])):
        price = prices[book.markets[int(book.entry_market[entry])].symbol]
        quantity = D(int(book.entry_lots[entry])).scaleb(-3)
        equity += quantity * price
        notional = abs(quantity) * price
        tier = [t for t in model.tiers if t.floor <= notional][-1]
        maintenance += notional * tier.maintenance_rate - tier.deduction
    return equity, maintenance


def test_synthetic_book_screen_equals_per_pool_decimal(synthetic):
    data, model = synthetic
    book = data.book
    screener = Screener(book)
    rng = np.random.default_rng(3)
    scenarios = [data.prices,
                 shocked(data.prices, "0.9"),
                 shocked(data.prices, "0.8", only=data.markets[0].symbol),
                 {s: (p * D(str(round(float(rng.uniform(0.5, 1.6)), 4)))).quantize(D("0.01")) or D("0.01")
                  for s, p in data.prices.items()}]
    for prices in scenarios:
        result = screener.update(prices)
        exact = [book.exact_pool(pool, prices) for pool in range(book.pools)]
        assert_float_matches_exact(book, result, prices, exact)
        assert_sets_match(result, exact)
        for pool in range(0, book.pools, 7):
            assert exact[pool] == straightforward(book, model, pool, prices)
    assert len(result.at_risk) > 0
