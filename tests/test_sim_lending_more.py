"""The lending cascade simulator on Compound v3, Euler v2, Morpho Blue and Liquity v1.

Each protocol runs through the same engine commands as live (``Absorb`` / ``BuyCollateral``,
``Liquidate``, ``LiquidateTrove``). Per protocol: a crash liquidates with conservation holding,
a check of the protocol's own mechanism that could fail, and the same seed giving the same run.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from solvent.core.errors import InvalidInput
from solvent.engine import lending as L
from solvent.sim.lending_run import DEPOSITOR, VENUE, LendingSimConfig, run_lending
from solvent.sim.metrics import is_toxic
from solvent.sim.scenarios import Scenario

ZERO_DEPTH = 1e-6  # ETH: $8 within 1% instead of $8M


def shock(drop: float = 0.25) -> Scenario:
    """ETH at 2,000, then one step down by ``drop`` at step 11, flat after (near-zero noise)."""
    low = 2000.0 * (1.0 - drop)
    return Scenario(name="shock", title="one-step ETH shock", description="", sources=(), step_seconds=60,
                    steps=60, assets={"ETH": ((0, 2000.0), (10, 2000.0), (11, low), (60, low))},
                    volatility={"ETH": 0.05}, correlation=0.0)


def check_conservation(result) -> None:
    report = result.engine.conservation()
    assert report.holds, report.describe()
    lending = L.lending_conservation(result.engine, VENUE)
    assert lending.holds, lending.describe()


def events(result, kind: str) -> list:
    return [event for event in result.events if event.kind == kind]


def crash(preset: str, **changes) -> LendingSimConfig:
    """Close to the protocol's minimum (median buffer 15%), so a 25% shock leaves some under water."""
    return LendingSimConfig(preset=preset, borrowers=100, seed=3, median_buffer=0.15, **changes)


# --------------------------------------------------------------------------------------------
# every protocol
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["compound_v3", "euler_v2", "morpho_blue", "liquity_v1"])
def test_black_thursday_liquidates_with_conservation(preset):
    result = run_lending(LendingSimConfig(preset=preset, borrowers=60, seed=5))
    assert result.metrics.liquidations > 20
    assert result.metrics.liquidated_notional > 0 and result.metrics.cascade_depth > 0
    assert result.counts["rejected"] == 0  # keepers preview each protocol's rules: the engine refuses nothing
    low = result.simulated["ETH"].min() / result.simulated["ETH"][0]
    assert (result.liquidation_levels["ETH"] > low).any()
    check_conservation(result)


@pytest.mark.parametrize("preset", ["compound_v3", "euler_v2", "morpho_blue", "liquity_v1"])
def test_same_seed_same_run(preset):
    config = LendingSimConfig(preset=preset, borrowers=40, seed=11, scenario="oct_10_2025", median_buffer=0.1)
    first, second = run_lending(config), run_lending(config)
    assert first.metrics.liquidations > 0
    assert first.metrics == second.metrics and first.counts == second.counts
    assert first.takes == second.takes and first.protocol_state == second.protocol_state
    assert [event.to_dict() for event in first.events] == [event.to_dict() for event in second.events]
    assert np.array_equal(first.simulated["ETH"], second.simulated["ETH"])
    assert run_lending(replace(config, seed=12)).metrics != first.metrics


# --------------------------------------------------------------------------------------------
# Compound v3
# --------------------------------------------------------------------------------------------


def test_compound_absorbs_then_keepers_buy_at_the_store_front():
    result = run_lending(crash("compound_v3"), scenario=shock())
    absorbed = events(result, "absorbed")
    assert result.metrics.liquidations == len(absorbed) > 50
    assert {event.absorber for event in absorbed} <= {"keeper0", "keeper1", "keeper2"}
    # WETH: LF 0.95, SFPF 0.5: buyers pay 97.5% of the oracle price.
    bought = events(result, "collateral_bought")
    assert bought and result.take_price_ratio == pytest.approx(0.975, abs=1e-6)
    # Accounts the shock left under water: the engine's bad debt, absorbed by reserves.
    recorded = events(result, "bad_debt_recorded")
    assert recorded and all(event.absorbed_by == "reserves" for event in recorded)
    assert result.metrics.bad_debt == pytest.approx(sum(float(event.amount) for event in recorded))
    reserves = D(L.lending_state(result.engine, VENUE)["reserves"])
    assert result.protocol_state["reserves"] == float(reserves)
    assert result.system_debt == max(0.0, -float(reserves))
    check_conservation(result)


