"""The lending cascade simulator: keepers with capital, latency and a profit gate on Maker and Aave.

The Black Thursday test runs the same book, path and keepers twice, changing only the depth of
the market keepers sell into: with normal depth auctions clear near the oracle price and leave
no bad debt; with (near) zero depth the profit gate keeps keepers out until the Dutch auction
has decayed far, auctions clear near zero and the shortfall stays as system debt.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from solvent.core.errors import InvalidInput
from solvent.engine import lending as L
from solvent.sim.agents import ExitMarket, MarketMaker, passes_gate, quote_sell, sample_borrowers
from solvent.sim.lending_run import NO_RESET_FLOOR, VENUE, LendingSimConfig, run_lending
from solvent.sim.market import ConstantProduct, L2Book, SqrtImpact
from solvent.sim.metrics import is_toxic
from solvent.sim.scenarios import Scenario

# Black Thursday, Maker ETH-A, no reset floor (the nearest 2.0 analogue of 1.2's flip auctions),
# the oracle on the scenario path (it read deep markets), 12 h of aftermath for auctions to end.
BLACK_THURSDAY = dict(borrowers=100, seed=7, overrides=NO_RESET_FLOOR, feedback=False, aftermath_steps=720)
ZERO_DEPTH = 1e-6  # ETH: $8 within 1% instead of $8M


def check_conservation(result) -> None:
    engine = result.engine
    report = engine.conservation()
    assert report.holds, report.describe()
    lending = L.lending_conservation(engine, VENUE)
    assert lending.holds, lending.describe()


@pytest.fixture(scope="module")
def normal_depth():
    return run_lending(LendingSimConfig(**BLACK_THURSDAY))


@pytest.fixture(scope="module")
def zero_depth():
    return run_lending(LendingSimConfig(depth_scale=ZERO_DEPTH, **BLACK_THURSDAY))


# --------------------------------------------------------------------------------------------
# agents
# --------------------------------------------------------------------------------------------


def test_profit_gate():
    assert passes_gate(100.0, 102.0, 0.02)
    assert not passes_gate(100.0, 101.9, 0.02)
    assert not passes_gate(100.0, 102.0, 0.02, gas=1.0)
    assert not passes_gate(0.0, 0.0, 0.0)  # nothing bought, nothing to do


def test_quotes_do_not_move_the_market_and_match_a_real_sale():
    impact = SqrtImpact(1_000_000.0)
    impact.trade(-300_000.0)  # already displaced
    before = copy.copy(impact)
    quote = quote_sell(impact, 250_000.0)
    assert impact == before
    fill = impact.sell(250_000.0)
    assert quote.average_price_factor == pytest.approx(fill.average_price_factor, rel=1e-12)
    assert quote.marginal_price_factor == pytest.approx(fill.marginal_price_factor, rel=1e-12)
    book = L2Book(bids=((0.01, 100.0), (0.05, 100.0)))
    assert quote_sell(book, 150.0).filled_notional == 150.0 and quote_sell(book, 500.0).unfilled_notional == 300.0
    pool = ConstantProduct.for_slippage(100.0, 0.10)
    assert quote_sell(pool, 100.0).average_price_factor == pytest.approx(0.9)
    market = ExitMarket(SqrtImpact(1e-3), lambda: 100.0)  # a market with (near) zero depth
    proceeds, _ = market.quote(10.0)
    assert proceeds < 10.0 * 100.0 * 0.05  # ten units worth 1,000 fetch almost nothing


def test_market_makers_withdraw_depth_as_volatility_rises():
    makers = MarketMaker()
    multipliers = [makers.depth_multiplier(vol) for vol in (0.3, 0.5, 1.0, 2.5, 50.0)]
    assert multipliers[:2] == [1.0, 1.0] and multipliers == sorted(multipliers, reverse=True)
    assert multipliers[-1] == makers.min_depth_fraction
    assert makers.depth_multiplier(1.0) == SqrtImpact(1.0).target_depth_fraction(1.0)  # the same thinning
    book = L2Book.from_depth_bands(((0.01, 1000.0),))
    assert makers.book(book, 2.5).depth_within(0.01) == pytest.approx(1000.0 * makers.depth_multiplier(2.5))
    impact = makers.impact(1000.0)
    impact.step(5.0)
    assert impact.depth_usd == pytest.approx(1000.0 * makers.depth_multiplier(5.0))
    with pytest.raises(InvalidInput):
        MarketMaker(min_depth_fraction=0.0)


def test_borrowers_start_above_the_protocol_minimum_and_depend_on_the_seed_only():
    book = sample_borrowers(500, ["ETH"], {"ETH": 1.45}, np.random.default_rng(3), min_debt=7650.0)
    again = sample_borrowers(500, ["ETH"], {"ETH": 1.45}, np.random.default_rng(3), min_debt=7650.0)
    assert np.array_equal(book.debt, again.debt) and np.array_equal(book.collateralization, again.collateralization)
    assert book.collateralization.min() >= 1.45 * 1.01 and book.debt.min() >= 7650.0
    assert 1.9 < float(np.median(book.collateralization)) < 2.5  # median buffer 0.5: c ≈ 2.18


# --------------------------------------------------------------------------------------------
# Maker
# --------------------------------------------------------------------------------------------


def test_same_seed_same_run():
    config = LendingSimConfig(borrowers=40, seed=5)
    first, second = run_lending(config), run_lending(config)
    assert first.metrics == second.metrics and first.counts == second.counts
    assert first.takes == second.takes
    for asset in first.simulated:
        assert np.array_equal(first.simulated[asset], second.simulated[asset])
    other = run_lending(LendingSimConfig(borrowers=40, seed=6))
    assert other.metrics != first.metrics
    check_conservation(first)


def test_normal_depth_auctions_clear_near_market_without_bad_debt(normal_depth):
    result = normal_depth
    assert result.counts["barks"] > 50 and result.counts["settled"] == result.counts["barks"]
    assert result.take_price_ratio > 0.9
    assert min(take.price / take.oracle for take in result.takes) > 0.9
    assert result.metrics.bad_debt == 0 and result.system_debt == 0
    check_conservation(result)


def test_black_thursday_zero_depth_auctions_clear_near_zero_and_leave_bad_debt(normal_depth, zero_depth):
    normal, crash = normal_depth, zero_depth
    # The same vaults are barked: the book, the path and the oracle are the same.
    assert crash.counts["barks"] == normal.counts["barks"]
    assert crash.metrics.liquidated_notional == pytest.approx(normal.metrics.liquidated_notional, rel=0.01)
    # Keepers wait: most collateral is bought once the price has decayed below a tenth of the oracle.
    sold_cheap = sum(take.slice for take in crash.takes if take.price < 0.1 * take.oracle)
    assert sold_cheap > 0.8 * crash.collateral_sold
    # Auctions clear near zero: what they raised is a few percent of the collateral's oracle value.
    assert crash.take_price_ratio < 0.1 < 0.9 < normal.take_price_ratio
    assert crash.counts["settled"] == crash.counts["barks"]  # every lot sold
    # The shortfall is bad debt and system debt; the normal-depth run has none.
    assert crash.metrics.bad_debt > 0.5 * crash.metrics.liquidated_notional
    assert crash.system_debt >= crash.metrics.bad_debt > 0 == normal.metrics.bad_debt
    recorded = [event for event in crash.events if event.kind == "bad_debt_recorded"]
    assert recorded and all(event.absorbed_by == "system_debt" for event in recorded)
    assert D(L.lending_state(crash.engine, VENUE)["system_debt"]) > 0
    check_conservation(crash)


def test_the_preset_reset_floor_stops_clearing_near_zero():
    """Liquidations 2.0's cusp/tail: with no market to sell into, auctions are reset, not given away."""
    result = run_lending(LendingSimConfig(borrowers=40, seed=7, depth_scale=ZERO_DEPTH, feedback=False))
    assert result.counts["redos"] > 0
    assert all(take.price > 0.4 * take.oracle for take in result.takes)
    check_conservation(result)


