"""The simulation loop: the engine driven by a scenario, forced sales feeding back into prices."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InvalidInput
from solvent.sim.run import SimConfig, run


@pytest.fixture(scope="module")
def hyperliquid_run():
    return run(SimConfig(accounts=600, seed=11))


def test_same_seed_same_run(hyperliquid_run):
    again = run(SimConfig(accounts=600, seed=11))
    assert again.metrics == hyperliquid_run.metrics
    for asset in again.simulated:
        assert np.array_equal(again.simulated[asset], hyperliquid_run.simulated[asset])


def test_a_crash_liquidates_and_forced_sales_push_the_price_below_the_path(hyperliquid_run):
    metrics = hyperliquid_run.metrics
    assert metrics.liquidations > 0 and metrics.liquidated_notional > 0
    assert metrics.cascade_depth >= 1 and metrics.time_to_stability_steps >= metrics.cascade_depth
    for asset, overshoot in metrics.price_overshoot.items():
        assert overshoot > 0, asset  # the simulated low is below the exogenous low
    # The liquidated notional per step adds up to the total reported.
    assert hyperliquid_run.liquidated_per_step.sum() == pytest.approx(metrics.liquidated_notional)


def test_without_feedback_the_price_is_the_scenario_path(hyperliquid_run):
    calm = run(SimConfig(accounts=600, seed=11, feedback=False))
    for asset, path in calm.simulated.items():
        assert np.allclose(path, calm.exogenous[asset], rtol=1e-9)
        assert calm.metrics.price_overshoot[asset] == pytest.approx(0, abs=1e-9)
    assert calm.metrics.liquidated_notional <= hyperliquid_run.metrics.liquidated_notional


@pytest.mark.parametrize("preset", ["binance", "dydx_v4", "drift_v2", "gmx_v2"])
def test_other_presets_run_the_same_scenario(preset):
    result = run(SimConfig(preset=preset, accounts=150, seed=3))
    assert result.metrics.liquidations >= 0 and result.markets


def test_a_venue_without_the_scenario_assets_is_refused():
    # Drift lists SOL only; Black Thursday moves BTC and ETH. (BitMEX's inverse XBTUSD now runs:
    # tests/test_sim_inverse.py.)
    with pytest.raises(InvalidInput, match="market of drift_v2"):
        run(SimConfig(scenario="black_thursday_2020_03_12", preset="drift_v2", accounts=10))


def test_a_negative_seed_is_refused_naming_it():
    from solvent.sim.sweep import path_seeds

    with pytest.raises(InvalidInput) as raised:
        run(SimConfig(seed=-1, accounts=10))
    assert raised.value.field == "seed"
    with pytest.raises(InvalidInput, match="must not be negative"):
        path_seeds(-1, 2)
    result = CliRunner().invoke(app, ["simulate", "--seed", "-1", "--accounts", "10"])
    assert result.exit_code == 2 and "--seed" in result.output


def test_cli_simulate_json_and_table():
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--accounts", "150", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["metrics"]["liquidations"] >= 0 and data["config"]["preset"] == "hyperliquid"
    table = runner.invoke(app, ["simulate", "--accounts", "150", "--scenario", "black_thursday_2020_03_12"])
    assert table.exit_code == 0 and "cascade depth" in table.stdout
    listed = runner.invoke(app, ["simulate", "--list-scenarios"])
    assert "oct_10_2025" in listed.stdout and "may_19_2021" in listed.stdout


def test_cli_simulate_writes_the_report_with_the_book(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--accounts", "150", "--report", str(tmp_path / "report"), "--json"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "report" / "index.html"
    assert json.loads(result.stdout)["report"] == str(page)
    html = page.read_text()
    for chart in ("price_paths.png", "liquidations.png", "insurance_fund.png", "loss_distribution.png",
                  "liquidation_heatmap.png"):
        assert chart in html and (tmp_path / "report" / chart).stat().st_size > 1000
    assert "not given" not in html  # the book's liquidation prices were computed and drawn


def test_cli_simulates_a_lending_venue_and_black_thursday_from_the_command_line():
    runner = CliRunner()
    common = ["simulate", "--preset", "maker", "--scenario", "black_thursday_2020_03_12", "--accounts", "60", "--json"]
    normal = json.loads(runner.invoke(app, common).stdout)
    broken = runner.invoke(app, common + ["--depth-scale", "0.000001", "--no-feedback",
                                          "--override", "ilks.ETH-A.cusp=0.001", "--override", "ilks.ETH-A.tail=86400"])
    assert broken.exit_code == 0, broken.output
    broken = json.loads(broken.stdout)
    assert normal["take_price_ratio"] > 0.9 and normal["system_debt"] == 0
    assert broken["take_price_ratio"] < 0.2 and broken["system_debt"] > 0  # auctions clear near zero
    bad = runner.invoke(app, ["simulate", "--override", "fee=1"])
    assert bad.exit_code == 2 and "PATH=VALUE" in bad.output


def test_the_fund_and_the_vault_are_valued_with_what_they_took_over(hyperliquid_run, monkeypatch):
    """Hyperliquid's vault takes accounts over and holds their positions: its value is its cash
    and their PnL at the marks, and its drawdown is the most it stood below where it started."""
    from solvent.engine import engine as engine_module
    from solvent.engine.pipeline import cross_pool

    vault = hyperliquid_run.backstop_per_step
    assert vault is not None and len(vault) == len(hyperliquid_run.fund_per_step)
    assert vault[0] == pytest.approx(50_000_000)  # the configured capital, before anything happened
    metrics = hyperliquid_run.metrics
    assert metrics.backstop_drawdown == pytest.approx(max(50_000_000 - vault.min(), 0.0), abs=0.01)
    assert metrics.insurance_drawdown == pytest.approx(max(2_000_000 - hyperliquid_run.fund_per_step.min(), 0.0),
                                                       abs=0.01)
    # The same run again, its engine caught: the crash leaves the vault holding longs it took
    # over, worth less than its cash, and the last step's value is cash plus their PnL.
    engines = []
    original = engine_module.Engine.__init__
    monkeypatch.setattr(engine_module.Engine, "__init__",
                        lambda self, *args, **kwargs: original(self, *args, **kwargs) or engines.append(self))
    run(SimConfig(accounts=600, seed=11))
    pool = cross_pool(engines[0], "v/liquidator", "USDC")
    assert pool is not None and pool.positions and pool.unrealized_pnl < 0
    assert vault[-1] == pytest.approx(float(pool.equity), abs=0.01)
    assert float(pool.collateral) > vault[-1] and metrics.backstop_drawdown > 0


def test_a_run_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    import gc

    from solvent.engine import engine as engine_module

    seen = []
    original = engine_module.Engine.apply
    monkeypatch.setattr(engine_module.Engine, "apply",
                        lambda self, command: seen.append(gc.isenabled()) or original(self, command))
    assert gc.isenabled()
    run(SimConfig(accounts=50, seed=3))
    assert seen and not any(seen) and gc.isenabled()
