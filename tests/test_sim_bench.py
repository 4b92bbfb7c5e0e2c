"""The simulator benchmark and the day-long scenario it runs."""

from datetime import timedelta

import numpy as np

from solvent.bench.simulate import calm_day_scenario, day_scenario, per_step_ms, run_simulate_benchmark
from solvent.sim.scenarios import load_scenario, scenario_paths


def test_a_widened_scenario_keeps_its_anchors_at_the_same_times():
    base = load_scenario("oct_10_2025")
    day = day_scenario("oct_10_2025")
    assert day.steps == 1440 and day.start.hour == 0
    for asset, anchors in base.assets.items():
        for (step, price), (day_step, day_price) in zip(anchors, day.assets[asset]):
            assert base.start + timedelta(seconds=step * 60) == day.start + timedelta(seconds=day_step * 60)
            assert price == day_price
    paths = scenario_paths(day, np.random.default_rng(1))
    assert paths["BTC"][day.assets["BTC"][0][0]] == 116500.0


def test_the_calm_day_is_the_crash_day_without_the_crash():
    day, calm = day_scenario("oct_10_2025"), calm_day_scenario("oct_10_2025")
    assert (calm.start, calm.steps, calm.step_seconds) == (day.start, day.steps, day.step_seconds)
    assert calm.assets == {asset: ((0, anchors[0][1]),) for asset, anchors in day.assets.items()}
    assert all(calm.volatility[asset] < day.volatility[asset] / 3 for asset in day.assets)
    paths = scenario_paths(calm, np.random.default_rng(1))
    assert paths["BTC"][0] == 116500.0
    assert paths["BTC"].min() / 116500.0 > 0.8 and paths["BTC"].max() / 116500.0 < 1.2


def test_accounts_far_from_a_threshold_are_not_valued(monkeypatch):
    """On a calm path the screen hands the pipeline the same handful of accounts whatever the
    book's size (counted, not timed)."""
    from solvent.engine import pipeline

    valued = []
    original = pipeline._evaluate_account
    monkeypatch.setattr(pipeline, "_evaluate_account", lambda engine, account, **kwargs: valued.append(account) or
                        original(engine, account, **kwargs))
    counts = {}
    for accounts in (1_000, 20_000):
        valued.clear()
        per_step_ms(accounts, 40, 256)
        counts[accounts] = len(valued)
    assert counts[20_000] < 20_000 * 0.02  # far fewer than one valuation per account per step
    assert counts[20_000] <= 20 * counts[1_000] + 50


def test_the_benchmark_reports_every_figure():
    result = run_simulate_benchmark(accounts=300, paths=2, workers=2, day_accounts=400)
    figures = result.as_dict()
    assert result.steps == 181 and result.day_steps == 1441
    assert result.liquidations > 0 and result.day_liquidations > 0
    assert 0 < result.day_book_seconds < result.day_seconds
    assert all(value is None or value == value for value in figures.values() if isinstance(value, float))
    assert result.scaling[0].exact_ms_per_step > result.scaling[0].screened_ms_per_step
    # The verdicts follow the figures against the targets.
    assert figures["day_target_met"] is (result.day_seconds < 2.0)
    assert figures["calm_day_target_met"] is (result.calm_day_seconds < 2.0)
    assert result.calm_day_seconds > 0 and result.calm_day_liquidations < result.day_liquidations
    assert figures["sweep_target_met"] is (result.projected_1000_paths_seconds < 600.0)
