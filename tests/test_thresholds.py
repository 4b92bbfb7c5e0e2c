"""The threshold index finds every single-position pool whose status changes between two prices,
and the engine's screened path gives the same events as valuing every holder exactly."""

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.engine import Engine
from solvent.engine import commands as c
from solvent.engine import screen as engine_screen
from solvent.presets import load_preset
from solvent.screening.thresholds import MarketSchedule, ThresholdIndex, at_risk, breakpoints


def schedule_of(preset: str, symbol: str, inverse: bool = False) -> tuple[MarketSchedule, object]:
    model = load_preset(preset).margin_model(symbol)
    table = model.maintenance_table()
    return MarketSchedule(inverse, np.array([float(r[0]) for r in table]), np.array([float(r[1]) for r in table]),
                          np.array([float(r[2]) for r in table])), model


def status(model, base: Decimal, quantity: Decimal, x: Decimal, warning: Decimal, inverse: bool) -> tuple[bool, bool]:
    """Exact (margin-called, liquidatable) of a single-position pool at x (P, or 1/P inverse)."""
    equity = base + quantity * (-x if inverse else x)
    notional = abs(quantity) * x
    maintenance = model.maintenance_margin(notional, abs(quantity))
    return maintenance > 0 and maintenance >= warning * equity, equity < maintenance


@pytest.mark.parametrize("preset,symbol,inverse", [("binance", "BTCUSDT", False), ("hyperliquid", "BTC", False),
                                                   ("bitmex", "XBTUSD", True), ("dydx_v4", "BTC-USD", False)])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_status_change_has_a_breakpoint_in_between(preset, symbol, inverse, data):
    schedule, model = schedule_of(preset, symbol, inverse)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    pools = 200
    price = 60000.0
    x0 = 1 / price if inverse else price
    sizes = np.round(rng.lognormal(0, 1.5, pools) * (60000 if inverse else 1), 3 if not inverse else 0) + (
        1 if inverse else 0.001)
    sides = np.where(rng.random(pools) < 0.5, 1.0, -1.0)
    leverage = rng.uniform(1, 60, pools)
    quantity = sides * sizes
    # Opened at the price x0 with notional/leverage of margin: base = margin − q·s·x0.
    margin = np.abs(quantity) * x0 / leverage
    base = np.round(margin - quantity * (-x0 if inverse else x0), 8)
    warning = np.full(pools, 0.8)
    points, rows = breakpoints(schedule, base, quantity, warning)
    index = ThresholdIndex()
    owners = [f"p{i}" for i in range(pools)]
    index.add_many("m", owners, points, rows, merge=True)
    move = data.draw(st.floats(0.3, 3.0))
    x1 = x0 * move
    found = index.crossed("m", x0, x1)
    for i in range(pools):
        before = status(model, Decimal(float(base[i])), Decimal(float(quantity[i])), Decimal(float(x0)), Decimal("0.8"),
                        inverse)
        after = status(model, Decimal(float(base[i])), Decimal(float(quantity[i])), Decimal(float(x1)), Decimal("0.8"),
                       inverse)
        if before != after:
            assert owners[i] in found, (i, before, after)
    # And the float at-risk test agrees with the exact margin call away from the boundary.
    risky = at_risk(schedule, base, quantity, warning, x1)
    for i in range(pools):
        called, _ = status(model, Decimal(float(base[i])), Decimal(float(quantity[i])), Decimal(float(x1)),
                           Decimal("0.8"), inverse)
        if called:
            assert risky[i]


def test_replaced_and_removed_owners_are_found_by_their_new_points_only():
    index = ThresholdIndex(merge_above=1)
    index.add_many("m", ["a", "b"], np.array([100.0, 200.0]), np.array([0, 1]), merge=True)
    assert index.crossed("m", 90, 110) == {"a"}
    index.replace("a", [("m", np.array([300.0]))])
    assert index.crossed("m", 90, 110) == set()
    assert index.crossed("m", 250, 350) == {"a"}
    index.remove("b")
    assert index.crossed("m", 150, 250) == set()
    for i in range(5000):  # enough churn to compact and renumber
        index.replace("a", [("m", np.array([float(i)]))])
    assert index.crossed("m", 4998.5, 5000) == {"a"} and index.crossed("m", 0, 4998) == set()


