"""The user's world: a book, candles and parameters in; events, series and per-path metrics out."""

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InvalidInput
from solvent.sim.books import load_book
from solvent.sim.export import write_run
from solvent.sim.params import load_params
from solvent.sim.prices import generated_scenario, load_prices
from solvent.sim.run import SimConfig, run

runner = CliRunner()
T0 = 1_760_140_800_000  # 2025-10-11 00:00 UTC, in ms


def candles(path, closes, lows=None, highs=None, symbol="BTC/USDC:USDC", step_ms=60_000):
    closes = np.asarray(closes, dtype=float)
    opens = np.r_[closes[0], closes[:-1]]
    low = np.minimum(opens, closes) if lows is None else np.asarray(lows, dtype=float)
    high = np.maximum(opens, closes) if highs is None else np.asarray(highs, dtype=float)
    frame = pd.DataFrame({"timestamp": T0 + np.arange(len(closes)) * step_ms, "open": opens, "high": high,
                          "low": low, "close": closes, "volume": 1.0, "symbol": symbol})
    if str(path).endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


BOOK = """account,market,side,size,entry_price,margin_mode,leverage,isolated_margin,collateral
alice,BTC,long,0.5,100000,cross,20,,
bob,BTC/USDC:USDC,short,0.2,100000,cross,20,,
carol,BTCUSDT,long,0.3,100000,isolated,20,,
carol,ETH,long,2,4000,cross,20,,2000
dave,BTC,short,0.1,100000,isolated,,500,
"""


@pytest.fixture
def world(tmp_path):
    """A book on BTC and ETH, and candles that wick 10% down then 10% up around a flat close."""
    (tmp_path / "book.csv").write_text(BOOK)
    closes = np.full(40, 100_000.0)
    lows, highs = closes - 5, closes + 5
    lows[10], highs[25] = 90_000.0, 110_000.0
    candles(tmp_path / "btc.csv", closes, lows, highs)
    eth = np.full(40, 4000.0)
    eth_lows = eth - 1
    eth_lows[10] = 3_600.0
    candles(tmp_path / "eth.parquet", eth, eth_lows, eth + 1, symbol="ETHUSDT")
    return tmp_path


def test_a_book_round_trips_and_its_events_name_every_account(world):
    book = load_book(world / "book.csv")
    prices = load_prices({"BTC": world / "btc.csv", "ETH": world / "eth.parquet"})
    result = run(SimConfig(book=book, prices=prices, feedback=False), keep_events=True)
    written = write_run(result, world / "out")
    assert [path.name for path in written] == ["events.parquet", "liquidations.parquet", "series.parquet",
                                               "metrics.json"]
    events = pq.read_table(world / "out" / "events.parquet").to_pandas()
    liquidated = set(events.loc[events.kind == "position_liquidated", "account"])
    assert liquidated == {"alice", "bob", "carol", "dave"} == set(book.accounts)
    liquidations = pq.read_table(world / "out" / "liquidations.parquet").to_pandas()
    assert set(liquidations.step) == {10, 25}  # the longs on the low wick, the shorts on the high one
    assert str(liquidations.utc.iloc[0]) == "2025-10-11 00:10:00+00:00"
    series = pq.read_table(world / "out" / "series.parquet").to_pandas()
    assert series["exogenous.BTC"].tolist() == [100_000.0] * 40
    metrics = json.loads((world / "out" / "metrics.json").read_text())
    assert metrics["metrics"]["liquidations"] == len(liquidations)
    again = run(SimConfig(book=load_book(world / "book.csv"), prices=prices, feedback=False), keep_events=True)
    write_run(again, world / "again")
    for name in ("events.parquet", "liquidations.parquet", "series.parquet", "metrics.json"):
        assert (world / "again" / name).read_bytes() == (world / "out" / name).read_bytes()


def test_closes_are_the_path_exactly_and_a_wick_liquidates_what_closes_alone_would_not(tmp_path):
    (tmp_path / "book.csv").write_text("account,market,side,size,entry_price,margin_mode,leverage\n"
                                       "alice,BTC,long,0.5,120000,cross,10\n")
    closes = 120_000 + np.cumsum(np.random.default_rng(3).normal(0, 40, 60)).round(1)
    lows = np.minimum(np.r_[closes[0], closes[:-1]], closes) - 10
    lows[30] = 107_000.0
    path = candles(tmp_path / "btc.parquet", closes, lows)
    book = load_book(tmp_path / "book.csv")
    with_wick = run(SimConfig(book=book, prices=load_prices(path), feedback=False))
    assert np.array_equal(with_wick.exogenous["BTC"], closes)  # bit for bit
    assert with_wick.metrics.liquidations == 1
    candles(tmp_path / "closes.parquet", closes)
    closes_only = run(SimConfig(book=book, prices=load_prices(tmp_path / "closes.parquet"), feedback=False))
    assert closes_only.metrics.liquidations == 0