def test_keepers_pay_from_capital_they_hold_and_book_their_sales(zero_depth):
    engine = zero_depth.engine
    for keeper in zero_depth.keepers:
        incentives = sum(D(event.keeper_incentive) for event in zero_depth.events
                         if event.kind in ("auction_started", "auction_reset") and event.keeper == keeper.name)
        paid = sum(D(event.owe) for event in zero_depth.events if event.kind == "auction_taken"
                   and event.buyer == keeper.name)
        expected = D(zero_depth.config.keeper_capital) + incentives - paid + keeper.recovered
        assert abs(engine.balance(keeper.name, "DAI") - expected) < D("1e-12")
        assert engine.balance(keeper.name, "DAI") >= 0
        assert engine.balance(keeper.name, "ETH") >= 0  # what it could not sell, it holds


def test_feedback_moves_the_oracle_and_latency_delays_the_keepers():
    fed = run_lending(LendingSimConfig(borrowers=40, seed=5, depth_scale=0.05))
    assert fed.metrics.price_overshoot["ETH"] > 0
    assert np.allclose(fed.oracle["ETH"], fed.simulated["ETH"])
    calm = run_lending(LendingSimConfig(borrowers=40, seed=5, depth_scale=0.05, feedback=False))
    assert np.allclose(calm.oracle["ETH"], calm.exogenous["ETH"])
    slow = run_lending(LendingSimConfig(borrowers=40, seed=5, depth_scale=0.05, feedback=False,
                                        keeper_latency_steps=20))
    first_bark = lambda result: int(np.flatnonzero(result.liquidated_per_step)[0])
    first_take = lambda result: min(take.step for take in result.takes)
    # The same oracle path: the first vault turns unsafe at the same step; slow keepers bark 19
    # steps later (latency 20 against 1) and take no earlier than 20 steps after that.
    assert first_bark(slow) == first_bark(calm) + 19
    assert first_take(slow) >= first_bark(slow) + 20 and first_take(calm) >= first_bark(calm) + 1


