"""The float pre-check that skips exact valuation of clearly safe accounts changes nothing."""

from decimal import Decimal

import numpy as np
import pytest

from solvent.engine import Engine, pipeline
from solvent.engine import commands as c
from test_engine_screen import VENUES, command_stream
from test_thresholds import command_stream as two_market_stream


def outcomes(engine: Engine, commands) -> list:
    result = []
    for command in commands:
        try:
            result.append([event.to_dict() for event in engine.apply(command)])
        except Exception as error:
            result.append(("rejected", type(error).__name__, str(error)))
    return result


@pytest.mark.parametrize("stream", [*(("one", preset) for preset in sorted(VENUES)), ("two", "binance")])
def test_the_same_events_with_and_without_the_pre_check(stream, monkeypatch):
    kind, preset = stream
    commands = list(command_stream(preset, 5) if kind == "one" else two_market_stream(5))
    checked = outcomes(Engine(screen_above=None), commands)
    monkeypatch.setattr(pipeline, "_clearly_safe", lambda engine, venue, account: False)
    assert outcomes(Engine(screen_above=None), commands) == checked
    assert any(event["kind"] == "liquidation_started" for step in checked if isinstance(step, list) for event in step)


@pytest.mark.parametrize("preset,market,settle", [("binance", "BTCUSDT", "USDT"), ("bitmex", "XBTUSD", "XBT"),
                                                   ("hyperliquid", "BTC", "USDC"), ("dydx_v4", "BTC-USD", "USDC")])
def test_clearly_safe_never_hides_a_margin_call_or_a_liquidation(preset, market, settle):
    rng = np.random.default_rng(11)
    inverse = preset == "bitmex"
    engine = Engine()
    for command in (c.CreateVenue("v", preset), c.OpenAccount("mm", "v"), c.Deposit("mm", settle, "100000000"),
                    c.UpdateOracle("v", {market: "60000"}, 1)):
        engine.apply(command)
    names = []
    for index in range(300):
        name = f"a{index}"
        names.append(name)
        size = int(rng.integers(100, 20000)) if inverse else Decimal(int(rng.integers(1, 2000))) / 1000
        notional = Decimal(size) / 60000 if inverse else size * 60000
        deposit = (notional / Decimal(str(round(float(rng.uniform(1, 60)), 2)))).quantize(
            Decimal("0.00000001") if inverse else Decimal("0.01"))
        engine.apply(c.OpenAccount(name, "v"))
        engine.apply(c.Deposit(name, settle, str(max(deposit, Decimal("0.01")))))
        buyer, seller = (name, "mm") if rng.random() < 0.5 else ("mm", name)
        engine.apply(c.ApplyFill("v", market, buyer, seller, str(size), "60000"))
    venue = engine.venues["v"]
    safe = 0
    for price in np.linspace(45000, 75000, 61):
        engine.marks[f"v/{market}"] = Decimal(str(round(float(price), 1)))  # valued at this mark, no pipeline
        for name in names:
            if pipeline._clearly_safe(engine, venue, name):
                safe += 1
                pool = pipeline.cross_pool(engine, name, settle)
                assert pool.maintenance_margin < min(venue.rules.warning_ratio, 1) * pool.equity
                assert not pipeline._liquidatable(engine, venue, pool)
    assert safe > 1000  # the pre-check does skip most of them


def test_new_margin_rules_reach_the_pre_check():
    """SetParams raising the maintenance requirement liquidates an account the old rules (and the
    pre-check's schedule built under them) called safe."""
    engine = Engine(screen_above=None)
    for command in (c.CreateVenue("v", "gmx_v2"), c.OpenAccount("mm", "v"), c.Deposit("mm", "USDC", "10000000"),
                    c.OpenAccount("t", "v"), c.Deposit("t", "USDC", "2500"), c.UpdateOracle("v", {"ETH/USD": "2000"}, 1),
                    c.ApplyFill("v", "ETH/USD", "t", "mm", "10", "2000"), c.UpdateOracle("v", {"ETH/USD": "1999"}, 2)):
        engine.apply(command)
    assert pipeline._clearly_safe(engine, engine.venues["v"], "t")  # 1% of 20,000 against 2,490 of equity
    events = engine.apply(c.SetParams("v", {"margin": {"min_collateral_factor": "0.2",
                                                       "min_collateral_factor_for_liquidation": "0.15"}}))
    assert "liquidation_started" in [event.kind for event in events]  # 15% of 19,990 > 2,490
