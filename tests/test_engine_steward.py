"""Bounded risk-parameter updates (engine/steward.py): Aave-risk-steward-shaped bounds on a logged command."""

from decimal import Decimal

import pytest

from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.engine.steward import UpdateRiskParam
from solvent.store.snapshots import state_digest

MMR = "markets[BTCUSDT].margin.tiers[0].mmr"
STEWARD = {"risk_steward": {"min_delay_seconds": 86400, "params": {
    MMR: {"max_change": "0.25"},  # relative: at most ±25% of the current value per update
    "fees.liquidation": {"max_change": "0.001", "change": "absolute", "min_delay_seconds": 3600},
}}}


def engine_with_steward() -> Engine:
    engine = Engine()
    engine.apply(c.CreateVenue("v", "binance", STEWARD))
    return engine


def test_an_update_within_bounds_is_applied_and_logged():
    engine = engine_with_steward()
    before = engine.model("v/BTCUSDT").maintenance_margin(Decimal(10000))
    events = engine.apply(UpdateRiskParam("v", MMR, "0.005", 10, "volatility up 30%"))
    assert events[0].kind == "risk_param_updated" and (events[0].old, events[0].new) == ("0.004", "0.005")
    assert events[0].reason == "volatility up 30%" and events[1].kind == "params_set"
    after = engine.model("v/BTCUSDT").maintenance_margin(Decimal(10000))
    assert before == Decimal(40) and after == Decimal(50)  # the margin model now uses the new rate


@pytest.mark.parametrize("path, value, field", [
    (MMR, "0.0051", "value"),  # +27.5%: above the 25% relative bound
    (MMR, "0.0029", "value"),  # −27.5%
    ("fees.liquidation", "0.0061", "value"),  # +0.0011 absolute, above 0.001
    ("fees.taker", "0.0006", "path"),  # not a bounded path: governance (set_params) only
    ("markets[NOPE].margin.tiers[0].mmr", "0.004", "path"),
    (MMR, "-1", "value"),
])
def test_an_update_outside_its_bounds_is_refused_and_changes_nothing(path, value, field):
    engine = engine_with_steward()
    digest = state_digest(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(UpdateRiskParam("v", path, value, 10))
    assert refused.value.field == field and state_digest(engine) == digest


def test_the_minimum_delay_holds_per_path_and_replay_agrees():
    commands = [c.CreateVenue("v", "binance", STEWARD), UpdateRiskParam("v", MMR, "0.005", 10),
                UpdateRiskParam("v", "fees.liquidation", "0.0055", 20)]  # another path: its own clock
    engine = Engine()
    for command in commands:
        engine.apply(command)
    with pytest.raises(CommandRejected) as early:
        engine.apply(UpdateRiskParam("v", MMR, "0.006", 10 + 86399))
    assert early.value.field == "timestamp" and "86410" in early.value.reason
    commands.append(UpdateRiskParam("v", MMR, "0.006", 10 + 86400))  # 0.005 → 0.006 is +20%: within bounds
    engine.apply(commands[-1])
    assert engine.venues["v"].preset.data["markets"][0]["margin"]["tiers"][0]["mmr"] == "0.006"
    again = Engine()
    for command in commands:
        again.apply(command)
    assert state_digest(again) == state_digest(engine)


def test_a_steward_bound_on_a_table_value_must_be_a_number():
    engine = Engine()
    engine.apply(c.CreateVenue("v", "binance", {"risk_steward": {"params": {"oracle.method": {"max_change": "1"}}}}))
    with pytest.raises(CommandRejected) as refused:
        engine.apply(UpdateRiskParam("v", "oracle.method", "1", 1))
    assert refused.value.field == "path"