def test_candles_resample_to_the_run_step(tmp_path):
    closes = np.arange(1.0, 11.0) * 100
    lows = np.r_[closes[0], closes[:-1]] - 50  # below the open (the previous close)
    lows[3] = 10.0
    history = load_prices(candles(tmp_path / "c.csv", closes, lows), step_seconds=300)
    assert history.step_seconds == 300 and history.steps == 2
    assert history.close["BTC"].tolist() == [500.0, 1000.0]
    assert history.low["BTC"].tolist() == [10.0, 450.0]
    with pytest.raises(InvalidInput, match="multiple"):
        load_prices(tmp_path / "c.csv", step_seconds=90)


def test_a_malformed_book_is_refused_naming_row_and_column_and_nothing_loads(tmp_path):
    (tmp_path / "bad.csv").write_text("account,market,side,size,entry_price,margin_mode,leverage\n"
                                      "a,BTC,long,1,100000,cross,10\n"
                                      "b,BTC,long,-2,100000,cross,10\n"
                                      "c,BTC,up,1,100000,cross,10\n")
    with pytest.raises(InvalidInput) as refused:
        load_book(tmp_path / "bad.csv")
    assert refused.value.field == "bad.csv[row 2].size"
    assert "row 3, column side" in str(refused.value) and "nothing loaded" in str(refused.value)
    cli = runner.invoke(app, ["simulate", "--book", str(tmp_path / "bad.csv")])
    assert cli.exit_code == 2 and "bad.csv[row 2].size" in cli.output.replace("\n", "")


def test_a_book_market_the_run_lacks_is_refused_naming_its_row(tmp_path):
    (tmp_path / "book.json").write_text(json.dumps([
        {"account": "x", "symbol": "BTC/USDT:USDT", "side": "long", "contracts": 0.1, "entryPrice": 100000,
         "marginMode": "cross", "leverage": 10, "collateral": 1000.0, "notional": 10000},
        {"account": "y", "symbol": "DOGE/USDT:USDT", "side": "short", "contracts": 100, "entryPrice": 0.2,
         "marginMode": "cross", "leverage": 5}]))
    book = load_book(tmp_path / "book.json")  # ccxt records
    assert book.size[0] is not None and book.position_collateral[0] is not None
    with pytest.raises(InvalidInput, match=r"book.json\[row 2\].market"):
        run(SimConfig(book=book, scenario="black_thursday_2020_03_12"))


def test_a_synthetic_crowd_is_mixed_in_at_its_share(world):
    book = load_book(world / "book.csv")
    prices = load_prices({"BTC": world / "btc.csv", "ETH": world / "eth.parquet"})
    result = run(SimConfig(book=book, synthetic_share=0.75, prices=prices, feedback=False), keep_events=True)
    opened = [event for _, _, events in result.event_log for event in events if event.kind == "positions_opened"]
    assert sum(event.accounts for event in opened) == 2 + 12  # alice and bob in bulk, 12 synthetic (3 of 4)


def test_sweep_paths_are_the_same_bytes_inline_and_on_a_process_pool(tmp_path):
    common = ["sweep", "--scenario", "gbm:BTC=60000,ETH=3000,mu=-4000,sigma=3,steps=30",
              "--accounts", "200", "--paths", "2",
              "--param", "execution.fee=0,0.01"]
    for executor in ("inline", "local"):
        result = runner.invoke(app, common + ["--executor", executor, "--workers", "2", "--out",
                                              str(tmp_path / executor)])
        assert result.exit_code == 0, result.output
    inline, pooled = ((tmp_path / name / "paths.parquet").read_bytes() for name in ("inline", "local"))
    assert inline == pooled
    paths = pq.read_table(tmp_path / "inline" / "paths.parquet").to_pandas()
    assert len(paths) == 4 and set(paths["execution.fee"]) == {"0", "0.01"}
    assert paths.liquidations.sum() > 0 and paths.seed.nunique() == 2