def command_stream(seed: int, accounts: int = 80, steps: int = 40):
    """Binance accounts with one or two positions (BTC and ZEC), prices moving together."""
    rng = np.random.default_rng(seed)
    prices = {"BTCUSDT": Decimal(60000), "ZECUSDT": Decimal(300)}
    yield c.CreateVenue("v", "binance")
    yield c.FundInsurance("USDT", "50000", venue="v")
    yield c.Deposit("v/book", "USDT", "100000000")
    yield c.OpenAccount("mm", "v")
    yield c.Deposit("mm", "USDT", "100000000")
    yield c.UpdateOracle("v", {k: str(v) for k, v in prices.items()}, 1)
    for index in range(accounts):
        name = f"a{index}"
        yield c.OpenAccount(name, "v")
        yield c.Deposit(name, "USDT", str(int(rng.integers(100, 3000))))
        for market, scale in (("BTCUSDT", 1000), ("ZECUSDT", 100)):
            if market == "ZECUSDT" and rng.random() < 0.5:
                continue
            size = Decimal(int(rng.integers(1, 300))) / scale
            buyer, seller = (name, "mm") if rng.random() < 0.6 else ("mm", name)
            yield c.ApplyFill("v", market, buyer, seller, str(size), str(prices[market]))
    timestamp = 1
    for step in range(steps):
        timestamp += 5
        common = float(np.exp(rng.normal(-0.004, 0.02)))
        for market in prices:
            factor = Decimal(str(round(common * float(np.exp(rng.normal(0, 0.004))), 5)))
            prices[market] = (prices[market] * factor).quantize(Decimal("0.01"))
        if rng.random() < 0.3:
            yield c.Deposit(f"a{int(rng.integers(0, accounts))}", "USDT", "50")
        which = list(prices) if rng.random() < 0.7 else [list(prices)[int(rng.integers(0, 2))]]
        yield c.UpdateOracle("v", {m: str(prices[m]) for m in which}, timestamp)


@pytest.mark.parametrize("exact_complex_up_to", [256, 0])  # 0: the complex accounts go through the Screener
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_screened_engine_with_multi_position_accounts_gives_the_same_events(seed, exact_complex_up_to, monkeypatch):
    monkeypatch.setattr(engine_screen, "EXACT_COMPLEX_UP_TO", exact_complex_up_to)
    exact, screened = Engine(screen_above=None), Engine(screen_above=0)
    liquidations = 0
    for command in command_stream(seed):
        outcomes = [[event.to_dict() for event in engine.apply(command)] for engine in (exact, screened)]
        assert outcomes[0] == outcomes[1], command
        liquidations += sum(event["kind"] == "liquidation_started" for event in outcomes[0])
    assert liquidations > 0 and screened.conservation().holds
    assert screened._screen.complex  # the stream does hold multi-position accounts


def test_a_fixed_maintenance_margin_has_its_breakpoints_in_closed_form():
    # MM fixed per pool (Bybit's isolated MM at the entry value): equity(x) = base + q·x meets
    # k·equity = MM at x = (MM/k − base)/q, for k the warning ratio and 1. Longs and shorts.
    schedule = MarketSchedule.fixed(inverse=False)
    base = np.array([-19000.0, 21000.0])  # 1,000 of margin less the signed cost of 1 BTC at 20,000
    quantity = np.array([1.0, -1.0])
    maintenance = np.array([100.0, 100.0])
    warning = np.array([0.8, 0.8])
    points, rows = breakpoints(schedule, base, quantity, warning, np.zeros(2), -maintenance)
    found = sorted(zip(rows.tolist(), np.round(points, 6).tolist()))
    assert found == [(0, 19100.0), (0, 19125.0), (1, 20875.0), (1, 20900.0)]
    # At risk (MM ≥ w·equity) from 19,125 down for the long, from 20,875 up for the short.
    assert at_risk(schedule, base, quantity, warning, 19124.0, np.zeros(2), deductions=-maintenance).tolist() == [True, False]
    assert at_risk(schedule, base, quantity, warning, 20000.0, np.zeros(2), deductions=-maintenance).tolist() == [False, False]
    assert at_risk(schedule, base, quantity, warning, 20876.0, np.zeros(2), deductions=-maintenance).tolist() == [False, True]