def test_compound_without_depth_keepers_do_not_buy_and_the_protocol_keeps_the_collateral():
    deep = run_lending(crash("compound_v3"), scenario=shock())
    thin = run_lending(crash("compound_v3", depth_scale=ZERO_DEPTH), scenario=shock())
    # Absorbing needs no market: the same accounts are absorbed.
    assert thin.counts["absorbs"] >= deep.counts["absorbs"] - 2 > 50
    # Buying does: the 2.5% discount does not cover selling into (near) zero depth.
    assert deep.counts["buys"] > 0 and thin.counts["buys"] == 0
    assert all(keeper.spent == 0 for keeper in thin.keepers)
    seized = sum(D(amount) for event in events(thin, "absorbed") for _, amount in event.collateral_seized)
    state = L.lending_state(thin.engine, VENUE)
    assert D(state["collateral_reserves"]["WETH"]) == seized > 0
    assert thin.protocol_state["collateral_held.WETH"] == pytest.approx(float(seized))
    # Reserves paid for every absorbed debt and got nothing back.
    assert thin.system_debt > 10 * deep.system_debt
    check_conservation(thin)


def test_compound_store_front_closed_at_target_reserves():
    result = run_lending(crash("compound_v3", protocol_reserves="100000000"), scenario=shock())
    assert result.counts["absorbs"] > 0 and result.counts["buys"] == 0  # reserves ≥ target: NotForSale
    assert result.system_debt == 0 and result.protocol_state["reserves"] > 5_000_000
    check_conservation(result)


# --------------------------------------------------------------------------------------------
# Euler v2 and Morpho Blue
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset, absorbed_by", [("euler_v2", "vault_depositors"),
                                                 ("morpho_blue", "market_suppliers")])
def test_liquidations_below_debt_leave_bad_debt_to_the_lenders(preset, absorbed_by):
    result = run_lending(crash(preset), scenario=shock())
    liquidated = events(result, "liquidated")
    assert result.metrics.liquidations == len(liquidated) > 50
    recorded = events(result, "bad_debt_recorded")
    assert recorded and all(event.absorbed_by == absorbed_by for event in recorded)
    assert result.metrics.bad_debt == pytest.approx(sum(float(event.amount) for event in recorded))
    assert result.system_debt == pytest.approx(result.metrics.bad_debt)
    # Toxic: LTV before above 1/(1 + incentive); a one-step 25% shock puts most past it, not all.
    assert 0 < result.metrics.toxic_liquidations < len(liquidated)
    if preset == "morpho_blue":
        assert {event.incentive for event in liquidated} == {"1.043841336116910229"}  # LIF of LLTV 0.86
    else:
        discounts = [float(event.incentive) for event in liquidated]
        assert max(discounts) <= 0.2 and min(discounts) >= 0  # 1 − health, capped at the vault's 20%
    # What keepers received they sold (up to the float sale's dust); Euler's vault shares redeemed first.
    for keeper in result.keepers:
        assert 0 <= result.engine.balance(keeper.name, "WETH") < D("1e-9")
    if preset == "euler_v2":
        pool = result.engine.lending[VENUE].pools["WETH"]
        assert not any(pool.shares.get(keeper.name) for keeper in result.keepers)
    check_conservation(result)


@pytest.mark.parametrize("preset", ["euler_v2", "morpho_blue"])
def test_keepers_do_not_liquidate_when_the_incentive_does_not_cover_slippage(preset):
    deep = run_lending(crash(preset), scenario=shock())
    thin = run_lending(crash(preset, depth_scale=ZERO_DEPTH), scenario=shock())
    assert thin.metrics.liquidated_notional < 1e-3 * deep.metrics.liquidated_notional
    assert thin.metrics.bad_debt == 0  # nobody takes the collateral: no write-off either


def test_euler_waits_for_the_discount_to_cover_the_margin():
    """The discount is how unhealthy the account is: right past the threshold it is ~0, so a keeper
    with a 2% margin liquidates only once health has fallen to ~0.98 or below."""
    result = run_lending(LendingSimConfig(preset="euler_v2", borrowers=60, seed=5))
    discounts = [float(event.incentive) for event in events(result, "liquidated")]
    assert discounts and min(discounts) >= 0.02 - 1e-9
    check_conservation(result)


def test_toxic_flag_follows_ltv_and_incentive():
    assert is_toxic(0.99, 1.0438 - 1.0) and not is_toxic(0.95, 1.0438 - 1.0)  # Morpho: 1/LIF = 0.958


# --------------------------------------------------------------------------------------------
# Liquity v1
# --------------------------------------------------------------------------------------------


