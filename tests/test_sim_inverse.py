"""Inverse markets in the simulator: BitMEX's XBTUSD (contracts worth 1 USD, margined and settled
in XBT) liquidated on a crash, with every metric in USD."""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.presets import load_preset
from solvent.sim.run import SimConfig, _market_for, _settle, run, trader_rows


@pytest.fixture(scope="module")
def bitmex_run():
    return run(SimConfig(preset="bitmex", accounts=400, seed=5, depth_scale=0.01))


def test_inverse_markets_are_picked_when_a_venue_lists_no_linear_one():
    bitmex, bybit = load_preset("bitmex"), load_preset("bybit")
    assert (_market_for(bitmex, "BTC"), _settle(bitmex)) == ("XBTUSD", "XBT")  # BTC is XBT there
    assert _market_for(bitmex, "ETH") is None
    assert (_market_for(bybit, "BTC"), _settle(bybit)) == ("BTCUSDT", "USDT")  # linear first


def test_trader_rows_size_contracts_in_usd_and_margin_in_coin():
    preset = load_preset("bitmex")
    one = np.array([1])
    rows = trader_rows(preset.markets["XBTUSD"], preset.margin_model("XBTUSD"), D("100000"), np.array([25000.4]),
                       np.array([10.0]), one)
    assert rows.sizes == ["25000"]  # whole contracts of 1 USD
    assert rows.deposits == ["0.02500000"] and rows.prices == ["100000.0000"]  # 0.25 XBT of notional at 10x
    linear = load_preset("binance")
    rows = trader_rows(linear.markets["BTCUSDT"], linear.margin_model("BTCUSDT"), D("100000"), np.array([25000.0]),
                       np.array([10.0]), -one)
    assert (rows.sizes, rows.deposits) == (["-0.250"], ["2500.00"])
    # Entered 10% lower, a long holds 2,500 of profit already: it deposits what leaves 2,500 of
    # equity at the opening, but never less than 1% of the margin.
    rows = trader_rows(linear.markets["BTCUSDT"], linear.margin_model("BTCUSDT"), D("100000"),
                       np.array([25000.0, 25000.0]), np.array([10.0, 10.0]), np.array([1, -1]),
                       np.array([np.log(1 / 0.98), np.log(1 / 0.9)]))
    assert rows.prices == ["98000.0000", "90000.0000"]
    assert rows.deposits == ["2000.00", "5000.00"]  # 2500 − 0.25·2000; 2500 + 0.25·10000 for the short
    rows = trader_rows(linear.markets["BTCUSDT"], linear.margin_model("BTCUSDT"), D("100000"), np.array([25000.0]),
                       np.array([10.0]), one, np.array([np.log(1 / 0.5)]))
    assert rows.deposits == ["25.00"]  # 2500 − 12500 < 0: 1% of the margin
    # The maximum leverage of the position's bracket caps the drawn one (Binance BTCUSDT: 125x first).
    rows = trader_rows(linear.markets["BTCUSDT"], linear.margin_model("BTCUSDT"), D("100000"), np.array([25000.0]),
                       np.array([500.0]), one)
    assert rows.deposits == ["200.00"]


def test_a_crash_under_bitmex_liquidates_and_reports_usd(bitmex_run):
    result = bitmex_run  # run() asserts conservation at the end
    metrics = result.metrics
    assert result.markets == {"BTC": "XBTUSD"}
    assert metrics.liquidations > 0
    assert all(math.isfinite(value) for value in metrics.scalars().values())
    # USD, not XBT: contracts are worth 1 USD each, so liquidated notional is a whole number of
    # dollars, and far above what it would be in coins (the book's traders hold $100s to $100ks).
    assert metrics.liquidated_notional == pytest.approx(float(result.liquidated_per_step.sum()))
    assert float(metrics.liquidated_notional).is_integer() and metrics.liquidated_notional > 10_000
    # The fund is valued at each step's simulated price: in coins it only moves by what the
    # liquidations paid in or drew, not by the price.
    btc = result.simulated["BTC"]
    coins = result.fund_per_step / np.array([float(D(repr(float(price))).quantize(D("0.0001"))) for price in btc])
    opening = float(result.exogenous["BTC"][0])
    assert coins[0] == pytest.approx(2_000_000 / opening, rel=1e-6)  # $2,000,000 in XBT at the opening
    assert result.fund_per_step[0] == pytest.approx(2_000_000 * btc[0] / opening, rel=1e-6)
    assert np.all(np.abs(np.diff(coins)) < 1)  # a 10% price fall does not move the fund's coins
    assert metrics.price_overshoot["BTC"] > 0  # the forced flow (in USD) moved the price


def test_the_cli_simulates_and_compares_bitmex():
    runner = CliRunner()
    out = runner.invoke(app, ["simulate", "--preset", "bitmex", "--accounts", "150", "--json"])
    assert out.exit_code == 0, out.output
    assert '"liquidations"' in out.output
    out = runner.invoke(app, ["compare", "--presets", "binance,bitmex", "--accounts", "120", "--paths", "2",
                              "--executor", "inline", "--json"])
    assert out.exit_code == 0, out.output
    assert '"bitmex"' in out.output
