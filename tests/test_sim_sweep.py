"""Monte Carlo, sweeps and comparison: seeds per path, the same numbers on every executor."""

import json

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InvalidInput
from solvent.sim.run import SimConfig
from solvent.sim.sweep import (
    InlineExecutor,
    LocalExecutor,
    compare,
    executor_for,
    monte_carlo,
    parse_grid,
    path_seeds,
    sweep,
)

BASE = SimConfig(accounts=120, seed=5)


def test_path_seeds_depend_only_on_the_base_seed_and_the_index():
    assert path_seeds(5, 4) == path_seeds(5, 4)
    assert path_seeds(5, 4)[:2] == path_seeds(5, 2)
    assert len(set(path_seeds(5, 50))) == 50


def test_process_pool_and_in_process_give_identical_metrics():
    inline = monte_carlo(BASE, 3, InlineExecutor())
    pooled = monte_carlo(BASE, 3, LocalExecutor(workers=2))
    assert inline == pooled
    assert len({run.liquidated_notional for run in inline}) > 1  # the paths do differ


def test_ray_gives_the_metrics_of_the_process_pool():
    pytest.importorskip("ray")  # the optional extra: pip install 'solvent[ray]'
    from solvent.sim.sweep import RayExecutor

    assert monte_carlo(BASE, 3, RayExecutor()) == monte_carlo(BASE, 3, LocalExecutor(workers=2))


def test_sweep_runs_every_combination_on_the_same_seeds():
    grid = parse_grid(["execution.fee=0,0.02", "insurance_fund=0,5000000"])
    points = sweep(BASE, grid, 2, InlineExecutor())
    assert [dict(point.parameters) for point in points] == [
        {"execution.fee": "0", "insurance_fund": "0"}, {"execution.fee": "0", "insurance_fund": "5000000"},
        {"execution.fee": "0.02", "insurance_fund": "0"}, {"execution.fee": "0.02", "insurance_fund": "5000000"}]
    for point in points:
        assert set(point.summary["liquidations"]) == {"mean", "p95", "p99"} and "VaR" in point.summary


def test_grid_and_executor_errors_name_the_field():
    for bad in (["fee"], ["nonsense=1"], ["execution.fee="]):
        with pytest.raises(InvalidInput) as error:
            parse_grid(bad)
        assert error.value.field == "param"
    with pytest.raises(InvalidInput) as error:
        executor_for("spark")
    assert error.value.field == "executor"


def test_compare_runs_the_same_book_under_each_preset():
    table = compare(BASE, ["hyperliquid", "gmx_v2"], 1, InlineExecutor())
    assert list(table) == ["hyperliquid", "gmx_v2"]
    assert all(point.summary["liquidations"]["mean"] >= 0 for point in table.values())


def test_cli_sweep_and_compare_json():
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "--param", "execution.fee=0,0.01", "--accounts", "100", "--paths", "1",
                                 "--executor", "inline", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    result = runner.invoke(app, ["compare", "--presets", "hyperliquid,drift_v2", "--accounts", "100", "--paths", "1",
                                 "--executor", "inline", "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"hyperliquid", "drift_v2"}


def test_executors_report_progress_as_runs_finish():
    config = SimConfig(accounts=60, seed=3)
    for executor in (InlineExecutor(), LocalExecutor(2)):
        seen = []
        results = monte_carlo(config, 3, executor, progress=lambda done, total, seen=seen: seen.append((done, total)))
        assert len(results) == 3
        assert seen == [(1, 3), (2, 3), (3, 3)]