def test_liquity_offsets_against_the_stability_pool():
    result = run_lending(LendingSimConfig(preset="liquity_v1", borrowers=80, seed=3, scenario="oct_10_2025"))
    troves = events(result, "trove_liquidated")
    assert result.metrics.liquidations == len(troves) > 5
    assert all(event.rule == "offset" and event.debt_redistributed == "0" for event in troves)
    offset = sum(D(event.debt_offset) for event in troves)
    state = L.lending_state(result.engine, VENUE)
    deposit = D(L.lending_account(result.engine, VENUE, DEPOSITOR)["stability_deposit"])
    assert D(state["stability_pool"]) == deposit > 0 and offset > 0  # the pool covered every trove
    gain = D(L.lending_account(result.engine, VENUE, DEPOSITOR)["stability_gain"])
    assert gain > 0 and gain * D(str(result.oracle["ETH"][-1])) > offset  # ETH worth more than the LUSD it lost
    # The callers got 200 LUSD and 0.5% of the collateral each, and sold the collateral.
    keepers = {keeper.name for keeper in result.keepers}
    assert {event.liquidator for event in troves} <= keepers
    assert all(D(event.gas_compensation) == 200 for event in troves)
    check_conservation(result)


def test_liquity_without_a_stability_pool_redistributes():
    with_pool = run_lending(LendingSimConfig(preset="liquity_v1", borrowers=100, seed=3), scenario=shock(0.3))
    no_pool = run_lending(LendingSimConfig(preset="liquity_v1", borrowers=100, seed=3, stability_pool_fraction=0.0),
                          scenario=shock(0.3))
    assert with_pool.counts["offsets"] > 0
    troves = events(no_pool, "trove_liquidated")
    assert len(troves) > 10
    assert all(event.debt_offset == "0" and event.debt_redistributed != "0" for event in troves)
    assert no_pool.counts["redistributions"] == len(troves) and no_pool.counts["offsets"] == 0
    # The other troves took the debt and the collateral: the LUSD issued is still all owed by troves.
    state = L.lending_state(no_pool.engine, VENUE)
    assert D(state["stability_pool"]) == 0 and state["open_troves"] == 100 - len(troves)
    check_conservation(no_pool)


def test_liquity_recovery_mode_changes_the_rules():
    """A 30% fall takes the TCR below 150%: recovery mode. There a trove at or below 100% ICR is
    redistributed whatever the pool holds, one between 100% and the MCR offset, one above the MCR
    (below the TCR) offset at 110% with the rest of its collateral left to its owner."""
    result = run_lending(LendingSimConfig(preset="liquity_v1", borrowers=100, seed=3, stability_pool_fraction=0.05),
                         scenario=shock(0.3))
    recovery = [event for event in events(result, "trove_liquidated") if event.mode == "recovery"]
    assert len(recovery) == result.counts["recovery_mode"] > 10
    assert any(event.rule == "redistribution" for event in recovery)
    for event in recovery:
        icr = D(event.icr)
        expected = "redistribution" if icr <= 1 else "offset" if icr < D("1.1") else "capped_offset"
        assert event.rule == expected, event
        if event.rule == "redistribution":
            assert event.debt_offset == "0"
    check_conservation(result)


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def test_bad_configurations_are_refused():
    with pytest.raises(InvalidInput, match="collateral"):
        run_lending(LendingSimConfig(preset="morpho_blue", borrowers=5, collateral=(("ETH", "NOPE"),)))
    with pytest.raises(InvalidInput, match="collateral"):
        run_lending(LendingSimConfig(preset="compound_v3", borrowers=5, collateral=(("ETH", "USDT"),)))
    with pytest.raises(InvalidInput, match="lends"):
        run_lending(LendingSimConfig(preset="compound_v3", borrowers=5, debt_asset="DAI"))
    with pytest.raises(InvalidInput):
        run_lending(LendingSimConfig(preset="liquity_v1", borrowers=5, stability_pool_fraction=-1.0))


# --------------------------------------------------------------------------------------------
# report and CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["compound_v3", "euler_v2", "morpho_blue", "liquity_v1"])
def test_report_renders(preset, tmp_path):
    pytest.importorskip("matplotlib")
    from solvent.sim.report import HTML_NAME, write_report
    from test_sim_lending_report import check

    runs = [run_lending(LendingSimConfig(preset=preset, borrowers=60, seed=seed, scenario="oct_10_2025"))
            for seed in (1, 2)]
    first = runs[0]
    levels = first.liquidation_levels["ETH"]
    assert levels.shape == (60,) and np.all((levels > 0) & (levels < 1))
    assert first.bad_debt_per_step[-1] == pytest.approx(first.metrics.bad_debt)
    path = write_report(tmp_path, runs, f"10 Oct 2025 under {preset}")
    assert path == tmp_path / HTML_NAME
    check(tmp_path, path.read_text(encoding="utf-8"))


def test_cli_simulate_compound_json():
    import json

    from typer.testing import CliRunner

    from solvent.cli.main import app

    out = CliRunner().invoke(app, ["simulate", "--preset", "compound_v3", "--accounts", "60", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["metrics"]["liquidations"] > 0 and "reserves" in data["protocol_state"]
    table = CliRunner().invoke(app, ["simulate", "--preset", "liquity_v1", "--accounts", "60"])
    assert table.exit_code == 0, table.output
    assert "troves offset / redistributed" in table.output and "LUSD not backed" in table.output
