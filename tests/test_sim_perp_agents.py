"""Liquidator agents on a perpetual venue open to them: latency, capital and the profit gate."""


from solvent.engine import Engine
from solvent.engine import commands as c
from solvent.sim.market import SqrtImpact
from solvent.sim.perp_agents import PerpLiquidator, act

MARKETS = {"SOL": "SOL-PERP"}


def venue(liquidator_cash: str = "100000") -> Engine:
    engine = Engine()
    for command in (
        c.CreateVenue("v", "drift_v2", {"execution": {"takeover": "open"}}),
        c.FundInsurance("USDC", "100000", venue="v"),
        c.Deposit("v/liquidator", "USDC", "1000000"),
        c.OpenAccount("maker", "v"), c.Deposit("maker", "USDC", "100000000"),
        c.OpenAccount("liq", "v"), c.Deposit("liq", "USDC", liquidator_cash),
        c.UpdateOracle("v", {"SOL-PERP": "150"}, 1),
        c.OpenPositions("v", "SOL-PERP", "maker", ("t",), ("300",), ("20",), ("150",)),
        c.UpdateOracle("v", {"SOL-PERP": "137"}, 2),  # t in liquidation, waiting for liquidators
    ):
        engine.apply(command)
    assert ("t", "USDC") in engine.liquidating
    return engine


def step(engine, liquidator, index, depth=2_500_000.0):
    return act(engine, "v", "maker", [liquidator], index, MARKETS, {"SOL": SqrtImpact(depth)},
               {"SOL": 137.0})


def test_a_liquidator_acts_after_its_latency_and_unwinds_into_the_market():
    engine = venue()
    liquidator = PerpLiquidator("liq", latency_steps=2)
    assert step(engine, liquidator, 0).events == [] and step(engine, liquidator, 1).events == []
    result = step(engine, liquidator, 2)
    taken = [e for e in result.events if e.kind == "position_liquidated"]
    assert taken and taken[0].counterparty == "liq" and taken[0].method == "takeover"
    assert result.flow["SOL"] < 0  # it sold what it took over
    position = engine.ledger.accounts["liq"].positions.get(("v/SOL-PERP", None))
    assert position is None or position.lots == 0  # flat again
    assert engine.ledger.accounts["liq"].balance("USDC") > 100000 * 10**6  # the discount paid
    assert engine.conservation().holds


def test_the_profit_gate_declines_when_slippage_exceeds_the_discount():
    engine = venue()
    liquidator = PerpLiquidator("liq", latency_steps=0)
    result = step(engine, liquidator, 0, depth=1_000.0)  # almost no depth: selling costs more than 1%
    assert result.events == [] and result.declined == 1
    assert ("t", "USDC") in engine.liquidating


def test_a_liquidator_without_capital_cannot_take_it_over():
    engine = venue(liquidator_cash="1")
    result = step(engine, PerpLiquidator("liq", latency_steps=0), 0)
    assert result.events == []
    assert ("t", "USDC") in engine.liquidating


def test_a_drift_run_is_liquidated_by_the_agents_and_they_step_back_when_depth_vanishes(monkeypatch):
    from solvent.sim import perp_agents
    from solvent.sim.run import SimConfig, run

    taken = []
    original = perp_agents.act

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        taken.extend(e for e in result.events if e.kind == "position_liquidated" and e.counterparty.startswith(
            "liquidator"))
        return result

    monkeypatch.setattr(perp_agents, "act", recording)
    normal = run(SimConfig(preset="drift_v2", accounts=600))
    by_agents = len(taken)
    assert by_agents > 0 and normal.metrics.liquidations >= by_agents
    taken.clear()
    thin = run(SimConfig(preset="drift_v2", accounts=600, depth_scale=0.0001))
    assert len(taken) < by_agents and thin.counts["declined_by_liquidators"] > normal.counts["declined_by_liquidators"]
    taken.clear()
    run(SimConfig(preset="drift_v2", accounts=600, liquidators=0))
    assert taken == []  # no agents: the venue's own liquidator account takes over