def test_params_file_sets_runs_overrides_and_a_grid_and_refuses_unknown_paths(tmp_path):
    good = tmp_path / "p.toml"
    good.write_text('[run]\ninsurance_fund = 0\n[preset]\nexecution.fee = "0.01"\n'
                    '[sweep]\n"execution.fee" = [0, 0.02]\n')
    params = load_params(good)
    assert params.run == {"insurance_fund": "0"} and params.overrides == (("execution.fee", "0.01"),)
    assert params.grid == {"execution.fee": ["0", "0.02"]}
    bad = tmp_path / "bad.toml"
    bad.write_text("[preset.execution]\nfeee = 0.01\n")
    with pytest.raises(InvalidInput) as refused:
        load_params(bad)
    assert refused.value.field == "params.preset.execution.feee"
    cli = runner.invoke(app, ["simulate", "--params", str(bad)])
    assert cli.exit_code == 2 and "params.preset.execution.feee" in cli.output


def test_gbm_and_shock_paths_from_the_command_line(tmp_path):
    shock = generated_scenario("shock:BTC=60000,shock=-0.25,at_step=5,steps=20")
    path = shock.paths(None)["BTC"]
    assert path[4] == 60_000 and path[5] == 45_000 and len(path) == 21
    with pytest.raises(InvalidInput, match="scenario.sigmaa"):
        generated_scenario("gbm:BTC=60000,sigmaa=1")
    result = runner.invoke(app, ["simulate", "--scenario", "gbm:BTC=60000,mu=-3000,sigma=1.2,jump_intensity=500,"
                                 "jump_mean=-0.08,jump_std=0.02,steps=60", "--accounts", "200", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["metrics"]["liquidations"] > 0


def test_the_python_api_returns_dataframes_and_stays_lazy(world):
    import subprocess
    import sys

    import solvent

    light = subprocess.run([sys.executable, "-c", "import sys, solvent; print('pandas' in sys.modules)"],
                           capture_output=True, text=True, env={"PYTHONPATH": "src"}, check=True)
    assert light.stdout.strip() == "False"
    book = pd.read_csv(world / "book.csv")
    prices = {"BTC": world / "btc.csv", "ETH": world / "eth.parquet"}
    results = solvent.simulate(book, prices, feedback=False)
    assert set(results.liquidations.account) == {"alice", "bob", "carol", "dave"}
    assert list(results.series.columns[:3]) == ["step", "time", "utc"]
    paths = solvent.sweep({"backstop_capital": [0, 1_000_000]}, 2, book=book, prices=prices, executor="inline",
                          feedback=False)
    assert len(paths) == 4 and paths.groupby("backstop_capital").liquidations.mean().min() >= 4


def test_a_snapshot_of_a_running_service_is_a_book(tmp_path):
    from solvent.engine import Engine
    from solvent.engine import commands as c
    from solvent.service.views import account_view

    engine = Engine()
    for command in (c.CreateVenue("v", "hyperliquid", {}), c.OpenAccount("mm", "v"),
                    c.Deposit("mm", "USDC", "100000000"), c.UpdateOracle("v", {"BTC": "100000", "ETH": "4000"}, 0),
                    c.OpenAccount("ann", "v"), c.Deposit("ann", "USDC", "6000"),
                    c.ApplyFill("v", "BTC", "ann", "mm", "0.5", "100000"), c.ApplyFill("v", "ETH", "mm", "ann", "1", "4000"),
                    c.OpenAccount("ben", "v"), c.Deposit("ben", "USDC", "3000"),
                    c.ApplyFill("v", "BTC", "mm", "ben", "0.2", "100000", seller_margin_mode="isolated",
                                seller_leverage="10")):
        engine.apply(command)
    (tmp_path / "snapshot.json").write_text(json.dumps([account_view(engine, name) for name in ("ann", "ben")]))
    book = load_book(tmp_path / "snapshot.json")
    assert dict(book.collateral) == {"ann": Decimal("6000.000000"), "ben": Decimal("3000.000000")}
    assert book.side == (1, -1, -1) and book.isolated == (False, False, True)
    candles(tmp_path / "btc.csv", np.full(5, 100_000.0), highs=[100_000.0, 100_000.0, 118_000.0, 100_000.0, 100_000.0])
    candles(tmp_path / "eth.csv", np.full(5, 4_000.0))
    result = run(SimConfig(book=book, prices=load_prices({"BTC": tmp_path / "btc.csv", "ETH": tmp_path / "eth.csv"}),
                           feedback=False), keep_events=True)
    liquidated = {event.account for _, _, events in result.event_log for event in events
                  if event.kind == "position_liquidated"}
    assert liquidated == {"ben"}  # the isolated 10x short, on the 18% wick; ann's cross long is not at risk up
