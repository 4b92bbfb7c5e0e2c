"""Isolated insurance funds against one backstop shared across venues (sim/shared.py)."""

from dataclasses import replace
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InvalidInput
from solvent.sim.run import SimConfig
from solvent.sim.shared import compare_shared, run_shared

# v0 is the venue that crashes: high leverage and a thin book; v1 is calm. Thin funds.
CRASH = dict(median_leverage=[30, 3], depth_scales=[0.02, 1])
BASE = SimConfig(accounts=120, insurance_fund="500", seed=3)
PRESETS = ["dydx_v4", "dydx_v4"]


@pytest.fixture(scope="module")
def both():
    return compare_shared(BASE, PRESETS, **CRASH)


def test_same_seed_same_result(both):
    again = run_shared(BASE, PRESETS, True, **CRASH)
    assert again == both["shared"]


def test_conservation_and_shape(both):
    for mode in ("isolated", "shared"):
        result = both[mode]
        assert result["conservation"] is True  # run_shared asserts the ledger's conservation itself
        assert set(result["venues"]) == {"v0", "v1"}
        for key in ("bad_debt", "fund_drawn", "liquidations", "adl_notional", "socialized_loss"):
            assert result["totals"][key] == pytest.approx(sum(row[key] for row in result["venues"].values()))
    assert both["isolated"]["backstop"] is None
    assert both["isolated"]["totals"]["backstop_drawn"] == 0


def test_backstop_draws_sum_to_drawdown(both):
    shared = both["shared"]
    backstop = shared["backstop"]
    assert backstop["capital"] == 1000.0
    assert backstop["drawdown"] > 0
    events_by_venue = {v: row["backstop_drawn"] for v, row in shared["venues"].items()}
    assert events_by_venue == pytest.approx(backstop["drawn_by_venue"])
    assert D(str(sum(events_by_venue.values()))).quantize(D("0.000001")) == \
        D(str(backstop["drawdown"])).quantize(D("0.000001"))


def test_pooling_helps_the_venue_that_crashes(both):
    iso, shared = both["isolated"]["totals"], both["shared"]["totals"]
    assert shared["bad_debt"] <= iso["bad_debt"]
    assert shared["adl_notional"] < iso["adl_notional"]  # the pool pays what ADL took from winners
    # The crashing venue drew more than its own isolated fund: the calm venue's share paid for it.
    assert both["shared"]["backstop"]["drawn_by_venue"]["v0"] > 500


def test_mismatched_settle_assets_refused():
    with pytest.raises(InvalidInput, match="settle"):
        run_shared(SimConfig(accounts=5), ["binance", "hyperliquid"], True)


def test_cli_shared_backstop():
    result = CliRunner().invoke(app, ["compare", "--shared-backstop", "--presets", "dydx_v4,hyperliquid",
                                      "--accounts", "20", "--insurance-fund", "500"])
    assert result.exit_code == 0, result.output
    assert "v0 dydx_v4" in result.output and "total" in result.output
    assert "backstop left" in result.output
    refused = CliRunner().invoke(app, ["compare", "--shared-backstop", "--presets", "binance,dydx_v4",
                                       "--accounts", "5"])
    assert refused.exit_code != 0


def test_liquidator_agents_take_over_on_drift_in_a_shared_run():
    base = SimConfig(accounts=300, insurance_fund="500", seed=5)
    result = run_shared(base, ["drift_v2", "hyperliquid"], True, median_leverage=[20, 5])
    drift, hyperliquid = result["venues"]["v0"], result["venues"]["v1"]
    assert drift["liquidations"] > 0 and drift["taken_over_by_agents"] > 0  # the agents act on Drift
    assert hyperliquid["taken_over_by_agents"] == 0  # its vault and book liquidate, no agents there
    without = run_shared(replace(base, liquidators=0), ["drift_v2", "hyperliquid"], True, median_leverage=[20, 5])
    assert without["venues"]["v0"]["taken_over_by_agents"] == 0 and without["venues"]["v0"]["liquidations"] > 0
