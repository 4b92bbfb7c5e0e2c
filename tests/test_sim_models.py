"""The simulator's exogenous world: scenarios, market models, populations and metrics.

Checks from the issue and reference/simulation.md: square-root impact (doubling size multiplies
impact by sqrt(2)), the constant-product factor x²/(x+v)², bridges pinned to anchors, seeds that
reproduce, correlation and jumps of GBM, depth that thins and recovers with a half-life, and the
stylised facts of the shipped scenarios (§3.3).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from solvent.core.errors import InvalidInput, UnknownName
from solvent.sim.market import (
    BTC_DEPTH_BANDS_EARLY_OCT_2025,
    DEPTH_1PCT_USD,
    PANIC_DEPTH_1PCT_USD,
    ConstantProduct,
    L2Book,
    SqrtImpact,
    realized_volatility,
)
from solvent.sim.metrics import (
    RunMetrics,
    cascade_depth,
    is_toxic,
    price_overshoot,
    summarize,
    time_to_stability,
)
from solvent.sim.population import sample_population
from solvent.sim.scenarios import (
    DATA_DIR,
    bridge_path,
    gbm_paths,
    list_scenarios,
    load_scenario,
    scenario_paths,
    shock_path,
    step_sigma,
)

SHIPPED = ["black_thursday_2020_03_12", "may_19_2021", "oct_10_2025"]


# --------------------------------------------------------------------------- square-root impact


@pytest.mark.parametrize("notional", [1e3, 2.5e5, 2e7, 3e9])
def test_doubling_size_multiplies_impact_by_sqrt_two(notional):
    model = SqrtImpact(depth_1pct_usd=20e6)
    assert model.impact(2 * notional) / model.impact(notional) == pytest.approx(math.sqrt(2), rel=1e-12)


def test_selling_the_depth_moves_the_price_by_y_percent():
    assert SqrtImpact(depth_1pct_usd=20e6).impact(20e6) == pytest.approx(0.01)
    assert SqrtImpact(depth_1pct_usd=20e6, y=0.5).impact(20e6) == pytest.approx(0.005)
    assert SqrtImpact(depth_1pct_usd=20e6).impact(5e6) == pytest.approx(0.005)  # concave: a quarter, half the move


def test_a_fresh_sell_fills_on_average_two_thirds_of_the_way_down():
    model = SqrtImpact(depth_1pct_usd=20e6)
    fill = model.sell(20e6)
    assert fill.marginal_price_factor == pytest.approx(math.exp(-0.01))
    assert model.price_factor == pytest.approx(math.exp(-0.01))
    assert 1 - fill.average_price_factor == pytest.approx(2 / 3 * 0.01, rel=0.01)


def test_average_price_matches_numerical_integration_from_a_displaced_price():
    model = SqrtImpact(depth_1pct_usd=1e6, temporary_impact=-0.03)
    a = model.displacement
    fill = model.sell(4e7)
    b = model.displacement
    # Integrate exp(d) over the volume q = sign(d)·D·(d/0.01)² between a and b.
    volume = -np.linspace(1e6 * (a / 0.01) ** 2, 1e6 * (b / 0.01) ** 2, 200_001)
    displacement = -0.01 * np.sqrt(-volume / 1e6)
    assert fill.average_price_factor == pytest.approx(np.exp(displacement).mean(), rel=1e-6)
    assert a > b


def test_two_sales_in_one_step_move_the_price_like_one_sale_of_their_sum():
    split, whole = SqrtImpact(depth_1pct_usd=8e6), SqrtImpact(depth_1pct_usd=8e6)
    split.sell(3e6)
    split.sell(5e6)
    whole.sell(8e6)
    assert split.displacement == pytest.approx(whole.displacement, rel=1e-12)
    assert split.displacement == pytest.approx(-0.01, rel=1e-12)


def test_buys_undo_sells_on_the_same_curve():
    model = SqrtImpact(depth_1pct_usd=8e6)
    model.sell(8e6)
    model.buy(8e6)
    assert model.displacement == pytest.approx(0.0, abs=1e-15)


def test_depth_thins_at_once_when_volatility_rises():
    model = SqrtImpact(depth_1pct_usd=20e6, calm_volatility=0.5, vol_sensitivity=1.0, min_depth_fraction=0.05)
    assert model.step(0.4) == 1.0
    assert model.step(2.0) == pytest.approx(0.25)
    assert model.depth_usd == pytest.approx(5e6)
    assert model.impact(5e6) == pytest.approx(0.01)  # the same sale now costs twice as much
    assert model.step(1000.0) == pytest.approx(0.05)  # floored


@pytest.mark.parametrize("half_life", [1, 5, 12])
def test_depth_recovers_with_the_half_life(half_life):
    model = SqrtImpact(depth_1pct_usd=20e6, recovery_half_life_steps=half_life)
    model.step(5.0)  # calm 0.5 / 5.0 → 10% of the base depth
    gap = 1.0 - model.depth_fraction
    assert gap == pytest.approx(0.9)
    for _ in range(half_life):
        model.step(0.1)
    assert 1.0 - model.depth_fraction == pytest.approx(gap / 2)
    for _ in range(half_life):
        model.step(0.1)
    assert 1.0 - model.depth_fraction == pytest.approx(gap / 4)


def test_temporary_impact_decays_with_the_half_life_and_permanent_impact_stays():
    model = SqrtImpact(depth_1pct_usd=20e6, recovery_half_life_steps=4, permanent_fraction=0.25)
    model.sell(80e6)  # 2% move
    assert model.displacement == pytest.approx(-0.02)
    for _ in range(4):
        model.step(0.0)
    assert model.permanent_impact == pytest.approx(-0.005)
    assert model.temporary_impact == pytest.approx(-0.015 / 2)


def test_documented_depths():
    assert DEPTH_1PCT_USD == {"BTC": 20e6, "ETH": 8e6, "SOL": 2.5e6}
    assert PANIC_DEPTH_1PCT_USD["BTC"] == 14e6
    book = L2Book.from_depth_bands(BTC_DEPTH_BANDS_EARLY_OCT_2025)
    for offset, cumulative in BTC_DEPTH_BANDS_EARLY_OCT_2025:
        assert book.depth_within(offset) == pytest.approx(cumulative)
        assert book.depth_within(offset, "asks") == pytest.approx(cumulative)


def test_realized_volatility_of_a_gbm_path_recovers_its_sigma():
    path = gbm_paths({"BTC": 1.0}, 0.0, {"BTC": 0.8}, 0.0, 100_000, 60, rng=3)["BTC"]
    assert realized_volatility(path, 60) == pytest.approx(0.8, rel=0.02)


# --------------------------------------------------------------------------- L2 book


def test_walking_the_book_by_hand():
    book = L2Book(bids=[(0.001, 100.0), (0.01, 200.0), (0.02, 300.0)], asks=[(0.002, 50.0), (0.005, 50.0)])
    fill = book.sell(250.0)
    assert fill.average_price_factor == pytest.approx((100 * 0.999 + 150 * 0.99) / 250)
    assert fill.marginal_price_factor == pytest.approx(0.99)
    assert fill.unfilled_notional == 0
    fill = book.buy(75.0)
    assert fill.average_price_factor == pytest.approx((50 * 1.002 + 25 * 1.005) / 75)
    assert fill.marginal_price_factor == pytest.approx(1.005)


def test_a_sale_larger_than_the_book_is_partly_unfilled():
    book = L2Book(bids=[(0.01, 100.0), (0.05, 100.0)])
    fill = book.sell(500.0)
    assert fill.filled_notional == 200.0
    assert fill.unfilled_notional == 300.0
    assert fill.average_price_factor == pytest.approx(0.97)
    assert fill.marginal_price_factor == pytest.approx(0.95)


def test_market_makers_pull_depth_near_the_mid():
    book = L2Book(bids=[(0.005, 100.0), (0.01, 100.0), (0.04, 1000.0)])
    pulled = book.withdraw(0.9, within=0.01)
    assert pulled.bids == ((0.005, pytest.approx(10.0)), (0.01, pytest.approx(10.0)), (0.04, 1000.0))
    assert book.sell(150.0).marginal_price_factor == pytest.approx(0.99)
    assert pulled.sell(150.0).marginal_price_factor == pytest.approx(0.96)  # the sale falls through to 4%
    assert book.withdraw(0.5).depth_within(1.0) == pytest.approx(600.0)


def test_book_levels_are_validated():
    with pytest.raises(InvalidInput):
        L2Book(bids=[(0.02, 1.0), (0.01, 1.0)])
    with pytest.raises(InvalidInput):
        L2Book(bids=[(0.01, -1.0)])


# --------------------------------------------------------------------------- constant product


def test_constant_product_price_factor_and_average_execution():
    pool = ConstantProduct(x=1_000.0, y=2_000_000.0)
    assert pool.price_factor(1_000.0) == pytest.approx(0.25)
    assert pool.average_execution_factor(1_000.0) == pytest.approx(0.5)
    after = pool.after_sell(1_000.0)
    assert after.spot / pool.spot == pytest.approx(0.25)
    assert after.x * after.y == pytest.approx(pool.x * pool.y)
    proceeds = pool.y - after.y
    assert proceeds / (1_000.0 * pool.spot) == pytest.approx(0.5)
    for v in (1.0, 37.0, 250.0):
        assert pool.price_factor(v) == pytest.approx(pool.x**2 / (pool.x + v) ** 2)


@pytest.mark.parametrize("volume,slippage", [(750.0, 0.10), (1_500.0, 0.10), (10.0, 0.02)])
def test_for_slippage_round_trip(volume, slippage):
    pool = ConstantProduct.for_slippage(volume, slippage, price=3_000.0)
    assert pool.average_execution_factor(volume) == pytest.approx(1 - slippage)
    assert pool.spot == pytest.approx(3_000.0)
    s = 1 - slippage  # RiskDAO's execution ratio: x = s·v/(1 − s)
    assert pool.x == pytest.approx(s * volume / (1 - s))
    fill = pool.sell(volume * pool.spot)
    assert fill.average_price_factor == pytest.approx(1 - slippage)


# --------------------------------------------------------------------------- bridges and paths


ANCHORS = ((0, 100.0), (30, 80.0), (90, 95.0), (100, 60.0))


def test_bridge_passes_exactly_through_every_anchor():
    for seed in range(5):
        path = bridge_path(ANCHORS, 120, volatility=2.0, step_seconds=60, rng=seed)
        assert path.shape == (121,)
        for step, price in ANCHORS:
            assert path[step] == price
        assert (path > 0).all()


def test_bridge_with_free_ends_before_and_after_the_anchors():
    path = bridge_path(((10, 50.0), (20, 40.0)), 40, volatility=1.0, step_seconds=60, rng=1)
    assert path[10] == 50.0 and path[20] == 40.0
    assert len(set(path[:10])) == 10 and len(set(path[21:])) == 20


def test_bridge_is_reproducible_per_seed():
    one = bridge_path(ANCHORS, 120, 1.88, 60, rng=42)
    two = bridge_path(ANCHORS, 120, 1.88, 60, rng=np.random.default_rng(42))
    other = bridge_path(ANCHORS, 120, 1.88, 60, rng=43)
    assert np.array_equal(one, two)
    assert not np.array_equal(one, other)


def test_bridge_noise_has_the_requested_volatility():
    steps = 200_000
    path = bridge_path(((0, 1.0), (steps, 1.0)), steps, volatility=1.5, step_seconds=60, rng=5)
    # A bridge's increments have variance sigma²·(1 − 1/n): indistinguishable from sigma² here.
    assert np.diff(np.log(path)).std() == pytest.approx(step_sigma(1.5, 60), rel=0.01)


def test_bridge_rejects_bad_anchors():
    with pytest.raises(InvalidInput):
        bridge_path(((0, 1.0), (0, 2.0)), 10, 1.0, 60, rng=0)
    with pytest.raises(InvalidInput):
        bridge_path(((0, 1.0), (11, 2.0)), 10, 1.0, 60, rng=0)
    with pytest.raises(InvalidInput):
        bridge_path(((0, -1.0),), 10, 1.0, 60, rng=0)


def test_gbm_correlation_is_near_the_requested_one():
    for rho in (0.0, 0.5, 0.9):
        paths = gbm_paths({"BTC": 60_000.0, "ETH": 3_000.0}, 0.0, {"BTC": 0.6, "ETH": 0.8}, rho, 100_000, 60, rng=11)
        returns = np.diff(np.log(np.vstack([paths["BTC"], paths["ETH"]])), axis=1)
        assert np.corrcoef(returns)[0, 1] == pytest.approx(rho, abs=0.02)
        assert paths["BTC"][0] == 60_000.0 and paths["ETH"][0] == 3_000.0


def test_gbm_is_reproducible_per_seed():
    args = ({"BTC": 1.0, "SOL": 1.0}, 0.1, {"BTC": 0.5, "SOL": 0.9}, 0.7, 1_000, 60)
    one, two, three = gbm_paths(*args, rng=9), gbm_paths(*args, rng=9), gbm_paths(*args, rng=10)
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert not np.array_equal(one["BTC"], three["BTC"])


def test_jumps_fatten_the_tails_and_leave_the_diffusion_alone():
    args = ({"BTC": 1.0, "ETH": 1.0}, 0.0, {"BTC": 0.5, "ETH": 0.6}, 0.8, 200_000, 60)
    calm = gbm_paths(*args, rng=21)
    # ~50 jumps a year at minute steps is ~19 jumps over these 200k minutes.
    wild = gbm_paths(*args, rng=21, jump_intensity=50.0, jump_mean=-0.05, jump_std=0.03)
    calm_returns, wild_returns = np.diff(np.log(calm["BTC"])), np.diff(np.log(wild["BTC"]))
    jumped = np.abs(calm_returns - wild_returns) > 1e-9  # elsewhere equal up to rounding of the cumulative sum
    assert 5 <= jumped.sum() <= 40
    assert wild_returns.min() < -0.02 < calm_returns.min()
    kurtosis = lambda r: ((r - r.mean()) ** 4).mean() / r.var() ** 2 - 3
    assert abs(kurtosis(calm_returns)) < 0.2
    assert kurtosis(wild_returns) > 10
    assert np.diff(np.log(wild["ETH"]))[jumped].mean() < -0.02  # the same market-wide jumps hit ETH


def test_shock_path():
    path = shock_path(100.0, -0.3, steps=10, at_step=4)
    assert path.tolist() == [100.0] * 4 + [70.0] * 7
    with pytest.raises(InvalidInput):
        shock_path(100.0, -1.0, 10, 4)


# --------------------------------------------------------------------------- shipped scenarios


def test_shipped_scenarios_load_with_sources():
    assert set(SHIPPED) <= set(list_scenarios())
    for name in SHIPPED:
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.title and scenario.description
        assert len(scenario.sources) >= 3
        assert scenario.step_seconds == 60
        assert 60 <= scenario.steps <= 24 * 60
        assert set(scenario.volatility) == set(scenario.assets)


def test_scenarios_load_by_path_and_unknown_names_are_named(tmp_path):
    source = load_scenario("oct_10_2025")
    copy = tmp_path / "mine.toml"
    copy.write_bytes((DATA_DIR / "oct_10_2025.toml").read_bytes())
    mine = load_scenario(copy)
    assert mine.name == "mine" and mine.assets == source.assets
    with pytest.raises(UnknownName, match="oct_10_2025"):
        load_scenario("oct_10_2052")
    for name, content in (("not_toml.toml", b"root:x:0:0:root:/root:/bin/bash\n"), ("binary.toml", b"\xff\xfe\x00")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InvalidInput, match="not a readable scenario file") as raised:
            load_scenario(tmp_path / name)
        assert raised.value.field == "scenario"


@pytest.mark.parametrize("name", SHIPPED)
def test_scenario_paths_pass_through_anchors_and_reproduce(name):
    scenario = load_scenario(name)
    paths = scenario_paths(scenario, rng=7)
    again = scenario_paths(scenario, rng=np.random.default_rng(7))
    for asset, anchors in scenario.assets.items():
        assert paths[asset].shape == (scenario.steps + 1,)
        assert np.array_equal(paths[asset], again[asset])
        for step, price in anchors:
            assert paths[asset][step] == price


def _at(scenario, text):
    return scenario.anchor_step(datetime.fromisoformat(text))


@pytest.mark.parametrize("seed", range(4))
def test_black_thursday_two_legs_and_minus_46_percent_within_16_hours(seed):
    scenario = load_scenario("black_thursday_2020_03_12")
    btc = scenario_paths(scenario, rng=seed)["BTC"]
    peak, first_leg = _at(scenario, "2020-03-12T10:00Z"), _at(scenario, "2020-03-12T11:00Z")
    plateau, low = _at(scenario, "2020-03-12T23:00Z"), _at(scenario, "2020-03-13T02:00Z")
    assert low - peak == 16 * 60
    assert btc[low] / btc[peak] - 1 == pytest.approx(-0.46, abs=0.005)
    drawdown = btc[peak : low + 1].min() / btc[peak] - 1
    assert -0.50 < drawdown <= btc[low] / btc[peak] - 1
    assert btc[first_leg] / btc[peak] - 1 < -0.2  # first leg
    assert btc[plateau] > btc[first_leg] and btc[low] / btc[plateau] - 1 < -0.3  # a pause, then the second leg
    eth = scenario_paths(scenario, rng=seed)["ETH"]
    assert eth[low] == 90.0 and eth[low] / eth[peak] - 1 == pytest.approx(-0.5)


@pytest.mark.parametrize("seed", range(4))
def test_oct_2025_btc_minus_12_percent_in_30_minutes_and_sol_minus_26_percent_in_12(seed):
    scenario = load_scenario("oct_10_2025")
    paths = scenario_paths(scenario, rng=seed)
    start, end = _at(scenario, "2025-10-10T20:50Z"), _at(scenario, "2025-10-10T21:20Z")
    assert end - start == 30
    assert paths["BTC"][end] / paths["BTC"][start] - 1 == pytest.approx(-0.12, abs=0.005)
    assert paths["ETH"][end] / paths["ETH"][start] - 1 == pytest.approx(-0.20, abs=0.01)
    start, end = _at(scenario, "2025-10-10T21:15Z"), _at(scenario, "2025-10-10T21:27Z")
    assert end - start == 12
    assert paths["SOL"][end] / paths["SOL"][start] - 1 == pytest.approx(-0.26, abs=0.005)


def test_may_2021_btc_minus_30_and_eth_minus_40_percent():
    scenario = load_scenario("may_19_2021")
    paths = scenario_paths(scenario, rng=0)
    assert paths["BTC"].min() / paths["BTC"][0] - 1 == pytest.approx(-0.30, abs=0.02)
    assert paths["ETH"].min() / paths["ETH"][0] - 1 == pytest.approx(-0.40, abs=0.02)


def test_scenario_correlation_shows_in_the_bridges():
    scenario = load_scenario("may_19_2021")
    paths = scenario_paths(scenario, rng=1)
    returns = np.diff(np.log(np.vstack([paths["BTC"], paths["ETH"]])), axis=1)
    assert np.corrcoef(returns)[0, 1] == pytest.approx(scenario.correlation, abs=0.1)


# --------------------------------------------------------------------------- population


def test_population_defaults_and_reproducibility():
    markets = ["BTC", "ETH", "SOL"]
    book = sample_population(50_000, markets, rng=5)
    same = sample_population(50_000, markets, rng=np.random.default_rng(5))
    columns = ("side", "notional_usd", "leverage", "market")
    assert all(np.array_equal(getattr(book, k), getattr(same, k)) for k in columns)
    assert len(book) == 50_000
    assert np.median(book.leverage) == pytest.approx(5.0, rel=0.03)
    assert np.median(book.notional_usd) == pytest.approx(2_000.0, rel=0.05)
    assert (book.side == 1).mean() == pytest.approx(0.6, abs=0.01)
    assert book.leverage.min() >= 1.0 and book.leverage.max() <= 100.0
    assert set(np.unique(book.market)) == {0, 1, 2}
    assert np.allclose(book.margin_usd * book.leverage, book.notional_usd)
    assert book.in_market("ETH").sum() == (book.market == 1).sum()


def test_population_market_weights_and_validation():
    book = sample_population(10_000, ["BTC", "ETH"], rng=1, market_weights=[3, 1], max_leverage=20)
    assert book.in_market("BTC").mean() == pytest.approx(0.75, abs=0.02)
    assert book.leverage.max() <= 20
    with pytest.raises(InvalidInput):
        sample_population(10, ["BTC"], rng=1, long_share=1.5)
    with pytest.raises(InvalidInput):
        sample_population(10, ["BTC", "ETH"], rng=1, market_weights=[1])


# --------------------------------------------------------------------------- metrics


def test_summarize_on_hand_data():
    runs = [RunMetrics(bad_debt=float(i), liquidated_notional=10.0 * i, liquidations=i,
                       price_overshoot={"BTC": i / 100}) for i in range(1, 101)]
    summary = summarize(runs)
    # numpy's default (linear, Hyndman-Fan type 7): position (n − 1)·q/100 = 94.05 → 95.05.
    assert summary["bad_debt"] == {"mean": 50.5, "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert summary["liquidations"]["p95"] == pytest.approx(95.05)
    assert summary["price_overshoot.BTC"]["p99"] == pytest.approx(0.9901)
    assert {key: summary["VaR"][key] for key in ("p95", "p99")} == {"p95": pytest.approx(95.05),
                                                                    "p99": pytest.approx(99.01)}
    assert summary["VaR"]["paths"] == 100
    assert summary["VaR"]["p95_low"] < 95.05 < summary["VaR"]["p95_high"] <= 100
    assert summary["LaR"]["p95"] == pytest.approx(950.5)
    assert summary["adl_events"] == {"mean": 0.0, "p95": 0.0, "p99": 0.0}


def test_summarize_small_sample_interpolates():
    summary = summarize([RunMetrics(bad_debt=v) for v in (0.0, 0.0, 0.0, 10.0)])
    assert summary["bad_debt"] == {"mean": 2.5, "p95": pytest.approx(8.5), "p99": pytest.approx(9.7)}
    with pytest.raises(InvalidInput):
        summarize([])


def test_cascade_depth():
    assert cascade_depth([]) == 0
    assert cascade_depth([5, 5, 5]) == 1
    assert cascade_depth([3, 4, 5, 9, 10]) == 3
    # Step 4's liquidation would have happened anyway (exogenous): the chain breaks there.
    assert cascade_depth([3, 4, 5, 6], [False, False, True, True]) == 3
    assert cascade_depth([3, 4, 5, 6], [False, True, False, True]) == 2
    assert cascade_depth([1, 2, 2, 3], [False, False, True, True]) == 3


def test_time_to_stability_price_overshoot_and_toxicity():
    assert time_to_stability([], 100) == 0
    assert time_to_stability([12, 10, 30], 100) == 21
    assert price_overshoot([100, 90, 85], [100, 95, 90]) == pytest.approx(1 - 85 / 90)
    assert price_overshoot([100, 95], [100, 90]) < 0
    assert is_toxic(0.93, 0.08) and not is_toxic(0.92, 0.08)  # threshold 1/1.08 = 92.6%