# --------------------------------------------------------------------------------------------
# Aave v3
# --------------------------------------------------------------------------------------------


def shock(drop: float = 0.25) -> Scenario:
    """ETH at 2,000, then one step down by ``drop`` at step 11, flat after (near-zero noise)."""
    low = 2000.0 * (1.0 - drop)
    return Scenario(name="shock", title="one-step ETH shock", description="", sources=(), step_seconds=60,
                    steps=60, assets={"ETH": ((0, 2000.0), (10, 2000.0), (11, low), (60, low))},
                    volatility={"ETH": 0.05}, correlation=0.0)


def test_aave_toxic_liquidations_are_counted_past_one_over_one_plus_bonus():
    result = run_lending(LendingSimConfig(preset="aave_v3", borrowers=100, seed=3, median_buffer=0.15),
                         scenario=shock())
    calls = [event for event in result.events if event.kind == "liquidation_called"]
    assert calls and result.metrics.liquidations == len(calls)
    # WETH: LT 0.83, bonus 5%: LTV = LT / HF before; toxic when LTV > 1/1.05 (HF < 0.8715).
    for event in calls:
        assert event.toxic == is_toxic(0.83 / float(event.health_factor_before), 0.05), event
    toxic = sum(event.toxic for event in calls)
    assert result.metrics.toxic_liquidations == toxic and 0 < toxic < len(calls)
    # Accounts the shock left under water end in a reserve deficit (Aave 3.3), counted as bad debt.
    assert result.metrics.bad_debt > 0 and result.system_debt == pytest.approx(result.metrics.bad_debt)
    check_conservation(result)


def test_aave_keepers_do_not_liquidate_when_the_bonus_does_not_cover_slippage():
    config = LendingSimConfig(preset="aave_v3", borrowers=60, seed=3, median_buffer=0.15)
    deep = run_lending(config, scenario=shock())
    thin = run_lending(replace(config, depth_scale=ZERO_DEPTH), scenario=shock())
    # With (near) zero depth the 5% bonus covers the slippage of crumbs only: keepers nibble.
    assert deep.metrics.liquidations > 10
    assert thin.metrics.liquidated_notional < 1e-3 * deep.metrics.liquidated_notional
    # A gas cost per call makes even the crumbs unprofitable: nobody liquidates.
    gas = run_lending(replace(config, depth_scale=ZERO_DEPTH, keeper_gas=1.0), scenario=shock())
    assert gas.metrics.liquidations == 0 and all(keeper.spent == 0 for keeper in gas.keepers)
    check_conservation(thin)
    check_conservation(gas)


def test_bad_configurations_are_refused():
    with pytest.raises(InvalidInput, match="lending"):
        run_lending(LendingSimConfig(preset="hyperliquid", borrowers=5))
    with pytest.raises(InvalidInput, match="collateral"):
        run_lending(LendingSimConfig(preset="aave_v3", borrowers=5, collateral=(("ETH", "NOPE"),)))
    with pytest.raises(InvalidInput):
        run_lending(LendingSimConfig(borrowers=5, depth_scale=0.0))
